"""EarthOneBackend: the ``descartes_run`` backend - one EarthOne compute job per tile.

``EarthOneBackend(fn).run(tile_keys, **kwargs)`` creates one ``compute.Function`` (the
function's source, ``include_modules`` such as ``plastics_core`` and ``requirements`` are
bundled by the client and uploaded), submits ``fn(tile_key, **kwargs)`` as one job per
tile with ``Function.map`` (``/jobs/bulk``), waits for completion, then collects every
job's JSON result (``Job.result()``, a storage blob). Failed / timed-out jobs are reported
per tile in :class:`TileRunResult.failures` instead of raising, so the caller can record a
reason and re-run only those tiles. ``fn`` must be a self-contained function (imports
inside, no module globals) or a ``"package.module.function"`` string; its return value
must be JSON-serializable (e.g. a GeoJSON dict or an S3 key of the written artifact).
The steps are public for callers that split them across processes (the Dagster
``descartes_run`` graph submits in one step and waits per tile in others):
``function`` / ``attach(function_id)``, ``submit``, ``jobs({tile: job id})``, ``wait``, ``collect``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from plastics_core.errors import ParameterError
from plastics_core.imagery.earthone import EarthOneUrls, credentials_from_env, make_clients
from plastics_core.retry import RetryPolicy, retry_call

log = logging.getLogger(__name__)
_TERMINAL = ("success", "failure", "timeout", "canceled")


@dataclass(frozen=True)
class ComputeConfig:
    """Function resources (memory in MiB, timeout in s) and polling."""

    name: str = "plastics-descartes-run"
    image: str = "python3.11:latest"
    cpus: float = 1.0
    memory: int = 4096
    timeout: int = 3600
    retry_count: int = 1
    maximum_concurrency: int | None = None
    requirements: tuple[str, ...] = ()
    include_modules: tuple[str, ...] = ("plastics_core",)
    batch_size: int = 100
    poll_interval_s: float = 10.0
    wait_timeout_s: float | None = None
    urls: EarthOneUrls = field(default_factory=EarthOneUrls)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 1000:
            raise ParameterError(f"batch_size {self.batch_size} is outside 1..1000 (EarthOne limit)")
        if self.cpus <= 0 or self.memory <= 0 or self.timeout <= 0:
            raise ParameterError("cpus, memory and timeout must be > 0")


@dataclass
class TileRunResult:
    """Per-tile outcome: JSON results of successful jobs and one-line reasons for the rest."""

    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    job_ids: dict[str, str] = field(default_factory=dict)
    function_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class EarthOneBackend:
    """Submit one EarthOne compute job per tile and collect the results."""

    def __init__(
        self,
        fn: Callable[..., Any] | str,
        config: ComputeConfig | None = None,
        *,
        clients: SimpleNamespace | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.fn = fn
        self.config = config or ComputeConfig()
        self.clients = clients or make_clients(credentials_from_env(environ), self.config.urls)

    def function(self) -> Any:
        """A new, saved ``compute.Function`` for ``fn`` (uploads the code bundle)."""
        cfg = self.config
        func = self.clients.lib.compute.Function(
            self.fn,
            name=cfg.name,
            image=cfg.image,
            cpus=cfg.cpus,
            memory=cfg.memory,
            timeout=cfg.timeout,
            retry_count=cfg.retry_count,
            maximum_concurrency=cfg.maximum_concurrency,
            requirements=list(cfg.requirements),
            include_modules=list(cfg.include_modules),
            client=self.clients.compute,
        )
        retry_call(func.save, what=f"EarthOne create function {cfg.name}", policy=cfg.retry)
        if getattr(func, "namespace", None):  # lets Job.result find the result blob without Function.get
            self.clients.compute.set_namespace(func.id, func.namespace)
        return func

    def attach(self, function_id: str) -> Any:
        """The saved ``compute.Function`` ``function_id`` (e.g. created by another process)."""
        lib, compute = self.clients.lib, self.clients.compute
        func = retry_call(
            lambda: lib.compute.Function.get(function_id, client=compute),
            what=f"EarthOne get function {function_id}",
            policy=self.config.retry,
        )
        if getattr(func, "namespace", None):
            compute.set_namespace(func.id, func.namespace)
        return func

    def jobs(self, job_ids: Mapping[str, str]) -> dict[str, Any]:
        """{tile key: Job} for {tile key: job id} of jobs submitted earlier (any process)."""
        lib, compute = self.clients.lib, self.clients.compute
        return {
            key: retry_call(
                functools.partial(lib.compute.Job.get, jid, client=compute),
                what=f"EarthOne get job {key}",
                policy=self.config.retry,
            )
            for key, jid in job_ids.items()
        }

    def submit(self, func: Any, tile_keys: Sequence[str], **kwargs: Any) -> dict[str, Any]:
        """One job per tile key: ``fn(key, **kwargs)``. Returns {tile key: Job}."""
        if len(set(tile_keys)) != len(tile_keys):
            raise ParameterError("tile keys must be unique: one job per tile")
        keys = list(tile_keys)
        client_cls = type(self.clients.compute)
        previous = client_cls.__dict__.get("_instance")
        # Function.map builds Job objects with ComputeClient.get_default_client(); make that our
        # env-authenticated client so the library never builds a default Auth (which would read
        # ~/.earthone/token_info.json), then restore the previous default.
        client_cls.set_default_client(self.clients.compute)
        try:
            jobs = func.map(
                [[k] for k in keys], kwargs=[dict(kwargs) for _ in keys], batch_size=self.config.batch_size
            )
        finally:
            client_cls._instance = previous
        if getattr(jobs, "is_success", True) is False:
            raise RuntimeError(
                f"EarthOne job submission partly failed: {len(jobs.errors)} batch(es) rejected"
            )
        for job in jobs:  # Job.refresh ignores its client argument (earthone 6.2.0): pin ours
            job._client = self.clients.compute
        return dict(zip(keys, jobs, strict=True))

    def wait(self, jobs: Mapping[str, Any]) -> None:
        """Poll each job until it reaches a terminal status (or ``wait_timeout_s`` passes)."""
        cfg = self.config
        start = time.monotonic()
        pending = dict(jobs)
        while pending:
            for key, job in list(pending.items()):
                retry_call(job.refresh, what=f"EarthOne job status {key}", policy=cfg.retry)
                if str(job.status) in _TERMINAL:
                    pending.pop(key)
            if not pending:
                return
            if cfg.wait_timeout_s is not None and time.monotonic() - start > cfg.wait_timeout_s:
                return
            time.sleep(cfg.poll_interval_s)

    def collect(self, jobs: Mapping[str, Any]) -> TileRunResult:
        """Results of finished jobs; every other tile gets a reason in ``failures``."""
        out = TileRunResult(job_ids={k: str(j.id) for k, j in jobs.items()})
        for key, job in jobs.items():
            status = str(job.status)
            if status != "success":
                reason = getattr(job, "error_reason", None) or "no reason given"
                out.failures[key] = (
                    f"job {job.id} {status}: {reason}"
                    if status in _TERMINAL
                    else f"job {job.id} still {status} after the wait timeout"
                )
                continue
            out.results[key] = retry_call(
                functools.partial(job.result, catalog_client=self.clients.catalog),
                what=f"EarthOne job result {key}",
                policy=self.config.retry,
            )
        return out

    def run(self, tile_keys: Sequence[str], **kwargs: Any) -> TileRunResult:
        """Create the function, submit one job per tile, wait, collect."""
        if not tile_keys:
            return TileRunResult()
        func = self.function()
        jobs = self.submit(func, tile_keys, **kwargs)
        log.info("EarthOne function %s: %d jobs submitted", func.id, len(jobs))
        self.wait(jobs)
        result = self.collect(jobs)
        result.function_id = str(func.id)
        return result

"""Where ``descartes_run``'s tiles run: ``local`` (the ``infer_tile`` steps) or ``earthone``.

``PLASTICS_BACKEND`` (or run config ``resources.backend.config.kind``):

- ``local`` (default): each ``infer_tile`` step runs its tile in its own process
  (:func:`plastics_core.execution.tile_job.compute_tile`).
- ``earthone``: the tiles run on EarthOne (Descartes Labs) compute, one compute job per tile of
  one ``compute.Function`` (:data:`plastics_core.execution.tile_job.REMOTE_FUNCTION`, code bundle =
  ``plastics_core`` + pinned requirements). ``submit_tiles`` creates the Function and submits a job
  for every planned tile without a summary file, in one bulk call, so EarthOne runs them in
  parallel whatever the Dagster executor; each ``infer_tile`` step then waits for its tile's job
  and collects the result (the tile files are written by the job itself, into the same store).
  A tile whose summary exists is skipped without a job. A retried or re-executed step submits a
  fresh job for its tile to the same Function. A failed job fails its step with the tile and the
  job's error. Credentials come from the environment only
  (:func:`plastics_core.imagery.earthone.credentials_from_env`); job arguments hold no secrets.

The job writes into the run's store and reads the model store itself: both must be reachable from
an EarthOne worker (``s3://`` / ``https://``) on the live service; the imagery is ``earthone``
(``synthetic`` is accepted for offline tests).
"""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, Failure
from pydantic import Field

from plastics_core.errors import CredentialsError, ParameterError

BACKENDS = ("local", "earthone")
REMOTE_IMAGERY = ("earthone", "synthetic")


class BackendResource(ConfigurableResource):  # type: ignore[type-arg]
    """The tile backend (``kind``) and, for ``earthone``, the compute Function's settings."""

    kind: str = Field(
        default="", description="local | earthone; '' = $PLASTICS_BACKEND (read at run time) or local"
    )
    compute_url: str | None = Field(
        default=None, description="earthone: compute API URL; None = the library's"
    )
    catalog_url: str | None = Field(default=None, description="earthone: catalog API URL (job results)")
    image: str = Field(default="python3.11:latest", description="earthone: the Function's image")
    cpus: float = Field(default=4.0, gt=0, le=64, description="earthone: CPUs per job")
    memory: int = Field(default=12288, gt=0, description="earthone: memory per job, MiB")
    timeout: int = Field(default=3600, gt=0, description="earthone: seconds per job")
    requirements: list[str] | None = Field(
        default=None, description="earthone: pip requirements; None = pinned"
    )
    poll_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="earthone: seconds between job status polls"
    )
    wait_timeout_s: float | None = Field(
        default=None, gt=0, description="earthone: give up waiting after this"
    )

    def resolved_kind(self) -> str:
        """``kind``, else ``$PLASTICS_BACKEND`` read now, else ``local``."""
        return self.kind or os.environ.get("PLASTICS_BACKEND") or "local"

    def check(self) -> None:
        if self.resolved_kind() not in BACKENDS:
            raise ParameterError(
                f"unknown backend {self.resolved_kind()!r}: set PLASTICS_BACKEND to one of "
                f"{', '.join(BACKENDS)}"
            )

    def client(self) -> Any:
        """An :class:`~plastics_core.imagery.earthone_compute.EarthOneBackend` for the tile job
        (credentials from the environment: CredentialsError naming the variables when missing)."""
        from plastics_core.execution.tile_job import REMOTE_FUNCTION, remote_requirements
        from plastics_core.imagery.earthone import EarthOneUrls
        from plastics_core.imagery.earthone_compute import ComputeConfig, EarthOneBackend

        reqs = self.requirements if self.requirements is not None else remote_requirements()
        cfg = ComputeConfig(
            image=self.image,
            cpus=self.cpus,
            memory=self.memory,
            timeout=self.timeout,
            requirements=tuple(reqs),
            poll_interval_s=self.poll_interval_s,
            wait_timeout_s=self.wait_timeout_s,
            urls=EarthOneUrls(catalog=self.catalog_url, compute=self.compute_url),
        )
        return EarthOneBackend(REMOTE_FUNCTION, cfg)


def job_kwargs(
    tile_window: str, roi: str, run_hash: str, params: Any, store: Any, imagery: Any, models: Any
) -> dict[str, Any]:
    """The JSON arguments (besides the tile key) of :func:`plastics_core.execution.tile_job.infer_tile_remote`."""
    from plastics_core.redact import redact
    from plastics_dagster.resources import default_model_store

    if imagery.resolved_kind() not in REMOTE_IMAGERY:
        raise ParameterError(
            f"imagery {imagery.resolved_kind()!r} cannot run on the earthone backend: use imagery earthone "
            "(or PLASTICS_BACKEND=local)"
        )
    kwargs = {
        "window": tile_window,
        "params": params.resolved(),
        "store": str(store.path()),
        "imagery": imagery.spec(),
        "roi": roi,
        "run_hash": run_hash,
        "model_store": models.location or default_model_store(),
    }
    for name in ("store", "model_store"):
        if redact(kwargs[name]) != kwargs[name]:
            raise CredentialsError(
                f"the {name} location holds credentials and EarthOne keeps job arguments: "
                "give them through the environment instead"
            )
    return kwargs


def submit_pending(eo: Any, pending: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Create the Function and submit one job per pending tile: ``{function_id, jobs: {tile: job id}}``."""
    if not pending:
        return {"function_id": "", "jobs": {}}
    func = eo.function()
    jobs = eo.submit(func, pending, **kwargs)
    return {"function_id": str(func.id), "jobs": {k: str(j.id) for k, j in jobs.items()}}


def run_remote_tile(
    eo: Any, tile_key: str, submitted: dict[str, Any], reuse: bool, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Wait for the tile's job (``reuse``: the one ``submit_tiles`` submitted; else a fresh job on
    the same Function) and return its summary plus ``job_id`` / ``function_id``. A failed or
    timed-out job raises a non-retryable :class:`dagster.Failure` naming the tile and the error."""
    from plastics_core.redact import redact

    function_id = str(submitted.get("function_id") or "")
    func = eo.attach(function_id) if function_id else eo.function()
    job_id = submitted.get("jobs", {}).get(tile_key)
    jobs = eo.jobs({tile_key: job_id}) if reuse and job_id else eo.submit(func, [tile_key], **kwargs)
    eo.wait(jobs)
    result = eo.collect(jobs)
    if tile_key in result.failures:
        reason = redact(" ".join(result.failures[tile_key].split()))[:400]
        raise Failure(
            description=f"tile {tile_key}: EarthOne {reason}",
            allow_retries=False,
            metadata={"tile": tile_key, "job_id": result.job_ids[tile_key]},
        )
    summary = result.results[tile_key]
    if not isinstance(summary, dict):
        raise Failure(
            description=f"tile {tile_key}: EarthOne job {result.job_ids[tile_key]} returned no summary",
            allow_retries=False,
        )
    return {**summary, "job_id": result.job_ids[tile_key], "function_id": str(func.id)}

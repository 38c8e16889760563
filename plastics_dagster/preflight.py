"""Checks run once before the first tile (``plan_tiles``) and before ``plastics run`` starts Dagster.

Each failure is one :class:`~plastics_core.errors.PlasticsError` line naming the problem and the fix:

- the run parameters (bounds, kinds, model names: :func:`plastics_core.params.make_params`);
- the imagery source configuration (kind, path) and, for sources that can check their inputs
  cheaply (a local folder: every GeoTIFF header's band count, dtype, CRS and band order), those;
- the geocoder configuration (kind; the fixture file of kind ``fixture``), so a typo fails here
  rather than in ``enriched_sites`` after every tile was computed;
- every model file of the run, the ensemble's members included: present and sha256-verified;
- the output store: a probe object written and deleted (an unwritable or read-only store, or an
  unreachable S3 endpoint, is found here rather than after a tile was computed);
- the site database ``published_sites`` writes to: a PostgreSQL server is connected to once
  (unreachable, or credentials refused: one line without the password, before any tile).

Every network endpoint the run will use (the S3 endpoint of the store and of the model store, an
``https`` model store, the STAC catalog) is first probed with one TCP connection of at most
:data:`PROBE_TIMEOUT_S` seconds, so an endpoint that refuses connections or does not answer is one
line within seconds; the store probe's S3 calls retry for at most :data:`PREFLIGHT_RETRY_S`
seconds. Outages during the run keep the full retry budgets (:mod:`plastics_dagster.reliability`).
Endpoints reached through a proxy (``HTTPS_PROXY`` ...) are not probed directly.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
import uuid
from typing import Any

from plastics_core.errors import ImageryError, ModelError, PlasticsError
from plastics_core.sitedb.engine import check_reachable
from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)
from plastics_dagster.sitedb_resource import SiteDatabase

PROBE_PREFIX = ".plastics-probe-"
#: seconds one TCP connection of the endpoint probe may take
PROBE_TIMEOUT_S = 5.0
#: seconds the store probe's S3 calls keep retrying (the run's own calls: the full store budget)
PREFLIGHT_RETRY_S = 10.0


class StoreError(PlasticsError):
    """The output store cannot be written (permissions, read-only, unreachable endpoint)."""


def check_store(store: StoreResource) -> None:
    """Write and delete a small probe object at the store root; StoreError (one line) when that fails."""
    from plastics_core.storage.store import StoreUnreachableError, atomic_write, is_local, retry_budget_cap

    root = store.path()
    if not is_local(root):
        check_endpoint(
            _s3_endpoint(),
            "store",
            StoreUnreachableError,
            "check AWS_ENDPOINT_URL and the network, then rerun (finished work is kept)",
        )
    probe = root / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        with retry_budget_cap(PREFLIGHT_RETRY_S):
            atomic_write(probe, b"probe")
            probe.unlink()
    except Exception as exc:  # noqa: BLE001 - every failure to write (retries spent too) is the same user error
        from plastics_core.storage.store import unreachable_store_error

        unreachable = unreachable_store_error(exc)
        if unreachable is not None:  # endpoint down or no credentials: say so, with the fix
            raise unreachable from None
        from plastics_core.redact import redact

        where = "" if is_local(root) else f" (S3 endpoint {_endpoint(root)})"
        reason = redact(" ".join(str(exc).split()))[:200] or type(exc).__name__
        raise StoreError(
            f"the store {redact(store.resolved())}{where} is not writable: {type(exc).__name__}: {reason}; "
            "fix its permissions, endpoint or credentials, or pass another --store"
        ) from None


def _endpoint(root: Any) -> str:
    kwargs = getattr(root, "storage_options", {}) or {}
    from plastics_core.redact import redact

    return redact(str((kwargs.get("client_kwargs") or {}).get("endpoint_url") or "default AWS"))


def _s3_endpoint() -> str | None:
    """The S3 endpoint URL of the environment (None: AWS itself, not probed)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def check_endpoint(
    url: str | None, what: str, error: type[PlasticsError], fix: str, timeout: float = PROBE_TIMEOUT_S
) -> None:
    """One TCP connection to the host and port of ``url`` (``http``/``https``; other schemes, None
    and proxied hosts are skipped); ``error`` (one line naming ``what``, ``scheme://host:port``
    only -- never a credential or query -- the reason and ``fix``) when it is refused, does not
    resolve or does not answer within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise error(f"the {what} URL has an invalid port: {fix}") from None
    proxies = urllib.request.getproxies()
    if (proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(parts.hostname):
        return
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    where = f"{parts.scheme}://{host}:{port}"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return
    except ConnectionRefusedError:
        reason = "connection refused"
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except socket.gaierror:
        reason = "the host name does not resolve"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise error(f"cannot reach the {what} at {where} ({reason}): {fix}")


def _stac_url(imagery: ImagerySourceResource) -> str | None:
    """The STAC catalog URL of a ``stac`` source (its path, else the collection's default catalog)."""
    if imagery.resolved_kind() != "stac":
        return None
    from plastics_core.imagery.stac import stac_source

    return imagery.resolved_path() or str(stac_source(None, imagery.resolved_collection()).config.url)


def check_endpoints(
    params: DetectionParams, imagery: ImagerySourceResource, models: ModelStoreResource
) -> None:
    """:func:`check_endpoint` for the STAC catalog and, when a model of the run is not in the local
    cache yet, the model store (the output store's endpoint is probed by :func:`check_store`)."""
    check_endpoint(
        _stac_url(imagery),
        "STAC catalog",
        ImageryError,
        "check --imagery / PLASTICS_IMAGERY_PATH and the network, then rerun",
    )
    store = models.get_store()
    if store.scheme == "local" or all(
        (store.cache_dir / key).is_file() for key in params.core().model_checksums()
    ):
        return
    url = _s3_endpoint() if store.scheme == "s3" else str(store.location)
    check_endpoint(
        url,
        "model store",
        ModelError,
        "check PLASTICS_MODEL_STORE (and AWS_ENDPOINT_URL for s3://) and the network, then rerun",
    )


def check_models(params: DetectionParams, models: ModelStoreResource) -> dict[str, str]:
    """Resolve and sha256-verify every model file of the run (pixel, patch, ensemble members);
    returns ``{key: sha256}``."""
    store = models.get_store()
    return {key: store.resolve(key).sha256 for key in params.core().model_checksums()}


def preflight(
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    store: StoreResource,
    geocoder: GeocoderResource | None = None,
    database: SiteDatabase | None = None,
) -> dict[str, str]:
    """Every check of the module docstring, cheapest first; returns the verified model checksums.
    ``geocoder``, ``database``: None = the environment's (``GeocoderResource()``, ``SiteDatabase()``)."""
    from plastics_core.imagery.base import CheckableSource

    params.core()
    source = imagery.get_source()
    if isinstance(source, CheckableSource):  # e.g. a local folder: every file's bands and dtype
        source.validate()
    (geocoder or GeocoderResource()).get_geocoder()
    check_endpoints(params, imagery, models)
    checksums = check_models(params, models)
    check_store(store)
    check_reachable((database or SiteDatabase()).resolved_url(store.resolved()))
    return checksums

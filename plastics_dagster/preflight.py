"""Checks run once before the first tile (``plan_tiles``) and before ``plastics run`` starts Dagster.

Each failure is one :class:`~plastics_core.errors.PlasticsError` line naming the problem and the fix:

- the run parameters (bounds, kinds, model names: :func:`plastics_core.params.make_params`);
- the imagery source configuration (kind, path) and, for sources that can check their inputs
  cheaply (a local folder: every GeoTIFF header's band count, dtype, CRS and band order), those;
- the geocoder configuration (kind; the fixture file of kind ``fixture``), so a typo fails here
  rather than in ``enriched_sites`` after every tile was computed;
- every model file of the run, the ensemble's members included: present and sha256-verified;
- the output store: a probe object written and deleted (an unwritable or read-only store, or an
  unreachable S3 endpoint, is found here rather than after a tile was computed).
"""

from __future__ import annotations

import uuid
from typing import Any

from plastics_core.errors import PlasticsError
from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)

PROBE_PREFIX = ".plastics-probe-"


class StoreError(PlasticsError):
    """The output store cannot be written (permissions, read-only, unreachable endpoint)."""


def check_store(store: StoreResource) -> None:
    """Write and delete a small probe object at the store root; StoreError (one line) when that fails."""
    from plastics_core.storage.store import atomic_write, is_local

    root = store.path()
    probe = root / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        atomic_write(probe, b"probe")
        probe.unlink()
    except Exception as exc:  # noqa: BLE001 - every failure to write (retries spent too) is the same user error
        from plastics_core.storage.store import unreachable_store_error

        unreachable = unreachable_store_error(exc)
        if unreachable is not None:  # endpoint down or no credentials: say so, with the fix
            raise unreachable from None
        where = "" if is_local(root) else f" (S3 endpoint {_endpoint(root)})"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StoreError(f"the store {store.resolved()}{where} is not writable: {type(exc).__name__}: {reason}; "
                         "fix its permissions, endpoint or credentials, or pass another --store") from None


def _endpoint(root: Any) -> str:
    kwargs = getattr(root, "storage_options", {}) or {}
    return str((kwargs.get("client_kwargs") or {}).get("endpoint_url") or "default AWS")


def check_models(params: DetectionParams, models: ModelStoreResource) -> dict[str, str]:
    """Resolve and sha256-verify every model file of the run (pixel, patch, ensemble members);
    returns ``{key: sha256}``."""
    store = models.get_store()
    return {key: store.resolve(key).sha256 for key in params.core().model_checksums()}


def preflight(params: DetectionParams, imagery: ImagerySourceResource, models: ModelStoreResource,
              store: StoreResource, geocoder: GeocoderResource | None = None) -> dict[str, str]:
    """Every check of the module docstring, cheapest first; returns the verified model checksums.
    ``geocoder``: None = the environment's (``GeocoderResource()``)."""
    from plastics_core.imagery.base import CheckableSource

    params.core()
    source = imagery.get_source()
    if isinstance(source, CheckableSource):  # e.g. a local folder: every file's bands and dtype
        source.validate()
    (geocoder or GeocoderResource()).get_geocoder()
    checksums = check_models(params, models)
    check_store(store)
    return checksums

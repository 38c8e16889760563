"""Dagster resources: imagery source, model store, geocoder — chosen by config or env vars.

Environment variables (defaults in brackets; read when the definitions load):

=========================  ==========================================================================
variable                   meaning
=========================  ==========================================================================
PLASTICS_STORE             output store: a folder or ``s3://bucket/prefix`` [``./.plastics/store``]
PLASTICS_IMAGERY           imagery source: ``synthetic`` | ``local`` | ``stac`` | ``earthone`` [synthetic]
PLASTICS_IMAGERY_PATH      folder of GeoTIFFs for ``local``; STAC API URL for ``stac`` [unset]
PLASTICS_STAC_COLLECTION   STAC collection: ``sentinel-2-l1c`` or ``sentinel-2-l2a`` (L2A: a
                           distribution shift for the L1C-trained models) [sentinel-2-l1c]
PLASTICS_MODEL_STORE       model folder, ``s3://`` or ``https://`` location [``../shared/models``]
PLASTICS_CACHE             cache root; remote models go to ``<it>/models`` [``~/.cache/plastics``]
PLASTICS_GEOCODER          ``offline`` | ``nominatim`` | ``fixture`` [offline]
PLASTICS_GEOCODER_CACHE    on-disk cache folder for Nominatim answers [``.cache/geocode``]
PLASTICS_GEOCODER_FIXTURE  JSON file of canned answers for ``fixture`` [unset]
PLASTICS_GEOCODER_EMAIL    contact in the Nominatim User-Agent [unset]
PLASTICS_EXECUTOR          ``in_process`` | ``multiprocess`` executor of ``detect_job`` [in_process]
PLASTICS_BACKEND           where tiles run: ``local`` | ``earthone`` (:mod:`plastics_dagster.backend`) [local]
PLASTICS_ROI_DIR           folder or ``s3://`` prefix watched by ``roi_sensor`` [``./rois``]
PLASTICS_SHARED            the shared data folder (default ROI ``test_patch``) [``../shared``]
AWS_ENDPOINT_URL           S3 API endpoint for ``s3://`` stores (e.g. a local S3 server)
AWS_ACCESS_KEY_ID / ...    S3 credentials — environment only, never config or metadata
EARTHONE_CLIENT_ID / ...   EarthOne credentials — environment only
=========================  ==========================================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from plastics_core.errors import ParameterError
from plastics_core.imagery.factory import IMAGERY_KINDS as IMAGERY_KINDS
from plastics_core.imagery.factory import tpa_planted_sites as tpa_planted_sites

REPO_ROOT = Path(__file__).resolve().parents[1]
GEOCODER_KINDS = ("offline", "nominatim", "fixture")


def shared_dir() -> Path:
    """The shared data folder: $PLASTICS_SHARED or ``<repo>/../shared``."""
    return Path(os.environ.get("PLASTICS_SHARED", REPO_ROOT.parent / "shared")).resolve()


def default_store() -> str:
    return os.environ.get("PLASTICS_STORE", "./.plastics/store")


def default_model_store() -> str:
    return os.environ.get("PLASTICS_MODEL_STORE", str(shared_dir() / "models"))


class ImagerySourceResource(ConfigurableResource):
    """Which imagery source the run reads (``kind``) and where (``path``: folder or STAC URL)."""

    kind: str = Field(default="synthetic", description="synthetic | local | stac | earthone")
    path: str | None = Field(default=None, description="GeoTIFF folder (local) or STAC API URL (stac)")
    collection: str = Field(default="sentinel-2-l1c",
                            description="stac only: sentinel-2-l1c, or sentinel-2-l2a (Planetary Computer preset "
                                        "when the URL is Planetary Computer's or unset; a distribution shift)")
    seed: int = Field(default=0, description="synthetic only: the world's random seed")
    plant_tpa: bool = Field(default=True, description="synthetic only: plant the 10 known Bali TPA landfills")
    granule_cache: str | None = Field(default=None, description="stac only: folder or s3:// URL of the granule "
                                      "decode cache (each JPEG 2000 band decoded once, kept as a COG); unset: none")
    granule_cache_max_gb: float = Field(default=50.0, gt=0, description="stac only: granule cache size bound in "
                                        "GB (least recently used COGs are evicted past it)")

    @classmethod
    def from_env(cls) -> ImagerySourceResource:
        return cls(kind=os.environ.get("PLASTICS_IMAGERY", "synthetic"),
                   path=os.environ.get("PLASTICS_IMAGERY_PATH"),
                   collection=os.environ.get("PLASTICS_STAC_COLLECTION", "sentinel-2-l1c"))

    def source_name(self) -> str:
        """The name recorded in manifests and run hashes (no credentials, ever)."""
        if self.kind == "synthetic":
            extra = [f"seed={self.seed}"] if self.seed else []
            extra += [] if self.plant_tpa else ["no-tpa"]
            return ":".join(["synthetic", *extra])
        from plastics_core.imagery.retry import redact  # drops user:password@ and ?query tokens

        name = self.kind if not self.path else f"{self.kind}:{redact(self.path)}"
        return name if self.kind != "stac" or self.collection == "sentinel-2-l1c" else f"{name}#{self.collection}"

    def get_source(self) -> Any:
        """Construct the :class:`plastics_core.imagery.ImagerySource` (lazily, by kind)."""
        from plastics_core.imagery.factory import make_source

        return make_source(self.kind, self.path, self.seed, self.plant_tpa, self.collection, self.granule_cache,
                           int(self.granule_cache_max_gb * 1e9))

    def spec(self) -> dict[str, Any]:
        """The JSON spec :func:`plastics_core.imagery.factory.make_source` rebuilds this source from
        (what a remote tile job receives)."""
        spec: dict[str, Any] = {"kind": self.kind, "path": self.path, "seed": self.seed, "plant_tpa": self.plant_tpa,
                "collection": self.collection}
        if self.granule_cache:
            spec |= {"granule_cache": self.granule_cache, "granule_cache_max_bytes": int(self.granule_cache_max_gb * 1e9)}
        return spec


class ModelStoreResource(ConfigurableResource):
    """Where the GPW model files live (folder, ``s3://`` or ``https://``), sha256-verified."""

    location: str = Field(default="", description="model store location; '' = $PLASTICS_MODEL_STORE")
    cache_dir: str | None = Field(default=None, description="download cache for remote stores")

    def get_store(self) -> Any:
        from plastics_core.models.store import ModelStore

        cache = Path(self.cache_dir) if self.cache_dir else None  # None: $PLASTICS_CACHE/models
        return ModelStore(self.location or default_model_store(), cache)


class GeocoderResource(ConfigurableResource):
    """Reverse geocoder for enriched sites: ``offline`` (no network), ``nominatim`` or ``fixture``."""

    kind: str = Field(default="offline", description="offline | nominatim | fixture")
    cache_dir: str | None = Field(default=None, description="on-disk cache for nominatim answers")
    fixture: str | None = Field(default=None, description="JSON file of canned answers (kind fixture)")

    @classmethod
    def from_env(cls) -> GeocoderResource:
        return cls(kind=os.environ.get("PLASTICS_GEOCODER", "offline"),
                   cache_dir=os.environ.get("PLASTICS_GEOCODER_CACHE"),
                   fixture=os.environ.get("PLASTICS_GEOCODER_FIXTURE"))

    def get_geocoder(self) -> Any:
        from plastics_core import enrich

        if self.kind == "offline":
            return enrich.OfflineGeocoder()
        if self.kind == "nominatim":
            return enrich.NominatimGeocoder(cache_dir=self.cache_dir or ".cache/geocode")
        if self.kind == "fixture":
            if not self.fixture:
                raise ParameterError("geocoder 'fixture' needs a JSON file: set PLASTICS_GEOCODER_FIXTURE")
            return enrich.FixtureGeocoder(self.fixture)
        raise ParameterError(f"unknown geocoder {self.kind!r}: use one of {', '.join(GEOCODER_KINDS)}")


class StoreResource(ConfigurableResource):
    """The output store: a folder or ``s3://bucket/prefix`` ('' = $PLASTICS_STORE or ./.plastics/store)."""

    location: str = Field(default="", description="folder or s3:// URL; '' = $PLASTICS_STORE")

    def resolved(self) -> str:
        return self.location or default_store()

    def path(self) -> Any:
        """The store root as a UPath (S3 endpoint from $AWS_ENDPOINT_URL)."""
        from plastics_dagster.io_manager import store_path

        return store_path(self.resolved())

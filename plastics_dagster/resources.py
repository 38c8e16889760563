"""Dagster resources: imagery source, model store, geocoder — chosen by config or env vars.

Environment variables (defaults in brackets; read when the definitions load):

=========================  ==========================================================================
variable                   meaning
=========================  ==========================================================================
PLASTICS_STORE             output store: a folder or ``s3://bucket/prefix`` [``./.plastics/store``]
PLASTICS_IMAGERY           imagery source: ``synthetic`` | ``local`` | ``stac`` | ``earthone`` [synthetic]
PLASTICS_IMAGERY_PATH      folder of GeoTIFFs for ``local``; STAC API URL for ``stac`` [unset]
PLASTICS_MODEL_STORE       model folder, ``s3://`` or ``https://`` location [``../shared/models``]
PLASTICS_CACHE             cache root; remote models go to ``<it>/models`` [``~/.cache/plastics``]
PLASTICS_GEOCODER          ``offline`` | ``nominatim`` | ``fixture`` [offline]
PLASTICS_GEOCODER_CACHE    on-disk cache folder for Nominatim answers [``.cache/geocode``]
PLASTICS_GEOCODER_FIXTURE  JSON file of canned answers for ``fixture`` [unset]
PLASTICS_GEOCODER_EMAIL    contact in the Nominatim User-Agent [unset]
PLASTICS_EXECUTOR          ``in_process`` | ``multiprocess`` executor of ``detect_job`` [in_process]
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

from plastics_core.errors import ImageryError, ParameterError

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGERY_KINDS = ("synthetic", "local", "stac", "earthone")
GEOCODER_KINDS = ("offline", "nominatim", "fixture")


def shared_dir() -> Path:
    """The shared data folder: $PLASTICS_SHARED or ``<repo>/../shared``."""
    return Path(os.environ.get("PLASTICS_SHARED", REPO_ROOT.parent / "shared")).resolve()


def default_store() -> str:
    return os.environ.get("PLASTICS_STORE", "./.plastics/store")


def default_model_store() -> str:
    return os.environ.get("PLASTICS_MODEL_STORE", str(shared_dir() / "models"))


def tpa_planted_sites(path: Path | None = None) -> list[Any]:
    """The known Bali landfills (``gpw/tpa_polygons.geojson``, e.g. TPA Temesi) as planted sites."""
    import json

    from shapely.geometry import shape

    from plastics_core.synthetic import PlantedSite

    path = path or shared_dir() / "data" / "gpw" / "tpa_polygons.geojson"
    if not path.exists():
        raise ImageryError(f"{path} not found: set PLASTICS_SHARED to the shared data folder")
    features = json.loads(path.read_text())["features"]
    return [PlantedSite(str(f["properties"]["Name"]), shape(f["geometry"])) for f in features]


class ImagerySourceResource(ConfigurableResource):
    """Which imagery source the run reads (``kind``) and where (``path``: folder or STAC URL)."""

    kind: str = Field(default="synthetic", description="synthetic | local | stac | earthone")
    path: str | None = Field(default=None, description="GeoTIFF folder (local) or STAC API URL (stac)")
    seed: int = Field(default=0, description="synthetic only: the world's random seed")
    plant_tpa: bool = Field(default=True, description="synthetic only: plant the 10 known Bali TPA landfills")

    @classmethod
    def from_env(cls) -> ImagerySourceResource:
        return cls(kind=os.environ.get("PLASTICS_IMAGERY", "synthetic"),
                   path=os.environ.get("PLASTICS_IMAGERY_PATH"))

    def source_name(self) -> str:
        """The name recorded in manifests and run hashes (no credentials, ever)."""
        if self.kind == "synthetic":
            extra = [f"seed={self.seed}"] if self.seed else []
            extra += [] if self.plant_tpa else ["no-tpa"]
            return ":".join(["synthetic", *extra])
        from plastics_core.imagery.retry import redact  # drops user:password@ and ?query tokens

        return self.kind if not self.path else f"{self.kind}:{redact(self.path)}"

    def get_source(self) -> Any:
        """Construct the :class:`plastics_core.imagery.ImagerySource` (lazily, by kind)."""
        if self.kind == "synthetic":
            from plastics_core.imagery.synthetic import SyntheticSource

            return SyntheticSource(sites=tpa_planted_sites() if self.plant_tpa else (), seed=self.seed)
        if self.kind == "local":
            if not self.path:
                raise ImageryError("imagery kind 'local' needs a folder: set PLASTICS_IMAGERY_PATH or --imagery local:DIR")
            from plastics_core.imagery.local import LocalGeoTIFFSource

            return LocalGeoTIFFSource(self.path)
        if self.kind == "stac":
            from plastics_core.imagery.stac import StacSource

            return StacSource(url=self.path) if self.path else StacSource()
        if self.kind == "earthone":
            from plastics_core.imagery.earthone import EarthOneSource  # credentials from the environment

            return EarthOneSource()
        raise ImageryError(f"unknown imagery kind {self.kind!r}: use one of {', '.join(IMAGERY_KINDS)}")


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

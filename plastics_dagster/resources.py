"""Dagster resources: imagery source, model store, geocoder, store — chosen by config or env vars.

Every setting is a typed field with a documented default; the kinds are ``Literal`` fields, so the
Launchpad refuses an unknown kind before a run starts. Where a field is left at its empty default,
the resource reads the environment variable below through ``dagster.EnvVar(...).get_value`` **at
run time**, in the process that uses the resource (never when the definitions load, so the
webserver, daemon, run workers and Celery workers all build the same definitions); a field set in
run config (or bound to a ``dagster.EnvVar``) wins.

Why not bind every field to ``EnvVar("PLASTICS_...")`` in the Definitions: Dagster resolves an
``EnvVar`` field when a run starts and fails the run when the variable is unset (an ``EnvVar`` has
no default), and a ``Literal`` field cannot take an ``EnvVar`` at all (it is a string source), so
the embedded defaults below (``./.plastics/store``, ``places``, ...) would stop working with no
environment. Settings that every run of a deployment needs and that have no default are bound to
``EnvVar`` by that deployment's Definitions instead (``PLASTICS_STEP_STORE`` in
:mod:`plastics_dagster.definitions_k8s`; the Celery broker URLs in its executor config).

Variables (defaults in brackets):

=========================  ==========================================================================
variable                   meaning
=========================  ==========================================================================
PLASTICS_STORE             output store: a folder or ``s3://bucket/prefix`` [``./.plastics/store``]
PLASTICS_IMAGERY           imagery source: ``synthetic`` | ``local`` | ``stac`` | ``earthone``; read
                           when a run uses the source. Unset: the run fails at once naming it
                           (``synthetic`` is for the demo and tests only) [unset]
PLASTICS_IMAGERY_PATH      folder of GeoTIFFs for ``local``; STAC API URL for ``stac`` (run time) [unset]
PLASTICS_STAC_COLLECTION   STAC collection: ``sentinel-2-l1c`` or ``sentinel-2-l2a`` (L2A: a
                           distribution shift for the L1C-trained models) [sentinel-2-l1c]
PLASTICS_SHARED            the shared data folder (GPW models, the default ROI ``test_patch``, TPA
                           points), relative to the working directory [``../shared``]
PLASTICS_MODEL_STORE       model folder, ``s3://`` or ``https://`` location [``$PLASTICS_SHARED/models``]
PLASTICS_CACHE             cache root; remote models go to ``<it>/models`` [``~/.cache/plastics``]
PLASTICS_GEOCODER          ``places`` | ``offline`` | ``nominatim`` | ``fixture`` [places]
PLASTICS_GEOCODER_CACHE    on-disk cache folder for Nominatim answers [``.cache/geocode``]
PLASTICS_GEOCODER_FIXTURE  JSON file of canned answers for ``fixture`` [unset]
PLASTICS_GEOCODER_EMAIL    contact in the Nominatim User-Agent [unset]
PLASTICS_BACKEND           where tiles run: ``local`` | ``earthone`` (:mod:`plastics_dagster.backend`) [local]
PLASTICS_ROI_DIR           folder or ``s3://`` prefix watched by ``roi_sensor`` [``./rois``]
PLASTICS_CELERY_BROKER     Redis URL of the Celery deployment's broker (required there) [unset]
PLASTICS_CELERY_BACKEND    Redis URL of its result backend (required there) [unset]
PLASTICS_STEP_STORE        where the Kubernetes deployment's step pods exchange step outputs
                           (required there; :mod:`plastics_dagster.step_io`) [unset]
AWS_ENDPOINT_URL           S3 API endpoint for ``s3://`` stores (e.g. a local S3 server)
AWS_ACCESS_KEY_ID / ...    S3 credentials — environment only, never config or metadata
EARTHONE_CLIENT_ID / ...   EarthOne credentials — environment only
=========================  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from plastics_core.errors import ParameterError
from plastics_core.imagery.factory import IMAGERY_KINDS as IMAGERY_KINDS
from plastics_core.imagery.factory import tpa_planted_sites as tpa_planted_sites
from plastics_dagster.registry import load_roi
from plastics_dagster.registry import shared_dir as shared_dir

GEOCODER_KINDS = ("places", "offline", "nominatim", "fixture")
#: an imagery kind, or '' for ``$PLASTICS_IMAGERY`` (read when a run uses the source)
ImageryKind = Literal["", "synthetic", "local", "stac", "earthone"]
#: a geocoder kind, or '' for ``$PLASTICS_GEOCODER`` (default ``places``)
GeocoderKind = Literal["", "places", "offline", "nominatim", "fixture"]
DEFAULT_STORE = "./.plastics/store"
DEFAULT_ROI_DIR = "./rois"


def imagery_kind(kind: str) -> ImageryKind:
    """``kind`` as an :data:`ImageryKind` ('' stays ''); ImageryError (one line) when it is not one."""
    from plastics_core.errors import ImageryError

    if kind and kind not in IMAGERY_KINDS:
        raise ImageryError(f"unknown imagery kind {kind!r}: use one of {', '.join(IMAGERY_KINDS)}")
    return cast(ImageryKind, kind)


def env_setting(var: str, default: str = "") -> str:
    """``$var`` read now (at run time, through :class:`dagster.EnvVar`), or ``default``."""
    return EnvVar(var).get_value(default) or default


def default_store() -> str:
    """``$PLASTICS_STORE`` (read now) or ``./.plastics/store``."""
    return env_setting("PLASTICS_STORE", DEFAULT_STORE)


def default_model_store() -> str:
    """``$PLASTICS_MODEL_STORE`` (read now) or ``<shared>/models``."""
    return env_setting("PLASTICS_MODEL_STORE", str(shared_dir() / "models"))


#: the one line of a run without an imagery source: the two settings a UI user has (``plastics run``
#: adds ``--imagery`` to it, :func:`plastics_dagster.runner.parse_imagery`)
NO_IMAGERY = (
    "no imagery source configured: set the environment variable PLASTICS_IMAGERY of the Dagster "
    "webserver and daemon (e.g. PLASTICS_IMAGERY=stac), or the run config "
    "resources.imagery.config.kind in the Launchpad, to stac, local, earthone or synthetic (a demo)"
)

#: fields of :class:`ImagerySourceResource` that only some imagery kinds read
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "path": ("local", "stac"),
    "collection": ("stac",),
    "granule_cache": ("stac",),
    "granule_cache_max_gb": ("stac",),
    "max_cloud_cover": ("stac",),
    "min_coverage": ("stac",),
    "seed": ("synthetic",),
    "plant_tpa": ("synthetic",),
}


class ImagerySourceResource(ConfigurableResource):  # type: ignore[type-arg]
    """Which imagery source the run reads (``kind``) and where (``path``: folder or STAC URL)."""

    kind: ImageryKind = Field(
        default="",
        description="synthetic | local | stac | earthone; '' = $PLASTICS_IMAGERY, "
        "read when the run uses the source (unset: the run fails naming it)",
    )
    path: str | None = Field(
        default=None,
        description="GeoTIFF folder (local) or STAC API URL (stac); None = $PLASTICS_IMAGERY_PATH",
    )
    collection: str = Field(
        default="",
        description="stac only: sentinel-2-l1c, or sentinel-2-l2a (Planetary Computer preset "
        "when the URL is Planetary Computer's or unset; a distribution shift); "
        "'' = $PLASTICS_STAC_COLLECTION or sentinel-2-l1c",
    )
    seed: int = Field(default=0, description="synthetic only: the world's random seed")
    plant_tpa: bool = Field(default=True, description="synthetic only: plant the 10 known Bali TPA landfills")
    granule_cache: str | None = Field(
        default=None,
        description="stac only: folder or s3:// URL of the granule "
        "decode cache (each code-tile block of a JPEG 2000 band decoded once, when a tile needs it); unset: none",
    )
    granule_cache_max_gb: float = Field(
        default=50.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="stac only: granule cache size bound in "
        "GB (least recently used blocks are evicted past it)",
    )
    max_cloud_cover: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="stac only: drop scenes the catalog "
        "rates more cloudy than this (eo:cloud_cover, % of the granule) before any pixel "
        "is read; GPW's 2022 download used 30, its 2021 workflow read every scene (100)",
    )
    min_coverage: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="stac only: drop a day whose scenes' "
        "footprints cover less than this fraction of a tile, before reading it "
        "(0: any overlap); GPW's 2022 download used 0.9",
    )

    def resolved_kind(self) -> str:
        """The source kind; ImageryError (one line) when it is not a known kind."""
        from plastics_core.errors import ImageryError

        kind = imagery_kind(self.kind or env_setting("PLASTICS_IMAGERY"))
        if not kind:
            raise ImageryError(NO_IMAGERY)
        return kind

    def resolved_path(self) -> str | None:
        return self.path or env_setting("PLASTICS_IMAGERY_PATH") or None

    def resolved_collection(self) -> str:
        return self.collection or env_setting("PLASTICS_STAC_COLLECTION", "sentinel-2-l1c")

    def source_name(self) -> str:
        """The name recorded in manifests and run hashes (no credentials, ever): one name per
        source, however it is spelled (a local folder as its absolute path; the default STAC
        catalog, or a URL with a trailing ``/``, as the plain kind); a path enters only for the
        kinds that read one."""
        kind, path, collection = self.resolved_kind(), self.resolved_path(), self.resolved_collection()
        selection = self._selection()
        if kind == "synthetic":
            extra = [f"seed={self.seed}"] if self.seed else []
            extra += [] if self.plant_tpa else ["no-tpa"]
            return ":".join(["synthetic", *extra])
        from plastics_core.redact import redact_url  # masks user:password@ and ?query values

        if kind == "local" and path:
            path = str(Path(path).expanduser().resolve())
        elif kind == "stac" and path:
            from plastics_core.imagery.stac import stac_source

            path = path.rstrip("/")
            path = None if path == stac_source(None, collection).config.url.rstrip("/") else path
        else:
            path = None if kind == "earthone" else path
        name = kind if not path else f"{kind}:{redact_url(path)}"
        name = name if kind != "stac" or collection == "sentinel-2-l1c" else f"{name}#{collection}"
        return name + "".join(f";{k}={v:g}" for k, v in selection.items())

    def _selection(self) -> dict[str, float]:
        """The scene-selection fields set away from their defaults (they change what a run reads,
        so they enter its name and hash), after :meth:`_check_kind_fields`."""
        self._check_kind_fields()
        fields = type(self).model_fields
        return {
            k: float(getattr(self, k))
            for k in ("max_cloud_cover", "min_coverage")
            if getattr(self, k) != fields[k].default
        }

    def _check_kind_fields(self) -> None:
        """ImageryError (one line) when a field that only other kinds read is set away from its
        default: it would be ignored without a word (e.g. a granule cache for a local folder)."""
        from plastics_core.errors import ImageryError

        kind, fields = self.resolved_kind(), type(self).model_fields
        ignored = [
            name
            for name, kinds in KIND_FIELDS.items()
            if kind not in kinds and getattr(self, name) != fields[name].default
        ]
        if ignored:
            users = sorted({k for name in ignored for k in KIND_FIELDS[name]})
            raise ImageryError(
                f"{', '.join(ignored)} apply to imagery kind {' / '.join(users)} only, not {kind!r}: "
                "unset them or choose that kind"
            )

    def get_source(self) -> Any:
        """Construct the :class:`plastics_core.imagery.ImagerySource` (lazily, by kind)."""
        from plastics_core.imagery.factory import make_source

        return make_source(**self.spec())

    def spec(self) -> dict[str, Any]:
        """The JSON spec :func:`plastics_core.imagery.factory.make_source` rebuilds this source from
        (what a remote tile job receives)."""
        spec: dict[str, Any] = {
            "kind": self.resolved_kind(),
            "path": self.resolved_path(),
            "seed": self.seed,
            "plant_tpa": self.plant_tpa,
            "collection": self.resolved_collection(),
        }
        if self.granule_cache:
            spec |= {
                "granule_cache": self.granule_cache,
                "granule_cache_max_bytes": int(self.granule_cache_max_gb * 1e9),
            }
        return spec | self._selection()


class ModelStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the GPW model files live (folder, ``s3://`` or ``https://``), sha256-verified."""

    location: str = Field(default="", description="model store location; '' = $PLASTICS_MODEL_STORE")
    cache_dir: str | None = Field(default=None, description="download cache for remote stores")

    def get_store(self) -> Any:
        from plastics_core.models.store import ModelStore

        cache = Path(self.cache_dir) if self.cache_dir else None  # None: $PLASTICS_CACHE/models
        return ModelStore(self.location or default_model_store(), cache)


class GeocoderResource(ConfigurableResource):  # type: ignore[type-arg]
    """Reverse geocoder for enriched sites: ``places`` (nearest populated place, shipped data, no
    network), ``offline`` (no address at all), ``nominatim`` (online, OSM) or ``fixture``."""

    kind: GeocoderKind = Field(
        default="", description="places | offline | nominatim | fixture; '' = $PLASTICS_GEOCODER or places"
    )
    cache_dir: str | None = Field(
        default=None,
        description="on-disk cache for nominatim answers; None = $PLASTICS_GEOCODER_CACHE or .cache/geocode",
    )
    fixture: str | None = Field(
        default=None,
        description="JSON file of canned answers (kind fixture); None = $PLASTICS_GEOCODER_FIXTURE",
    )

    def get_geocoder(self) -> Any:
        from plastics_core.method import enrich

        kind = self.kind or env_setting("PLASTICS_GEOCODER", "places")
        if kind == "places":
            from plastics_core.method.places import PlaceGeocoder

            return PlaceGeocoder()
        if kind == "offline":
            return enrich.OfflineGeocoder()
        if kind == "nominatim":
            return enrich.NominatimGeocoder(
                cache_dir=self.cache_dir or env_setting("PLASTICS_GEOCODER_CACHE", ".cache/geocode")
            )
        if kind == "fixture":
            fixture = self.fixture or env_setting("PLASTICS_GEOCODER_FIXTURE")
            if not fixture:
                raise ParameterError("geocoder 'fixture' needs a JSON file: set PLASTICS_GEOCODER_FIXTURE")
            return enrich.FixtureGeocoder(fixture)
        raise ParameterError(f"unknown geocoder {kind!r}: use one of {', '.join(GEOCODER_KINDS)}")


class StoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """The output store (``location``: a folder or ``s3://bucket/prefix``) and the folder of ROI
    files ``roi_sensor`` watches (``roi_dir``). '' = the environment at run time."""

    location: str = Field(
        default="", description="folder or s3:// URL; '' = $PLASTICS_STORE or ./.plastics/store"
    )
    roi_dir: str = Field(
        default="",
        description="folder or s3:// prefix of ROI GeoJSON files watched by "
        "roi_sensor; '' = $PLASTICS_ROI_DIR or ./rois",
    )

    def resolved(self) -> str:
        return self.location or default_store()

    def path(self) -> Any:
        """The store root as a UPath (S3 endpoint from $AWS_ENDPOINT_URL)."""
        from plastics_core.storage.store import store_path

        return store_path(self.resolved())

    def roi_folder(self) -> Any:
        """The watched ROI folder as a UPath."""
        from plastics_core.storage.store import store_path

        return store_path(self.roi_dir or env_setting("PLASTICS_ROI_DIR", DEFAULT_ROI_DIR))

    def load_roi(self, name: str) -> Any:
        """ROI ``name``'s geometry (EPSG:4326): registered in the store, else from the watched folder."""
        return load_roi(self.path(), name, self.roi_folder())

    def roi_hash(self, name: str) -> str:
        """sha256 of ROI ``name``'s canonical geometry (part of the run hash)."""
        from plastics_core.params import geometry_hash

        return geometry_hash(self.load_roi(name))

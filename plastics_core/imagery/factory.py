"""Build an imagery source from a plain spec (kind, path, seed, plant_tpa), without Dagster.

The Dagster ``imagery`` resource and the remote tile job (:mod:`plastics_core.execution.tile_job`, run on an
EarthOne worker from a JSON spec) both build their source here, so the same spec gives the same
source in either place.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from plastics_core.errors import ImageryError

IMAGERY_KINDS = ("synthetic", "local", "stac", "earthone")


def tpa_planted_sites(path: Path | None = None) -> list[Any]:
    """The known Bali landfills (``gpw/tpa_polygons.geojson``, e.g. TPA Temesi) as planted sites."""
    from shapely.geometry import shape

    from plastics_core.synthetic.background import default_shared_dir
    from plastics_core.synthetic.sites import PlantedSite

    path = path or default_shared_dir().resolve() / "data" / "gpw" / "tpa_polygons.geojson"
    if not path.exists():
        raise ImageryError(f"{path} not found: set PLASTICS_SHARED to the shared data folder")
    features = json.loads(path.read_text())["features"]
    return [PlantedSite(str(f["properties"]["Name"]), shape(f["geometry"])) for f in features]


def make_source(
    kind: str = "synthetic",
    path: str | None = None,
    seed: int = 0,
    plant_tpa: bool = True,
    collection: str = "sentinel-2-l1c",
    granule_cache: str | None = None,
    granule_cache_max_bytes: int = 50 * 1024**3,
    max_cloud_cover: float | None = None,
    min_coverage: float | None = None,
) -> Any:
    """The :class:`plastics_core.imagery.ImagerySource` of ``kind`` (optional libraries load lazily).

    ``path``: GeoTIFF folder (``local``) or STAC API URL (``stac``); ``collection``: ``stac`` only
    (:func:`plastics_core.imagery.stac.stac_source`); ``seed`` / ``plant_tpa``: ``synthetic`` only.
    ``granule_cache`` (folder or ``s3://``) / ``granule_cache_max_bytes``: ``stac`` only, the
    :class:`~plastics_core.imagery.granule_cache.GranuleCache` (None: no cache).
    ``max_cloud_cover`` (percent) / ``min_coverage`` (fraction of a tile): ``stac`` only, the scene
    selection of :class:`~plastics_core.imagery.stac_config.StacConfig` (None: its default).
    ``earthone`` reads its credentials from the environment."""
    if kind == "synthetic":
        from plastics_core.imagery.synthetic import SyntheticSource

        return SyntheticSource(sites=tpa_planted_sites() if plant_tpa else (), seed=seed)
    if kind == "local":
        if not path:
            raise ImageryError(
                "imagery kind 'local' needs a folder: set PLASTICS_IMAGERY_PATH or --imagery local:DIR"
            )
        from plastics_core.imagery.local import LocalGeoTIFFSource

        return LocalGeoTIFFSource(path)
    if kind == "stac":
        from plastics_core.imagery.stac import stac_source

        source = stac_source(path, collection)
        cfg = source.config
        source.config = replace(
            cfg,
            max_cloud_cover=cfg.max_cloud_cover if max_cloud_cover is None else max_cloud_cover,
            min_coverage=cfg.min_coverage if min_coverage is None else min_coverage,
        )
        if granule_cache:
            from plastics_core.imagery.granule_cache import GranuleCache

            source.config = replace(
                source.config, granule_cache=GranuleCache(granule_cache, granule_cache_max_bytes)
            )
        return source
    if kind == "earthone":
        from plastics_core.imagery.earthone import EarthOneSource  # credentials from the environment

        return EarthOneSource()
    raise ImageryError(f"unknown imagery kind {kind!r}: use one of {', '.join(IMAGERY_KINDS)}")

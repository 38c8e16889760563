"""Published sites for the review tests: a registry built by the real registry code from per-window
enriched sites near TPA Temesi (east Bali), published by the real publication code."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
from sqlalchemy import Engine

from plastics_core.method.enrich import site_id
from plastics_core.method.site_registry import build_site_registry
from plastics_core.sitedb.publish import PublishResult, RunInfo, publish_roi

ROI = "temesi"
RUN = "0123456789ab"
#: (name, lon, lat, address); the first is TPA Temesi itself
PLACES = [
    ("temesi", 115.3504, -8.5620, "TPA Temesi, Gianyar, Bali"),
    ("north", 115.3600, -8.5300, "Jl. Raya <b>Bangli</b> & Sons"),
    ("west", 115.3100, -8.5400, "Sukawati, Gianyar"),
    ("east", 115.3900, -8.5800, ""),
]


def enriched(scores: Mapping[str, float], jitter: float = 0.0) -> gpd.GeoDataFrame:
    """Enriched sites of one window: the named places with these pixel scores (lon shifted by ``jitter`` deg)."""
    rows = []
    for name, lon, lat, address in PLACES:
        if name not in scores:
            continue
        x = lon + jitter
        rows.append(
            {
                "site_id": site_id(x, lat),
                "name": name,
                "lon": x,
                "lat": lat,
                "score": scores[name],
                "patch_mean": min(1.0, scores[name] + 0.05),
                "address": address,
            }
        )
    frame = (
        gpd.GeoDataFrame(
            rows,
            geometry=gpd.points_from_xy([r["lon"] for r in rows], [r["lat"] for r in rows]),
            crs="EPSG:4326",
        )
        if rows
        else gpd.GeoDataFrame({"site_id": []}, geometry=[], crs="EPSG:4326")
    )
    return frame


def run_for(roi: str) -> str:
    """The run hash the tests publish ``roi`` under (:data:`RUN` for :data:`ROI`; a run hash
    identifies one ROI)."""
    import hashlib

    return RUN if roi == ROI else hashlib.sha256(roi.encode()).hexdigest()[:12]


def publish(
    engine: Engine, windows: Mapping[str, gpd.GeoDataFrame], roi: str = ROI, run: str | None = None
) -> PublishResult:
    """Build the registry of ``windows`` (window -> enriched sites) and publish it."""
    run = run or run_for(roi)
    per_window = {w: (g, None) for w, g in windows.items()}
    registry = build_site_registry(per_window)
    return publish_roi(engine, RunInfo(run_hash=run, roi=roi), registry, per_window)


def temesi_registry_id(windows: Mapping[str, gpd.GeoDataFrame]) -> str:
    """The registry site id of the Temesi site (its first detection's H3 cell)."""
    registry = build_site_registry({w: (g, None) for w, g in windows.items()})
    return str(registry.loc[registry["name"] == "temesi", "site_id"].iloc[0])


def write_store(
    store: Path, windows: list[str], run: str | None = None, roi: str = ROI, truecolor: bool = True
) -> None:
    """A heatmap COG per window (one 200 x 200 px tile at 10 m around Temesi, EPSG:32750, bands: the
    pair ``A|B`` and ``median``) and, with ``truecolor``, the window's cached composite, written
    with the project's own writers at the store's paths."""
    import datetime as dt

    import numpy as np
    from affine import Affine
    from pyproj import Transformer
    from upath import UPath

    from plastics_core.execution.composite_cache import cache_folder, composite_bytes
    from plastics_core.geo.periods import pair_periods
    from plastics_core.geo.raster import Raster
    from plastics_core.method.composite import Composite
    from plastics_core.storage.layout import asset_path
    from plastics_core.storage.outputs import write_cog

    run = run or run_for(roi)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32750", always_xy=True).transform(115.3504, -8.5620)
    transform = Affine(10.0, 0, round(x) - 1000.0, 0, -10.0, round(y) + 1000.0)
    rng = np.random.default_rng(7)
    tile = "tile_a"
    for window in windows:
        first, second = pair_periods(dt.date.fromisoformat(window))
        heat = rng.random((2, 200, 200)).astype(np.float32) * 0.3
        heat[:, 90:110, 90:110] = 0.9
        raster = Raster(heat, "EPSG:32750", transform, (f"{first.label}|{second.label}", "median"), name=tile)
        folder = asset_path(UPath(str(store)), "heatmaps", roi, window, run)
        write_cog(raster, Path(folder.path) / f"{tile}.tif")
        if truecolor:
            data = (rng.random((12, 200, 200)) * 2000 + 500).astype(np.float32).round()
            mask = np.zeros((200, 200), dtype=bool)
            comp = Composite(data, mask, first, "EPSG:32750", transform, 3)
            target = cache_folder(UPath(str(store)), roi, run, tile) / f"{first.label}.npz"
            Path(target.path).parent.mkdir(parents=True, exist_ok=True)
            Path(target.path).write_bytes(composite_bytes(comp, ("a", "b", "c")))

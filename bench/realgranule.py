"""Benchmark: one full-size Sentinel-2 granule (10980 x 10980 px at 10 m) through the granule cache.

Input (generated here, not committed; kept in the work folder for a rerun): the clear real
Slovenia L1C scene of 2015-07-11 mirror-tiled up to a full ESA granule (109.8 km), written per
band at native 10/20/60 m as lossless JPEG 2000 with 1024 x 1024 code tiles and 6 resolution
levels, as ESA writes them.

Every default DLTile whose centre lies in the granule reads, through one
:class:`~plastics_core.imagery.granule_cache.GranuleCache`, what a tile-quarter reads of one
scene: the 12 model bands onto its 10 m grid and the 10 bands of the 60 m cloud mask onto its
60 m grid (the resolution level nearest 60 m). Measured (CPU seconds of this process):

- the fill: every JPEG 2000 decode of the granule (blocks of the bands and of the levels), which
  a quarter pays once per scene; divided by the tiles a granule serves (granules are laid out
  every 100 km, so a tile belongs to one granule: the tiles whose centre lies in a 100 km square)
  it is the amortized decode per scene and tile;
- without the cache, for a sample of tiles: the same reads as JPEG 2000 windows (the decode a
  tile pays per scene without the cache);
- after the fill, for the same sample: the reads of cached blocks and the warps.

No cloud mask is computed and no model runs: this section measures decoding.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from bench.realimagery import SHARED, _mirror_tile

SIZE = 10980  # px at 10 m: an ESA granule
SPACING_M = 100_000.0  # granules are laid out every 100 km and overlap by 9.8 km


def write_full_granule(folder: Path) -> tuple[dict[str, Path], str, Affine]:
    """The 13 band files of the full-size granule under ``folder`` (reused when present)."""
    from plastics_core.geo.bands import BAND_NAMES
    from tests._granules import NATIVE_RES, native, slovenia_scenes, write_jp2

    real = slovenia_scenes(SHARED)[0]
    transform = Affine(10, 0, 400_020.0, 0, -10, 5_200_020.0)
    paths = {band: folder / f"{band}.jp2" for band in NATIVE_RES}
    for band, res in NATIVE_RES.items():
        if paths[band].exists():
            continue
        layer = real.cirrus if band == "B10" else real.bands[BAND_NAMES.index(band)]
        full = _mirror_tile(layer, SIZE, SIZE)
        write_jp2(paths[band], native(full, res), real.crs, transform @ Affine.scale(res / 10))
    return paths, real.crs, transform


def _tiles(crs: str, transform: Affine) -> tuple[list[Any], int]:
    """Default DLTiles whose centre lies in the granule, and how many lie in its 100 km square."""
    from plastics_core.geo.tiles import plan_tiles

    x0, y0 = transform.c, transform.f
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    ll = box(*to_ll.transform_bounds(x0, y0 - SIZE * 10, x0 + SIZE * 10, y0))
    inside, own = [], 0
    for tile in plan_tiles(ll):
        if str(tile.crs) != crs:
            continue
        left, bottom, right, top = tile.bounds
        cx, cy = (left + right) / 2, (bottom + top) / 2
        if x0 <= cx < x0 + SIZE * 10 and y0 - SIZE * 10 < cy <= y0:
            inside.append(tile)
            own += x0 <= cx < x0 + SPACING_M and y0 - SPACING_M < cy <= y0
    return inside, own


def _scene_reads(tile: Any, paths: dict[str, Path], read: Any, read_coarse: Any) -> None:
    """What one tile reads of one scene: 12 bands at 10 m, the mask's 10 bands at 60 m."""
    from plastics_core.geo.bands import BAND_NAMES
    from plastics_core.imagery.cloudmask import S2CLOUDLESS_BANDS

    grid = (str(tile.crs), tile.transform, tile.shape)
    factor = 6
    coarse = (
        str(tile.crs),
        tile.transform @ Affine.scale(factor),
        (math.ceil(tile.shape[0] / factor), math.ceil(tile.shape[1] / factor)),
    )
    for band in BAND_NAMES:
        read(band, paths[band], grid)
    for band in S2CLOUDLESS_BANDS:
        read_coarse(band, paths[band], coarse)


def measure(work: str | None = None, sample: int = 6) -> dict[str, Any]:
    """Write (or reuse) the granule in ``work`` and time the fill, the no-cache and the cached
    reads; ``sample`` tiles (spread over the granule) for the per-tile figures."""
    import tempfile

    import rasterio

    from plastics_core.imagery.granule_cache import GranuleCache
    from plastics_core.imagery.local import read_on_grid
    from plastics_core.imagery.stac_read import overview_level
    from tests._granules import ASSET_KEYS

    folder = Path(work or tempfile.mkdtemp(prefix="bench-fullgranule-"))
    folder.mkdir(parents=True, exist_ok=True)
    w = time.perf_counter()
    paths, crs, transform = write_full_granule(folder)
    out: dict[str, Any] = {
        "granule_px": [SIZE, SIZE],
        "write_s": round(time.perf_counter() - w, 1),
        "jp2_bytes": sum(p.stat().st_size for p in paths.values()),
    }
    tiles, own = _tiles(crs, transform)
    picks = [tiles[int(i)] for i in np.linspace(0, len(tiles) - 1, sample)]
    out.update(tiles_reading_the_granule=len(tiles), tiles_per_granule=own, sample_tiles=len(picks))

    def direct(band: str, path: Path, grid: Any) -> None:
        with rasterio.open(path) as src:
            read_on_grid(src, *grid, indexes=[1])

    def direct_coarse(band: str, path: Path, grid: Any) -> None:
        with rasterio.open(path) as src:
            level = overview_level(src, abs(grid[1].a))
        with rasterio.open(path, overview_level=level) as src:
            read_on_grid(src, *grid, indexes=[1])

    w, c = time.perf_counter(), time.process_time()
    for tile in picks:
        _scene_reads(tile, paths, direct, direct_coarse)
    out["no_cache_per_tile_wall_cpu_s"] = [
        (time.perf_counter() - w) / len(picks),
        (time.process_time() - c) / len(picks),
    ]

    cache = GranuleCache(str(folder / "cache"))
    scene = "full_granule"

    def cached(band: str, path: Path, grid: Any) -> None:
        cache.read(scene, ASSET_KEYS[band], lambda: rasterio.open(path), grid)

    def cached_coarse(band: str, path: Path, grid: Any) -> None:
        cache.read_coarse(scene, ASSET_KEYS[band], lambda **kw: rasterio.open(path, **kw), grid)

    w, c = time.perf_counter(), time.process_time()
    for tile in tiles:
        _scene_reads(tile, paths, cached, cached_coarse)
    out["fill_wall_cpu_s"] = [time.perf_counter() - w, time.process_time() - c]
    out["fill_timer"] = {k: list(v) for k, v in cache.timer.totals.items()}
    out["fill_stats"] = dict(cache.stats)
    w, c = time.perf_counter(), time.process_time()
    for tile in picks:
        _scene_reads(tile, paths, cached, cached_coarse)
    out["hit_per_tile_wall_cpu_s"] = [
        (time.perf_counter() - w) / len(picks),
        (time.process_time() - c) / len(picks),
    ]
    decode = out["fill_timer"].get("granule_decode", [0.0, 0.0])[1]
    out["decode_cpu_s_per_scene_and_tile"] = {
        "no_cache": round(out["no_cache_per_tile_wall_cpu_s"][1] - out["hit_per_tile_wall_cpu_s"][1], 3),
        "cache_amortized": round(decode / own, 3),
    }
    return out


def run() -> dict[str, Any]:
    """:func:`measure` plus table rows (decode core-seconds per scene and tile)."""
    result = measure()
    d = result["decode_cpu_s_per_scene_and_tile"]
    result["rows"] = [
        {
            "case": "full granule: JP2 decode core-s per scene and tile, no cache",
            "rate": d["no_cache"],
            "unit": "s",
        },
        {
            "case": "full granule: JP2 decode core-s per scene and tile, cache (amortized)",
            "rate": d["cache_amortized"],
            "unit": "s",
        },
    ]
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, default=float))

"""Benchmark: one tile-quarter on real formats through the STAC path, before and after the
granule decode cache (blocks of each granule band decoded once, when a tile first needs them).

Inputs (generated here, not committed): the five real Slovenia L1C scenes of 2015-Q3 (two of
them fully cloudy) mirror-tiled up to one granule covering a block of default DLTiles (897 + 2
x 22 px), written per band at native 10/20/60 m as lossless tiled JPEG 2000 (1024 x 1024 code
tiles, resolution levels) with STAC items, served over HTTP (Range) on 127.0.0.1.

Paths (same tile, same quarter):

- ``before``: the previous behaviour: no cache, s2cloudless at 10 m from every 10 m window,
  every band window decoded from the JPEG 2000 for every tile;
- ``after``: granule cache + s2cloudless at 60 m from resolution levels + fully masked days not
  decoded at 10 m. Every tile of the granule is loaded once through the cache (``fill``: each
  block decoded when a tile first needs it; the fill's decodes are amortized over the tiles the
  granule holds), then one tile again (reads of cached blocks only).
- ``one_tile_roi`` (:func:`measure_roi`): what a region of one tile pays for decoding, on a
  granule of 3 x 3 tiles (one clear scene): each tile read alone through an empty cache (the
  blocks it needs), against decoding the 13 bands whole (the cache before it kept blocks).
- ``default_scene_selection``: the ``after`` fill again with the scene selection a run uses by
  default (catalog cloud cover <= 80 %) and with GPW's 2022 rule (<= 30 %, footprints >= 90 % of
  the tile); ``before`` and ``after`` read every scene (``max_cloud_cover`` 100).

Stages (wall and CPU seconds of this process): catalog, fetch, decode, warp, cloud mask,
composite, pixel model, patch model, and in ``after`` the fill's overhead. ``fetch`` (wall only) = the bytes the reads requested from
the server at the loopback rate measured by plain GETs of every file. Decoding is the JPEG 2000
part: in ``before`` the window reads minus fetch minus the warp + cached-block reads measured in
``after``; in ``after`` the block decodes of the fill divided by the tiles per granule.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from bench.common import model_store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
QUARTER = (dt.date(2015, 7, 1), dt.date(2015, 10, 1))


def _mirror_tile(arr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(..., y, x) -> (..., rows, cols) by repeating the array and its mirror images (no seams)."""
    top = np.concatenate([arr, arr[..., ::-1]], axis=-1)
    block = np.concatenate([top, top[..., ::-1, :]], axis=-2)
    reps = (1,) * (arr.ndim - 2) + (math.ceil(rows / block.shape[-2]), math.ceil(cols / block.shape[-1]))
    return np.tile(block, reps)[..., :rows, :cols]


def granule_scenes(tiles_per_side: int = 2) -> tuple[list[Any], list[Any]]:
    """The real scenes tiled up to a granule over ``tiles_per_side``^2 default DLTiles near
    Ljubljana; returns (scenes, tiles fully inside the granule)."""
    from plastics_core.geo.tiles import plan_tiles
    from tests._granules import Scene10m, slovenia_scenes

    real = slovenia_scenes(SHARED)
    to_ll = Transformer.from_crs(real[0].crs, "EPSG:4326", always_xy=True)
    x0, y0 = 470_000.0, 5_100_000.0
    span = 8970.0 * (tiles_per_side - 1) + 100.0
    ll = box(*to_ll.transform_bounds(x0, y0 - span, x0 + span, y0))
    tiles = [t for t in plan_tiles(ll) if t.crs == real[0].crs]
    left = min(t.bounds[0] for t in tiles)
    bottom = min(t.bounds[1] for t in tiles)
    right = max(t.bounds[2] for t in tiles)
    top = max(t.bounds[3] for t in tiles)
    left, top = math.floor(left / 60) * 60, math.ceil(top / 60) * 60
    cols, rows = math.ceil((right - left) / 60) * 6, math.ceil((top - bottom) / 60) * 6
    transform = Affine(10, 0, left, 0, -10, top)
    out = [
        Scene10m(
            s.id,
            _mirror_tile(s.bands, rows, cols),
            _mirror_tile(s.cirrus, rows, cols),
            s.datetime,
            s.cloud_cover,
            s.crs,
            transform,
        )
        for s in real
    ]
    return out, tiles


def _timed_load(source: Any, tile: Any, period: Any) -> tuple[Any, dict[str, list[float]], float, float]:
    source.timer.reset()
    w, c = time.perf_counter(), time.process_time()
    stack = source.load(tile, period)
    return (
        stack,
        {k: list(v) for k, v in source.timer.totals.items()},
        time.perf_counter() - w,
        time.process_time() - c,
    )


def _loopback_rate(url: str, folder: Path) -> float:
    """Bytes per second of plain HTTP GETs of every JPEG 2000 file from the local server."""
    import requests

    files = sorted(folder.rglob("*.jp2"))
    w = time.perf_counter()
    total = sum(
        len(requests.get(f"{url}/{p.relative_to(folder).as_posix()}", timeout=60).content) for p in files
    )
    return total / (time.perf_counter() - w)


def _models_on(comp: Any) -> dict[str, list[float]]:
    from plastics_core.method.heatmap import pixel_heatmap
    from plastics_core.method.patches import patch_scores
    from plastics_core.models import DEFAULT_MODEL, DEFAULT_PATCH_MODEL
    from plastics_core.models.infer import PixelClassifier
    from plastics_core.models.patch_classifier import PatchClassifier

    store = model_store()
    pixel = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL))
    patch = PatchClassifier.from_ref(store.resolve(DEFAULT_PATCH_MODEL))
    out = {}
    for name, fn in (
        ("pixel_model", lambda: pixel_heatmap([comp, comp], [(0, 1)], pixel)),
        ("patch_model", lambda: patch_scores([comp, comp], [(0, 1)], patch, 8, 0.1)),
    ):
        fn()  # warm-up (graph tracing)
        w, c = time.perf_counter(), time.process_time()
        fn()
        out[name] = [time.perf_counter() - w, time.process_time() - c]
    return out


def measure(tiles_per_side: int = 2, work: str | None = None, before: bool = True) -> dict[str, Any]:
    """Build the granule (or reuse it in ``work``), serve it, and time the before / after paths on
    one tile-quarter. ``before=False`` skips the slow 10 m-mask path: its figures then repeat the
    60 m no-cache load (``out["before_measured"]`` False)."""
    from plastics_core.geo.periods import Period
    from plastics_core.imagery.granule_cache import GranuleCache
    from plastics_core.imagery.stac import StacSource
    from plastics_core.imagery.stac_config import StacConfig
    from plastics_core.method.composite import composite
    from tests._granules import write_catalog
    from tests._stac_server import serve

    folder = Path(work or tempfile.mkdtemp(prefix="bench-granules-"))
    template = json.loads(
        (SHARED / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json").read_text()
    )["features"][0]
    t0 = time.perf_counter()
    scenes, tiles = granule_scenes(tiles_per_side)
    if (folder / "items.json").exists():  # granules of an earlier run with the same arguments
        items = json.loads((folder / "items.json").read_text())["features"]
    else:
        items = write_catalog(scenes, folder, template)
    out: dict[str, Any] = {
        "granule_px": list(scenes[0].bands.shape[1:]),
        "scenes": len(scenes),
        "tiles_in_granule": len(tiles),
        "write_s": round(time.perf_counter() - t0, 1),
        "jp2_bytes": sum(p.stat().st_size for p in folder.rglob("*.jp2")),
    }
    period = Period(*QUARTER)
    tile = tiles[0]
    base_cfg = {"requester_pays": False, "max_cloud_cover": 100.0}
    with serve(folder) as (url, stats):
        plain = StacSource(StacConfig(url=url, **base_cfg))  # the after settings without the cache
        stack_p, t_p, wall_p, cpu_p = _timed_load(plain, tile, period)
        old = StacSource(StacConfig(url=url, cloud_mask_resolution=None, **base_cfg))
        bytes0 = stats.bytes_served
        stack_b, t_b, wall_b, cpu_b = (
            _timed_load(old, tile, period) if before else (stack_p, t_p, wall_p, cpu_p)
        )
        out["before_measured"] = before
        out["fetched_bytes_before"] = stats.bytes_served - bytes0 if before else bytes0
        out["loopback_bytes_per_s"] = rate = _loopback_rate(url, folder)
        cache = GranuleCache(str(folder / "cache"), max_bytes=50 * 1024**3)
        after = StacSource(StacConfig(url=url, granule_cache=cache, **base_cfg))
        stack_fill, t_fill, wall_fill, cpu_fill = _timed_load(after, tile, period)
        out["first_tile_blocks"] = dict(cache.stats)
        for t in tiles[1:]:  # the rest of the granule's tiles: the fill completes
            _, t_more, _, _ = _timed_load(after, t, period)
            t_fill = {
                k: [a + b for a, b in zip(t_fill.get(k, [0.0, 0.0]), v, strict=True)]
                for k, v in t_more.items()
            }
        fill = {k: list(v) for k, v in cache.timer.totals.items()}
        bytes0 = stats.bytes_served
        stack_a, t_a, wall_a, cpu_a = _timed_load(after, tile, period)  # a tile of an already decoded granule
        out["fetched_bytes_hit_tile"] = stats.bytes_served - bytes0
        out["default_scene_selection"] = _selection_decode(
            url, tiles, period, Path(tempfile.mkdtemp(dir=folder))
        )
    comp_b = composite(stack_b, period, "min")
    w, c = time.perf_counter(), time.process_time()
    comp_a = composite(stack_a, period, "min")
    comp_s = [time.perf_counter() - w, time.process_time() - c]
    comp_p, comp_fill = composite(stack_p, period, "min"), composite(stack_fill, period, "min")
    out["composites_identical_with_without_cache"] = all(
        np.array_equal(x.data, comp_a.data) and np.array_equal(x.mask, comp_a.mask)
        for x in (comp_p, comp_fill)
    )
    out["composite_valid_px_10m_mask_60m_mask"] = [int((~comp_b.mask).sum()), int((~comp_a.mask).sum())]
    both = ~comp_b.mask & ~comp_a.mask
    out["composite_max_abs_dn_diff_10m_vs_60m_mask"] = float(
        np.abs(comp_b.data[:, both] - comp_a.data[:, both]).max()
    )
    models = _models_on(comp_a)
    n = len(tiles)
    fetch = [out["fetched_bytes_before"] / rate, 0.0]  # wall at the measured loopback rate; CPU in read
    warp_after = t_a.get("read", [0.0, 0.0])
    decode_b = [max(0.0, t_b["read"][i] - warp_after[i] - fetch[i]) for i in range(2)]
    warp_b = warp_after
    decode_fill = fill.get("granule_decode", [0.0, 0.0])
    encode_fill = fill.get("cache_encode", [0.0, 0.0])
    write_fill = fill.get("cache_write", [0.0, 0.0])
    decode_a = [decode_fill[i] / n for i in range(2)]
    stages_b = {
        "catalog": t_b["catalog"],
        "fetch": fetch,
        "decode": decode_b,
        "warp": warp_b,
        "cloud_mask": t_b.get("cloud_mask", [0.0, 0.0]),
        "composite": comp_s,
        **models,
    }
    # the fill's reads (every tile once) hold its decodes, encodes and writes and, per tile, what a hit
    # read does (60 m mask-band reads, block reads, warp: ``warp``); what is left is the fill's overhead
    # (source headers, band metas, HTTP of the decoded bytes outside the decode calls)
    fill_rest = [
        max(0.0, (t_fill["read"][i] - decode_fill[i] - encode_fill[i] - write_fill[i]) / n - warp_after[i])
        for i in range(2)
    ]
    stages_a = {
        "catalog": t_a["catalog"],
        "fill_overhead": fill_rest,
        "decode": decode_a,
        "cache_encode": [encode_fill[i] / n for i in range(2)],
        "cache_write": [write_fill[i] / n for i in range(2)],
        "warp": warp_after,
        "cloud_mask": t_a.get("cloud_mask", [0.0, 0.0]),
        "composite": comp_s,
        **models,
    }
    for name, stages in (("before", stages_b), ("after", stages_a)):
        tot = [sum(v[i] for v in stages.values()) for i in range(2)]
        out[name] = {
            "stages_wall_cpu_s": {k: [round(x, 3) for x in v] for k, v in stages.items()},
            "total_wall_s": round(tot[0], 2),
            "total_cpu_s": round(tot[1], 2),
            "decode_share_wall": round(stages["decode"][0] / tot[0], 3),
        }
    out["raw"] = {
        "before": {"load_wall_cpu_s": [wall_b, cpu_b], "timer": t_b},
        "no_cache_60m": {"load_wall_cpu_s": [wall_p, cpu_p], "timer": t_p},
        "after_fill": {"load_wall_cpu_s": [wall_fill, cpu_fill], "timer": t_fill, "cache": fill},
        "after_hit": {"load_wall_cpu_s": [wall_a, cpu_a], "timer": t_a},
    }
    out["decode_cpu_s_per_tile_quarter"] = {"before": round(decode_b[1], 2), "after": round(decode_a[1], 2)}
    out["cache_stats"] = dict(cache.stats)
    out["items"] = len(items)
    return out


def _selection_decode(url: str, tiles: list[Any], period: Any, folder: Path) -> dict[str, Any]:
    """The granule's JPEG 2000 decode per tile-quarter with the default scene selection (catalog
    cloud cover <= 80 %), and with GPW's 2022 rule (<= 30 %, footprints >= 90 % of the tile), each
    through an empty cache filled by every tile of the granule."""
    from plastics_core.imagery.granule_cache import GranuleCache
    from plastics_core.imagery.stac import StacSource
    from plastics_core.imagery.stac_config import StacConfig

    out: dict[str, Any] = {}
    for name, selection in (("default", {}), ("gpw_2022", {"max_cloud_cover": 30.0, "min_coverage": 0.9})):
        cache = GranuleCache(str(folder / name), max_bytes=50 * 1024**3)
        source = StacSource(StacConfig(url=url, requester_pays=False, granule_cache=cache, **selection))
        days = [len(source.load(t, period).dates) for t in tiles]
        decode = cache.timer.totals.get("granule_decode", [0.0, 0.0])[1]
        out[name] = {
            "days_read_per_tile": days,
            "blocks_decoded": cache.stats["decodes"],
            "decode_cpu_s_per_tile_quarter": round(decode / len(tiles), 2),
        }
    return out


def measure_roi(tiles_per_side: int = 3) -> dict[str, Any]:
    """What one tile of a larger granule pays to decode through the cache: the clear 2015-07-11
    scene mirror-tiled over ``tiles_per_side``^2 tiles and written as JPEG 2000 (1024 px code
    tiles); every tile read alone onto its grid with an empty cache (all 13 bands, no mask), its
    block decodes timed; against decoding the 13 bands whole (a cache of whole granule bands)."""
    import rasterio

    from plastics_core.imagery.granule_cache import GranuleCache
    from tests._granules import ASSET_KEYS, write_granule

    scenes, tiles = granule_scenes(tiles_per_side)
    scene = scenes[0]
    with tempfile.TemporaryDirectory(prefix="bench-roi-") as tmp:
        folder = Path(tmp)
        paths = write_granule(scene, folder)
        w, c = time.perf_counter(), time.process_time()
        for path in paths.values():
            with rasterio.open(path) as src:
                src.read(1)
        whole = [time.perf_counter() - w, time.process_time() - c]
        per_tile, blocks = [], []
        for k, tile in enumerate(tiles):
            cache = GranuleCache(str(folder / f"cache{k}"))
            grid = (str(tile.crs), tile.transform, tile.shape)
            for band, path in paths.items():
                cache.read(scene.id, ASSET_KEYS[band], lambda p=path: rasterio.open(p), grid)
            per_tile.append(cache.timer.totals["granule_decode"][1])
            blocks.append(cache.stats["decodes"])
        in_granule = 0
        for path in paths.values():
            with rasterio.open(path) as src:
                bh, bw = src.block_shapes[0]
                in_granule += math.ceil(src.height / bh) * math.ceil(src.width / bw)
    return {
        "granule_px": list(scene.bands.shape[1:]),
        "tiles": len(tiles),
        "blocks_in_granule": in_granule,
        "blocks_per_tile_min_mean_max": [min(blocks), round(sum(blocks) / len(blocks), 1), max(blocks)],
        "decode_cpu_s_per_tile_min_mean_max": [
            round(min(per_tile), 2),
            round(sum(per_tile) / len(per_tile), 2),
            round(max(per_tile), 2),
        ],
        "whole_bands_decode_wall_cpu_s": [round(x, 2) for x in whole],
    }


def run(tiles_per_side: int = 2) -> dict[str, Any]:
    """:func:`measure` and :func:`measure_roi` plus table rows (seconds per tile-quarter)."""
    result = measure(tiles_per_side)
    result["one_tile_roi"] = measure_roi()
    rows = []
    for name in ("before", "after"):
        r = result[name]
        rows.append(
            {
                "case": f"real JP2 tile-quarter {name} (s; {r['decode_share_wall']:.0%} decode)",
                "rate": r["total_wall_s"],
                "unit": "s",
            }
        )
        rows.append(
            {
                "case": f"  JP2 decode core-s per tile-quarter, {name}",
                "rate": result["decode_cpu_s_per_tile_quarter"][name],
                "unit": "s",
            }
        )
    for name, sel in result["default_scene_selection"].items():
        rows.append(
            {
                "case": f"  JP2 decode core-s per tile-quarter, after, {name} scene selection",
                "rate": sel["decode_cpu_s_per_tile_quarter"],
                "unit": "s",
            }
        )
    roi = result["one_tile_roi"]
    rows.append(
        {
            "case": "  JP2 decode core-s, one tile alone, blocks (mean)",
            "rate": roi["decode_cpu_s_per_tile_min_mean_max"][1],
            "unit": "s",
        }
    )
    rows.append(
        {
            "case": "  JP2 decode core-s, one tile alone, whole bands",
            "rate": roi["whole_bands_decode_wall_cpu_s"][1],
            "unit": "s",
        }
    )
    result["rows"] = rows
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=float))

"""Image chips of a site for the review page: heatmap and true colour around a point, per window.

Read from the store (nothing is computed from imagery here):

- heatmap: ``<store>/heatmaps/<roi>/<window>/<run-hash>/<tile>.tif``, band ``median`` (pixel
  score in [0, 1]), drawn with the ``magma`` colour map (NaN transparent);
- true colour: the window's cached composite ``<store>/composites/<roi>/<run-hash>/<tile>/<period>.npz``
  (bands B04, B03, B02 of Sentinel-2 L1C DN; ``<period>`` is the heatmap's first pair period, the
  window's own quarter). The cache holds a composite only where the run made one (the tile job
  caches the composites it computes); when it is missing the page says so and shows the heatmap.

A chip is ``size`` x ``size`` pixels (10 m pixels: 64 px = 640 m) of the tile holding the point,
as PNG bytes, plus its bounds in EPSG:4326 (for the context map).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import Transformer
from upath import UPath

from plastics_core.storage.layout import asset_folder, asset_path

KINDS = ("heatmap", "truecolor")
CHIP_PX = 64
#: DN (reflectance x 10000) shown as full brightness in true colour
TRUECOLOR_MAX_DN = 3000.0
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RUN = re.compile(r"^[0-9a-f]{12}$")
_TILE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Chip:
    """A chip: PNG bytes (RGBA), and its bounds (west, south, east, north) in degrees, EPSG:4326."""

    png: bytes
    bounds: tuple[float, float, float, float]


def _tiles(folder: UPath) -> list[tuple[str, UPath]]:
    """(tile key, its GeoTIFF) of a heatmap folder: the keys its ``tiles.json`` lists, else every ``*.tif``."""
    from plastics_core.storage.store import safe_name

    listing = folder / "tiles.json"
    if listing.exists():
        try:
            keys = [str(k) for k in json.loads(listing.read_bytes())]
        except (ValueError, TypeError):
            keys = []
        return [(k, folder / f"{safe_name(k)}.tif") for k in keys if _TILE.fullmatch(k)]
    if not folder.exists():
        return []
    return sorted((p.name.removesuffix(".tif"), p) for p in folder.iterdir() if p.name.endswith(".tif"))


def heatmap_windows(store: UPath, roi: str, run_hash: str) -> list[str]:
    """The windows (``YYYY-MM-DD``, sorted) with a stored heatmap folder for this run."""
    folder = asset_folder(store, "heatmaps", roi)
    if not folder.exists() or not _RUN.fullmatch(run_hash):
        return []
    return sorted(p.name for p in folder.iterdir() if _DAY.fullmatch(p.name) and (p / run_hash).exists())


def _window_of(ds: Any, lon: float, lat: float, size: int) -> tuple[Any, Any] | None:
    """(rasterio Window, its affine transform) of ``size`` px centred on lon/lat, or None when the
    point is outside the raster."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    x, y = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True).transform(lon, lat)
    row, col = ds.index(x, y)
    if not (0 <= row < ds.height and 0 <= col < ds.width):
        return None
    win = Window(col - size // 2, row - size // 2, size, size)
    return win, window_transform(win, ds.transform)


def _bounds(crs: Any, transform: Any, size: int) -> tuple[float, float, float, float]:
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs = [transform.c, transform.c + transform.a * size]
    ys = [transform.f, transform.f + transform.e * size]
    lons, lats = to_lonlat.transform([xs[0], xs[1], xs[0], xs[1]], [ys[0], ys[0], ys[1], ys[1]])
    return (float(min(lons)), float(min(lats)), float(max(lons)), float(max(lats)))


def _read_band(ds: Any, band: int, win: Any, size: int) -> np.ndarray:
    """Band ``band`` of ``win`` (``size`` x ``size`` px, may reach past the raster's edge: NaN there),
    float32, read without rasterio's slower boundless path."""
    from rasterio.windows import Window

    out = np.full((size, size), np.nan, dtype=np.float32)
    r0, c0 = int(win.row_off), int(win.col_off)
    r1, c1 = max(r0, 0), max(c0, 0)
    r2, c2 = min(r0 + size, ds.height), min(c0 + size, ds.width)
    if r2 > r1 and c2 > c1:
        out[r1 - r0 : r2 - r0, c1 - c0 : c2 - c0] = ds.read(band, window=Window(c1, r1, c2 - c1, r2 - r1))
    return out


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _heatmap_rgba(values: np.ndarray) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["magma"]
    colours: np.ndarray = np.asarray(cmap(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)))
    rgba = (colours * 255).astype(np.uint8)
    rgba[..., 3] = np.where(np.isfinite(values), 255, 0)
    return rgba


def _truecolor_rgba(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    scaled = np.clip(np.nan_to_num(rgb, nan=0.0) / TRUECOLOR_MAX_DN, 0.0, 1.0) ** (1 / 1.6)
    out = np.zeros((*rgb.shape[1:], 4), dtype=np.uint8)
    out[..., :3] = (np.moveaxis(scaled, 0, -1) * 255).astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0)
    return out


def _composite_chip(
    store: UPath, roi: str, run_hash: str, tile: str, label: str, window: Any, size: int
) -> np.ndarray | None:
    from plastics_core.execution.composite_cache import cache_folder

    path = cache_folder(store, roi, run_hash, tile) / f"{label}.npz"
    if not path.exists():
        return None
    with np.load(io.BytesIO(path.read_bytes())) as z:
        data, mask = z["data"], z["mask"]
        if int(z["n_scenes"]) == 0:
            return None
    r0, c0 = int(window.row_off), int(window.col_off)
    rgb = np.full((3, size, size), np.nan, dtype=np.float32)
    valid = np.zeros((size, size), dtype=bool)
    rs, cs = (
        slice(max(r0, 0), min(r0 + size, data.shape[1])),
        slice(max(c0, 0), min(c0 + size, data.shape[2])),
    )
    dst = (slice(rs.start - r0, rs.stop - r0), slice(cs.start - c0, cs.stop - c0))
    rgb[:, dst[0], dst[1]] = data[[3, 2, 1], rs, cs].astype(np.float32)  # B04, B03, B02
    valid[dst] = ~mask[rs, cs].astype(bool)
    return _truecolor_rgba(rgb, valid)


@dataclass(frozen=True)
class ChipRef:
    """One step of a site's image history: ``period`` (``YYYY-MM-DD_YYYY-MM-DD``) is the first
    composite period of a spectrogram pair, ``window`` the detection window whose heatmap holds the
    pair as band ``band`` (1-based)."""

    period: str
    window: str
    band: int


def _holding(
    store: UPath, roi: str, run_hash: str, window: str, lon: float, lat: float, size: int
) -> Iterator[tuple[str, Any, Any, Any]]:
    """(tile key, open dataset, chip Window, chip transform) of the heatmap tile holding lon/lat."""
    import rasterio

    folder = asset_path(store, "heatmaps", roi, window, run_hash)
    for key, tif in _tiles(folder):
        if not tif.exists():
            continue
        with rasterio.open(
            tif.path if getattr(tif, "protocol", "") in ("", "file", "local") else str(tif)
        ) as ds:
            found = _window_of(ds, lon, lat, size)
            if found is not None:
                yield key, ds, found[0], found[1]
                return


def _pairs(ds: Any) -> list[tuple[int, str]]:
    """(1-based band, first period label) of each pair band (``A|B``) of a heatmap."""
    out = []
    for i, desc in enumerate(ds.descriptions or (), start=1):
        first = str(desc or "").split("|")[0]
        if "|" in str(desc or "") and _PERIOD.fullmatch(first):
            out.append((i, first))
    return out


def chip_history(
    store: UPath, roi: str, run_hash: str, windows: Sequence[str], lon: float, lat: float
) -> list[ChipRef]:
    """Every pair period the stored heatmaps of ``windows`` hold at lon/lat, oldest first (a later
    window's heatmap wins a period two windows share)."""
    refs: dict[str, ChipRef] = {}
    for window in sorted(w for w in windows if _DAY.fullmatch(w)):
        if not _RUN.fullmatch(run_hash):
            break
        for _, ds, _, _ in _holding(store, roi, run_hash, window, lon, lat, CHIP_PX):
            for band, period in _pairs(ds):
                refs[period] = ChipRef(period, window, band)
    return [refs[p] for p in sorted(refs)]


def render_chip(
    store: UPath,
    roi: str,
    run_hash: str,
    window: str,
    lon: float,
    lat: float,
    kind: str,
    *,
    band: int | None = None,
    period: str | None = None,
    size: int = CHIP_PX,
) -> Chip | None:
    """The ``kind`` chip (:data:`KINDS`) of the point lon/lat (EPSG:4326) from the heatmap of ``window``:
    its band ``band`` (default ``median``), or the cached composite of ``period`` (default the
    window's own quarter). None when the store holds no such heatmap tile, band or composite."""
    from rasterio.windows import Window

    if kind not in KINDS or not _DAY.fullmatch(window) or not _RUN.fullmatch(run_hash):
        return None
    if period is not None and not _PERIOD.fullmatch(period):
        return None
    for key, ds, win, transform in _holding(store, roi, run_hash, window, lon, lat, size):
        bounds = _bounds(ds.crs, transform, size)
        if kind == "heatmap":
            names = list(ds.descriptions or ())
            index = (
                band if band is not None else (names.index("median") + 1 if "median" in names else ds.count)
            )
            if not 1 <= index <= ds.count:
                return None
            values = _read_band(ds, index, win, size)
            return Chip(_png(_heatmap_rgba(values)), bounds)
        labels = [p for _, p in _pairs(ds)]
        own = [p for p in labels if p.startswith(f"{window}_")]
        label = period or (own[0] if own else (labels[-1] if labels else None))
        if label is None:
            return None
        rgba = _composite_chip(
            store, roi, run_hash, key, label, Window(win.col_off, win.row_off, size, size), size
        )
        return Chip(_png(rgba), bounds) if rgba is not None else None
    return None

"""Small synthetic inputs for the preview, registry and report tests (no models, no network).

An ROI near Jakarta (UTM zone 48S, EPSG:32748), a 200 x 200 heatmap at 10 m with two
Gaussian hot spots, blobs/candidates/enriched sites on the hot spots, and monthly contours.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

from plastics_core.geo.raster import Raster

CRS = "EPSG:32748"
ORIGIN = (700000.0, 9320000.0)  # UTM 48S: about 106.8 E, -6.15 S
SIZE = 200
RES = 10.0
HOT = ((60, 50), (140, 150))  # (row, col) of the planted sites


def transform() -> Affine:
    return Affine(RES, 0.0, ORIGIN[0], 0.0, -RES, ORIGIN[1])


def _lonlat(row: float, col: float) -> tuple[float, float]:
    x, y = transform() @ (col + 0.5, row + 0.5)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def site_lonlats() -> list[tuple[float, float]]:
    return [_lonlat(r, c) for r, c in HOT]


def roi():
    (w, s), (e, n) = _lonlat(SIZE, 0), _lonlat(0, SIZE)
    return box(w, s, e, n)


def heatmap() -> Raster:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    z = np.zeros((SIZE, SIZE), np.float32)
    for r, c in HOT:
        z += np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 8.0**2)).astype(np.float32)
    z = np.clip(z, 0, 1)
    z[:20, :20] = np.nan  # masked corner
    data = np.stack([z * 0.9, z, z]).astype(np.float32)
    return Raster(
        data=data,
        crs=CRS,
        transform=transform(),
        band_descriptions=("2023-01|2023-04", "2023-02|2023-05", "median"),
        name="tile",
    )


def blobs() -> gpd.GeoDataFrame:
    pts = site_lonlats()
    return gpd.GeoDataFrame(
        {
            "name": ["b0", "b1"],
            "lon": [p[0] for p in pts],
            "lat": [p[1] for p in pts],
            "sigma": [3.0, 4.0],
            "score": [0.91, 0.72],
            "row": [r for r, _ in HOT],
            "col": [c for _, c in HOT],
        },
        geometry=[Point(p) for p in pts],
        crs="EPSG:4326",
    )


def candidates() -> gpd.GeoDataFrame:
    pts = site_lonlats()
    return gpd.GeoDataFrame(
        {
            "name": ["site_0", "site_1"],
            "lon": [p[0] for p in pts],
            "lat": [p[1] for p in pts],
            "score": [0.91, 0.72],
            "patch_mean": [0.66, 0.41],
        },
        geometry=[Point(p) for p in pts],
        crs="EPSG:4326",
    )


def enriched(ids: tuple[str, str] = ("s-aaa", "s-bbb")) -> gpd.GeoDataFrame:
    c = candidates()
    c.insert(0, "site_id", list(ids))
    c["address"] = ["Jl. Contoh 1, Jakarta <Utara>", "Bekasi & Co"]
    return c


def contours(dates: tuple[str, ...] = ("2023-01-01", "2023-02-01", "2023-03-01")) -> gpd.GeoDataFrame:
    recs = []
    for i, d in enumerate(dates):
        for name, (lon, lat) in zip(("site_0", "site_1"), site_lonlats(), strict=True):
            half = 0.0004 + 0.0001 * i
            recs.append(
                {
                    "name": name,
                    "date": d,
                    "frame": i,
                    "area_km2": round((2 * half * 111.0) ** 2, 6),
                    "geometry": box(lon - half, lat - half, lon + half, lat + half),
                }
            )
    return gpd.GeoDataFrame(recs, geometry="geometry", crs="EPSG:4326")


def tile_heatmaps(tilesize: int = 256) -> list[Raster]:
    """Heatmaps on the real tile grid of the ROI (names = tile keys), hot at the planted sites."""
    from plastics_core.geo.tiles import plan_tiles

    out = []
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    for tile in plan_tiles(roi(), tilesize=tilesize, pad=0):
        rows, cols = tile.shape
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        z = np.zeros((rows, cols), np.float32)
        for lon, lat in site_lonlats():
            c, r = ~tile.transform @ to_utm.transform(lon, lat)
            z += np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 8.0**2)).astype(np.float32)
        data = np.clip(z, 0, 1)[None]
        out.append(
            Raster(
                data=data,
                crs=tile.crs,
                transform=tile.transform,
                band_descriptions=("median",),
                name=tile.key,
            )
        )
    return out

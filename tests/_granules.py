"""Write Sentinel-2 L1C scenes as ESA-like granules: one JPEG 2000 file per band plus STAC items.

Used to exercise the real-format path (:class:`~plastics_core.imagery.stac.StacSource` over
HTTP) offline, in tests and in the benchmark. Layout of one granule (one scene) under a folder::

    <folder>/<item id>/B01.jp2 ... B12.jp2, B8A.jp2, B10.jp2     one file per band
    <folder>/items.json                                         STAC FeatureCollection

Each band is written at its native Sentinel-2 resolution (:data:`NATIVE_RES`: B02 B03 B04 B08
10 m; B05 B06 B07 B8A B11 B12 20 m; B01 B09 B10 60 m) on the granule's own grid (the 10 m
grid's origin, pixel size 10/20/60 m), uint16 DN (0 = no data, by convention as in ESA
products: no nodata tag, no ``.aux.xml``), with GDAL's JP2OpenJPEG driver:
lossless (``REVERSIBLE=YES``, ``QUALITY=100``), ``block`` x ``block`` tiles (1024 at full size),
and as many resolution levels as the band's size allows (at most 6, as in ESA products), which
GDAL exposes as overviews. 20 m and 60 m bands are taken from 10 m input by keeping the top-left
pixel of every 2 x 2 / 6 x 6 block (real DN values, no averaging).

Items copy a real Earth Search v1 ``sentinel-2-l1c`` item (``template``) and replace its id,
datetime, cloud cover, footprint and band assets (``href`` = ``<base_url>/<item id>/<band>.jp2``, or
relative ``<item id>/<band>.jp2`` when ``base_url`` is empty, as :mod:`tests._stac_server` serves them;
``proj:shape`` / ``proj:transform`` per band); other assets are dropped.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from plastics_core.geo.bands import BAND_NAMES

#: Native pixel size (m) of every L1C band, B10 included.
NATIVE_RES: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
#: Earth Search v1 asset key of every band.
ASSET_KEYS: dict[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}


@dataclass(frozen=True)
class Scene10m:
    """One scene at 10 m: ``bands`` (12, y, x) uint16 DN in model order, ``cirrus`` (y, x) B10 DN,
    ``datetime`` (UTC), ``cloud_cover`` percent, on ``crs`` / ``transform`` (10 m pixels)."""

    id: str
    bands: np.ndarray
    cirrus: np.ndarray
    datetime: dt.datetime
    cloud_cover: float
    crs: str
    transform: Affine
    baseline: str = "02.01"


def resolution_levels(width: int, height: int, most: int = 6) -> int:
    """JPEG 2000 resolution levels for a band (or code tile) of this size: ESA's 6 where the size
    allows (GDAL's JP2OpenJPEG driver needs ``2 ** levels`` <= the smaller side)."""
    return max(1, min(most, int(math.log2(max(1, min(width, height))))))


def write_jp2(path: Path, arr: np.ndarray, crs: str, transform: Affine, block: int = 1024) -> Path:
    """(y, x) uint16 -> lossless tiled JPEG 2000 with resolution levels; returns ``path``."""
    height, width = arr.shape
    tile = min(block, 1 << max(4, (max(width, height) - 1).bit_length()))
    opts = {
        "QUALITY": "100",
        "REVERSIBLE": "YES",
        "YCBCR420": "NO",
        "BLOCKXSIZE": str(tile),
        "BLOCKYSIZE": str(tile),
        "RESOLUTIONS": str(resolution_levels(min(width, tile), min(height, tile))),
        "CODEC": "JP2",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        rasterio.Env(GDAL_PAM_ENABLED="NO"),
        rasterio.open(
            path,
            "w",
            driver="JP2OpenJPEG",
            width=width,
            height=height,
            count=1,
            dtype="uint16",
            crs=crs,
            transform=transform,
            **opts,
        ) as dst,
    ):
        dst.write(arr.astype(np.uint16, copy=False), 1)
    return path


def native(arr10: np.ndarray, res: int) -> np.ndarray:
    """A 10 m (y, x) band at ``res`` m: the top-left 10 m pixel of every block (real DN)."""
    f = res // 10
    return arr10[::f, ::f]


def write_granule(scene: Scene10m, folder: Path, block: int = 1024) -> dict[str, Path]:
    """Write the 13 band files of ``scene`` under ``folder / scene.id``; returns band -> path."""
    layers = dict(zip(BAND_NAMES, scene.bands, strict=True)) | {"B10": scene.cirrus}
    out = {}
    for band, res in NATIVE_RES.items():
        t = scene.transform @ Affine.scale(res / 10)
        out[band] = write_jp2(
            folder / scene.id / f"{band}.jp2", native(layers[band], res), scene.crs, t, block
        )
    return out


def stac_item(scene: Scene10m, template: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A STAC item for a written granule, modelled on a real Earth Search item (``template``)."""
    rows, cols = scene.bands.shape[1:]
    bounds = rasterio.transform.array_bounds(rows, cols, scene.transform)
    footprint = shape(
        transform_geom(scene.crs, "EPSG:4326", mapping(box(bounds[2], bounds[1], bounds[0], bounds[3])))
    )
    item = copy.deepcopy(template)
    item["id"] = scene.id
    item["geometry"], item["bbox"] = mapping(footprint), list(footprint.bounds)
    item["links"] = []
    props = item["properties"]
    props.update(
        {
            "datetime": scene.datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "eo:cloud_cover": scene.cloud_cover,
            "s2:processing_baseline": scene.baseline,
            "proj:epsg": int(str(scene.crs).split(":")[-1]),
        }
    )
    for key in [
        k
        for k in props
        if k.startswith(("s2:product_uri", "s2:granule_id", "s2:datastrip_id", "earthsearch:"))
    ]:
        del props[key]
    assets = {}
    for band, key in ASSET_KEYS.items():
        asset = copy.deepcopy(template["assets"][key])
        res = NATIVE_RES[band]
        t = scene.transform @ Affine.scale(res / 10)
        rel = f"{scene.id}/{band}.jp2"
        asset.update(
            {
                "href": f"{base_url.rstrip('/')}/{rel}" if base_url else rel,
                "proj:shape": [math.ceil(rows / (res // 10)), math.ceil(cols / (res // 10))],
                "proj:transform": list(t)[:6],
            }
        )
        assets[key] = asset
    item["assets"] = assets
    return item


def write_catalog(
    scenes: Sequence[Scene10m], folder: Path, template: dict[str, Any], base_url: str = "", block: int = 1024
) -> list[dict[str, Any]]:
    """Write every scene's granule and ``items.json`` (a FeatureCollection); returns the items."""
    items = []
    for scene in scenes:
        write_granule(scene, folder, block)
        items.append(stac_item(scene, template, base_url))
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return items


def slovenia_scenes(shared_data: Path) -> list[Scene10m]:
    """The five real Slovenia L1C scenes (2015, 100 x 101 px, EPSG:32633) as :class:`Scene10m`;
    catalog cloud cover = the percentage of valid pixels in the reference cloud mask ``clm``."""
    folder = shared_data / "s2l1c_slovenia_2015"
    z = np.load(folder / "s2l1c_ref5_12band_uint16.npz")
    with rasterio.open(folder / "S2L1C_20150711_12band.tif") as src:
        crs, transform = str(src.crs), src.transform
    out = []
    for i, day in enumerate(z["dates"]):
        date = dt.date.fromisoformat(str(day)[:10])
        valid = np.all(z["bands"][i] > 0, axis=0)
        cloud = np.asarray(z["clm"][i]).reshape(valid.shape).astype(bool)
        cc = round(float(100.0 * cloud[valid].mean()) if valid.any() else 100.0, 2)
        when = dt.datetime(date.year, date.month, date.day, 10, 0, 8, tzinfo=dt.UTC)
        out.append(
            Scene10m(
                f"S2A_33TVM_{date:%Y%m%d}_0_L1C", z["bands"][i], z["b10_cirrus"][i], when, cc, crs, transform
            )
        )
    return out

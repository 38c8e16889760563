"""Atomic, deterministic output files: GeoJSON, Cloud-Optimized GeoTIFF, VRT mosaics, JSON.

Every ``write_*`` is atomic (:mod:`plastics_core.storage.atomic`): a temporary file in the
destination directory renamed over the destination; on any exception an existing destination
is left untouched. Identical inputs give byte-identical files.

GeoJSON (RFC 7946): EPSG:4326 lon/lat, no ``crs`` member, polygon exteriors counter-
clockwise, coordinates and float properties rounded to 7 decimal places (NaN/inf -> null),
keys sorted, one feature per line, trailing newline. Features are sorted by ``site_id``,
else ``name`` (when such a column exists), then geometry WKB, then properties.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.io import MemoryFile
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import ParameterError
from plastics_core.geo.raster import Raster
from plastics_core.storage.atomic import write_bytes

COORD_DECIMALS = 7
_SORT_COLUMNS = ("site_id", "name")
_NAME_TAG = "PLASTICS_NAME"
_LONLAT = ("CRS84", "EPSG::4326", "EPSG:4326")


# ----------------------------------------------------------------------------- JSON values
def _plain(value: Any, ndigits: int | None = None) -> Any:
    """JSON-ready copy: numpy -> Python, NaN/inf/NA/NaT -> None, dates -> ISO strings,
    floats rounded to ``ndigits`` decimals when given (-0.0 -> 0.0)."""
    if isinstance(value, dict):
        return {str(k): _plain(v, ndigits) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v, ndigits) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(value):
            return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return (round(value, ndigits) if ndigits is not None else value) + 0.0
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} to JSON")


def json_bytes(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, indent 2, NaN/inf -> null, trailing newline."""
    return (
        json.dumps(_plain(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode()


def write_json(obj: Any, path: str | Path) -> None:
    """Atomically write ``obj`` as deterministic JSON (sorted keys, indent 2)."""
    write_bytes(json_bytes(obj), path)


# ----------------------------------------------------------------------------- GeoJSON
def _round_geom(geom: BaseGeometry) -> BaseGeometry:
    geom = shapely.orient_polygons(geom, exterior_cw=False)
    return shapely.transform(geom, lambda xy: np.round(xy, COORD_DECIMALS) + 0.0)


def _is_lonlat(crs: Any) -> bool:
    return bool(crs.to_epsg() == 4326 or crs.equals("OGC:CRS84"))


def geojson_bytes(gdf: gpd.GeoDataFrame) -> bytes:
    """RFC 7946 GeoJSON of ``gdf`` (reprojected to EPSG:4326), deterministic bytes."""
    if gdf.crs is None:
        raise ParameterError(
            "GeoDataFrame has no CRS: set it (gdf.set_crs('EPSG:4326')) before writing GeoJSON"
        )
    if not _is_lonlat(gdf.crs):
        gdf = gdf.to_crs("EPSG:4326")
    geom_col = gdf.geometry.name
    prop_cols = [c for c in gdf.columns if c != geom_col]
    sort_col = next((c for c in _SORT_COLUMNS if c in prop_cols), None)
    rows = []
    for geom, props in zip(gdf.geometry, gdf[prop_cols].to_dict("records"), strict=True):
        g = None if geom is None or geom.is_empty else _round_geom(geom)
        feature = {
            "type": "Feature",
            "properties": _plain(props, COORD_DECIMALS),
            "geometry": _plain(json.loads(json.dumps(mapping(g)))) if g is not None else None,
        }
        text = json.dumps(feature, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        key = str(props.get(sort_col, "")) if sort_col else ""
        rows.append((key, g.wkb if g is not None else b"", text))
    rows.sort()
    body = ",\n".join(text for _, _, text in rows)
    out = '{"type":"FeatureCollection","features":[\n' + body + ("\n" if rows else "") + "]}\n"
    return out.encode("utf-8")


def write_geojson(gdf: gpd.GeoDataFrame, path: str | Path) -> None:
    """Atomically write :func:`geojson_bytes` of ``gdf`` to ``path``."""
    write_bytes(geojson_bytes(gdf), path)


def read_geojson(source: str | Path | bytes) -> gpd.GeoDataFrame:
    """Read a GeoJSON FeatureCollection (path or bytes) as an EPSG:4326 GeoDataFrame.

    An empty collection gives an empty frame with a ``geometry`` column. Files declaring a
    projected ``crs`` member are reprojected to EPSG:4326.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    doc = json.loads(raw)
    crs_name = str(((doc.get("crs") or {}).get("properties") or {}).get("name", ""))
    if crs_name and not crs_name.upper().endswith(_LONLAT):
        return gpd.read_file(io.BytesIO(raw)).to_crs("EPSG:4326")
    features = doc.get("features", []) if doc.get("type") == "FeatureCollection" else [doc]
    if not features:
        return gpd.GeoDataFrame({"geometry": gpd.GeoSeries([], crs="EPSG:4326")}, crs="EPSG:4326")
    props = [f.get("properties") or {} for f in features]
    geoms = [shape(f["geometry"]) if f.get("geometry") else None for f in features]
    return gpd.GeoDataFrame(props, geometry=geoms, crs="EPSG:4326")


# ----------------------------------------------------------------------------- rasters
def _crs_string(crs: Any) -> str:
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else (crs.to_wkt() if crs is not None else "")


def cog_bytes(raster: Raster, blocksize: int = 256) -> bytes:
    """The raster as a Cloud-Optimized GeoTIFF: float32, nodata NaN (or ``raster.nodata``),
    ``blocksize`` tiles, DEFLATE with floating-point predictor, overviews when larger than a
    block, band descriptions and tags kept (``raster.name`` in tag ``PLASTICS_NAME``)."""
    bands, height, width = raster.data.shape
    profile = {
        "driver": "COG",
        "dtype": "float32",
        "count": bands,
        "height": height,
        "width": width,
        "crs": raster.crs,
        "transform": raster.transform,
        "nodata": raster.nodata,
        "compress": "DEFLATE",
        "predictor": 3,
        "blocksize": blocksize,
        "overviews": "AUTO",
        "resampling": "AVERAGE",
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.asarray(raster.data, dtype=np.float32))
            for i, desc in enumerate(raster.band_descriptions, start=1):
                dst.set_band_description(i, desc)
            tags = dict(raster.tags)
            if raster.name:
                tags[_NAME_TAG] = raster.name
            if tags:
                dst.update_tags(**tags)
        return bytes(mem.read())


def write_cog(raster: Raster, path: str | Path) -> None:
    """Atomically write :func:`cog_bytes` of ``raster`` to ``path``."""
    write_bytes(cog_bytes(raster), path)


def _read(ds: Any) -> Raster:
    tags = dict(ds.tags())
    tags.pop("AREA_OR_POINT", None)
    name = tags.pop(_NAME_TAG, "")
    descs = tuple(d or f"band_{i}" for i, d in enumerate(ds.descriptions, start=1))
    nodata = float(ds.nodata) if ds.nodata is not None else float("nan")
    return Raster(
        ds.read().astype(np.float32, copy=False),
        _crs_string(ds.crs),
        ds.transform,
        descs,
        nodata=nodata,
        name=name,
        tags=tags,
    )


def read_raster(source: str | Path | bytes) -> Raster:
    """Read a GeoTIFF/COG/VRT (path or bytes) back into a :class:`Raster`."""
    if isinstance(source, bytes):
        with MemoryFile(source) as mem, mem.open() as ds:
            return _read(ds)
    with rasterio.open(source) as ds:
        return _read(ds)


def vrt_xml(paths: Sequence[str | Path], relative_to: str | Path | None = None, crop: int = 0) -> str:
    """GDAL VRT XML mosaicking same-CRS, same-resolution, north-up rasters on disk.

    Sources are placed in the given order (later ones win where they overlap; NaN/nodata
    never overwrites). ``crop`` pixels are dropped from every source edge (use a tile's
    ``pad`` to mosaic only core pixels). Paths are written relative to ``relative_to``
    (the VRT's folder) when given.
    """
    if not paths:
        raise ParameterError("no rasters to mosaic: give at least one tile file")
    metas = []
    for p in paths:
        with rasterio.open(p) as ds:
            metas.append(
                (Path(p), ds.transform, ds.width, ds.height, ds.count, ds.crs, ds.descriptions, ds.nodata)
            )
    t0, crs0, n0 = metas[0][1], metas[0][5], metas[0][4]
    res_x, res_y = t0.a, t0.e
    boxes = []
    for p, t, w, h, n, crs, _, _ in metas:
        if crs != crs0 or n != n0 or (t.a, t.e, t.b, t.d) != (res_x, res_y, 0.0, 0.0):
            raise ParameterError(
                f"{p} differs in CRS, band count or pixel grid from {metas[0][0]}: mosaic tiles of one UTM zone and resolution"
            )
        boxes.append((t.c + crop * res_x, t.f + crop * res_y, w - 2 * crop, h - 2 * crop))
    left = min(b[0] for b in boxes)
    top = max(b[1] for b in boxes)
    width = round((max(b[0] + b[2] * res_x for b in boxes) - left) / res_x)
    height = round((min(b[1] + b[3] * res_y for b in boxes) - top) / res_y)
    nodata = metas[0][7]
    lines = [
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
        f"  <SRS>{escape(crs0.to_wkt())}</SRS>",
        f"  <GeoTransform>{left!r}, {res_x!r}, 0.0, {top!r}, 0.0, {res_y!r}</GeoTransform>",
    ]
    base = Path(relative_to).resolve() if relative_to is not None else None
    for band in range(1, n0 + 1):
        desc = metas[0][6][band - 1] or f"band_{band}"
        lines.append(f'  <VRTRasterBand dataType="Float32" band="{band}">')
        lines.append(f"    <Description>{escape(desc)}</Description>")
        if nodata is not None:
            lines.append(f"    <NoDataValue>{'nan' if math.isnan(nodata) else repr(nodata)}</NoDataValue>")
        for (p, *_), (bx, by, bw, bh) in zip(metas, boxes, strict=True):
            xoff, yoff = (bx - left) / res_x, (by - top) / res_y
            if abs(xoff - round(xoff)) > 1e-6 or abs(yoff - round(yoff)) > 1e-6:
                raise ParameterError(
                    f"{p} is not aligned to the mosaic's pixel grid: mosaic tiles from one DLTile grid"
                )
            rel, name = "0", str(p.resolve())
            if base is not None:
                with contextlib.suppress(ValueError):
                    name, rel = os.path.relpath(p.resolve(), base), "1"
            lines += [
                "    <ComplexSource>",
                f'      <SourceFilename relativeToVRT="{rel}">{escape(name)}</SourceFilename>',
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SrcRect xOff="{crop}" yOff="{crop}" xSize="{bw}" ySize="{bh}"/>',
                f'      <DstRect xOff="{round(xoff)}" yOff="{round(yoff)}" xSize="{bw}" ySize="{bh}"/>',
            ]
            if nodata is not None:
                lines.append(f"      <NODATA>{'nan' if math.isnan(nodata) else repr(nodata)}</NODATA>")
            lines.append("    </ComplexSource>")
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def write_vrt(paths: Sequence[str | Path], path: str | Path, crop: int = 0) -> None:
    """Atomically write a VRT mosaic of ``paths`` (sources referenced relative to it)."""
    write_bytes(vrt_xml(paths, relative_to=Path(path).parent, crop=crop).encode(), path)

"""Validating readers for user-supplied stage inputs (``plastics blobs`` / ``plastics candidates``).

The graph's own files are trusted; files a user points the CLI at are not. These readers
turn every malformed input -- unreadable bytes, JSON that is not a FeatureCollection, wrong
geometry types, non-numeric scores, coordinates outside lon/lat, rasters without a CRS --
into ONE-line :class:`~plastics_core.errors.PlasticsError` subclasses (``ParameterError`` for
vector files, ``ImageryError`` for rasters) naming the file and the fix, so the CLI can
exit 2 without a traceback and write no output.

- :func:`read_points`: blob points (``blobs`` asset, ``plastics blobs``, GPW
  ``pixel_candidates_*``): Point features, EPSG:4326 (or a declared projected CRS).
- :func:`read_patches`: patch polygons with a numeric ``mean`` property (``patch_geojson``).
- :func:`read_heatmap`: a heatmap GeoTIFF / COG / VRT with a CRS; float32 bands, NaN nodata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from plastics_core.errors import ImageryError, ParameterError, PlasticsError
from plastics_core.geo.raster import Raster

_MAX_ERR = 120


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_ERR else text[: _MAX_ERR - 3] + "..."


def _features(path: Path, what: str) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParameterError(f"cannot read {what} file {path} ({_short(exc)}): check the path") from exc
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParameterError(
            f"{path} is not JSON ({_short(exc)}): give a GeoJSON FeatureCollection of {what}"
        ) from exc
    if (
        not isinstance(doc, dict)
        or doc.get("type") != "FeatureCollection"
        or not isinstance(doc.get("features"), list)
    ):
        raise ParameterError(f"{path} is not a GeoJSON FeatureCollection: give a FeatureCollection of {what}")
    feats: list[dict[str, Any]] = doc["features"]
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature" or not isinstance(f.get("geometry"), dict):
            raise ParameterError(
                f"{path}: feature {i} is not a GeoJSON Feature with a geometry: fix or remove it"
            )
        if f.get("properties") is not None and not isinstance(f["properties"], dict):
            raise ParameterError(f"{path}: feature {i} has non-object properties: use a JSON object")
    return feats


def _frame(path: Path, what: str) -> gpd.GeoDataFrame:
    from plastics_core.storage.outputs import read_geojson

    try:
        gdf = read_geojson(path)
    except PlasticsError:
        raise
    except Exception as exc:  # malformed coordinates, unknown CRS ...  # noqa: BLE001
        raise ParameterError(f"{path} has malformed {what} ({_short(exc)}): fix the geometries") from exc
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        raise ParameterError(f"{path} is not in lon/lat (EPSG:4326): reproject the {what}")
    if len(gdf):
        if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
            raise ParameterError(f"{path} has {what} with empty geometries: remove them")
        coords = gdf.geometry.get_coordinates().to_numpy(dtype=float)
        if not np.isfinite(coords).all():
            raise ParameterError(f"{path} has non-finite coordinates: fix the {what}")
        if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
            raise ParameterError(
                f"{path} has coordinates outside lon/lat range: save the {what} in EPSG:4326 degrees"
            )
    return gdf


def read_points(path: str | Path) -> gpd.GeoDataFrame:
    """Blob points (EPSG:4326 Point features; ``name`` / ``score`` properties optional).

    Raises ParameterError (one line) for anything else.
    """
    path = Path(path)
    _features(path, "blob points")
    gdf = _frame(path, "blob points")
    if len(gdf) and not (gdf.geom_type == "Point").all():
        kinds = sorted(set(gdf.geom_type) - {"Point"})
        raise ParameterError(
            f"{path} holds {', '.join(kinds)} features, not blob points: give Point features"
        )
    if "score" in gdf and len(gdf):
        gdf["score"] = _numeric(gdf["score"], path, "score")
    if "name" in gdf and len(gdf):  # missing names get a placeholder; every name is a str
        names = ["" if _missing(v) else str(v) for v in gdf["name"].tolist()]
        gdf["name"] = pd.Series(
            [n or f"point_{i}" for i, n in enumerate(names)], index=gdf.index, dtype=object
        )
    return gdf


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def read_patches(path: str | Path) -> gpd.GeoDataFrame:
    """Patch polygons with a numeric ``mean`` (patch-classifier score in [0, 1]), EPSG:4326.

    Raises ParameterError (one line) for anything else.
    """
    path = Path(path)
    _features(path, "patch polygons")
    gdf = _frame(path, "patch polygons")
    if not len(gdf):
        return gdf
    if not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        kinds = sorted(set(gdf.geom_type) - {"Polygon", "MultiPolygon"})
        raise ParameterError(
            f"{path} holds {', '.join(kinds)} features, not patch polygons: give Polygon features"
        )
    if "mean" not in gdf:
        raise ParameterError(
            f"{path} has no 'mean' property: give patch_geojson output (patch-classifier scores)"
        )
    gdf["mean"] = _numeric(gdf["mean"], path, "mean")
    bad = np.flatnonzero(~gdf["mean"].between(0.0, 1.0).to_numpy())  # NaN (null) fails too
    if len(bad):
        value = gdf["mean"].iat[int(bad[0])]
        raise ParameterError(
            f"{path}: property 'mean' of feature {int(bad[0])} is "
            f"{'null' if math.isnan(value) else value}: give patch-classifier scores in [0, 1]"
        )
    return gdf


def _numeric(values: pd.Series, path: Path, column: str) -> pd.Series:
    def ok(v: Any) -> bool:
        return (
            v is None
            or (isinstance(v, int | float) and not isinstance(v, bool))
            or (isinstance(v, np.number) and not isinstance(v, np.bool_))
        )

    bad = [i for i, v in enumerate(values.tolist()) if not ok(v) or (isinstance(v, float) and math.isinf(v))]
    if bad:
        raise ParameterError(
            f"{path}: property {column!r} of feature {bad[0]} is not a finite number: fix it"
        )
    return pd.to_numeric(values, errors="coerce").astype(float)


def read_heatmap(path: str | Path) -> Raster:
    """A heatmap GeoTIFF/COG/VRT as a :class:`Raster` (float32, NaN nodata honoured).

    Raises ImageryError (one line) when the file is unreadable, has no bands, no CRS or
    infinite values.
    """
    from plastics_core.storage.outputs import read_raster

    path = Path(path)
    if not path.is_file():
        raise ImageryError(f"heatmap {path} not found: give a GeoTIFF written by the heatmaps asset")
    try:
        raster = read_raster(path)
    except PlasticsError:
        raise
    except Exception as exc:  # rasterio / GDAL errors on garbled files  # noqa: BLE001
        raise ImageryError(
            f"{path} is not a readable GeoTIFF/VRT ({_short(exc)}): give a heatmap written by "
            "the heatmaps asset"
        ) from exc
    if raster.data.ndim != 3 or raster.data.shape[0] == 0 or 0 in raster.data.shape[1:]:
        raise ImageryError(f"{path} has no pixels (shape {raster.data.shape}): give a heatmap with bands")
    if not raster.crs:
        raise ImageryError(f"{path} has no CRS: write the heatmap with its CRS and geotransform")
    t = raster.transform
    if not all(math.isfinite(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)) or t.a * t.e - t.b * t.d == 0:
        raise ImageryError(f"{path} has a degenerate geotransform: write the heatmap with its geotransform")
    if raster.nodata is not None and not math.isnan(raster.nodata):
        data = np.where(raster.data == raster.nodata, np.float32(np.nan), raster.data).astype(np.float32)
        raster = Raster(
            data,
            raster.crs,
            raster.transform,
            raster.band_descriptions,
            float("nan"),
            raster.name,
            dict(raster.tags),
        )
    if np.isinf(raster.data).any():
        raise ImageryError(
            f"{path} holds infinite values: give a heatmap of probabilities in [0, 1] (NaN for nodata)"
        )
    return raster

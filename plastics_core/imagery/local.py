"""LocalGeoTIFFSource: a folder of per-date multi-band Sentinel-2 L1C GeoTIFFs.

Naming rule (files directly in the folder, ``.tif`` / ``.tiff``)::

    <anything>_<YYYYMMDD>[_<anything>].tif     e.g. S2L1C_20150711_12band.tif
    <same stem>_mask.tif                       optional cloud mask, non-zero = cloud

The date is the first ``_``-delimited 8-digit group that is a valid calendar date (a file
may also *start* with it: ``20150711.tif``). Several files of one date are mosaicked
(first file by name wins where both are valid).

Content: 12 bands in model order (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12),
uint16 top-of-atmosphere DN (reflectance x 10000, pre-baseline-04.00 scale), nodata 0
(or the file's nodata). An optional 13th band is B10 (cirrus), used only for s2cloudless
masking. If the file has band descriptions they must name the bands in that order.
Any CRS and pixel size: files are warped onto the tile grid with GDAL (nearest
neighbour by default, so output values are real DN of the source; ``resampling=
"bilinear"`` is available). A tile pixel is masked where any band is nodata, the mask
file is non-zero, (with ``cloud_mask``) s2cloudless flags cloud, or it is in a cloud's shadow.

Cloud shadows (``shadow``, a :class:`~plastics_core.imagery.cloudmask.ShadowConfig`; None
switches them off): the clouds of a date (mask file and/or s2cloudless) are projected away from
the sun and kept where B08 is dark (:func:`~plastics_core.imagery.cloudmask.cloud_and_shadow_mask`).
Sun angles per scene, first found (:mod:`plastics_core.imagery.sun`):

    <same stem>_MTD_TL.xml                     the granule's Sentinel-2 metadata (Mean_Sun_Angle)
    GeoTIFF tags SUN_AZIMUTH + SUN_ZENITH      (or SUN_ELEVATION), degrees
    GeoTIFF tag DATETIME                       acquisition time (ISO 8601, UTC): the sun's position
                                               is computed at the tile centre

A cloudy date none of whose files has them keeps its cloud mask only, and a warning names it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from shapely.geometry import box

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.scenes import SceneStack
from plastics_core.imagery.base import SceneInfo
from plastics_core.imagery.cloudmask import CloudMaskConfig, ShadowConfig, cloud_and_shadow_mask, cloud_mask
from plastics_core.imagery.sun import geotiff_sun_angles, mtd_tl_sun_angles

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period
    from plastics_core.geo.tiles import Tile

log = logging.getLogger(__name__)
_DEFAULT_SHADOW = ShadowConfig()
_DATE = re.compile(r"(?:^|_)(\d{8})(?=_|$)")
_SUFFIXES = (".tif", ".tiff")
RESAMPLING = {"nearest": Resampling.nearest, "bilinear": Resampling.bilinear}


@dataclass(frozen=True)
class LocalScene:
    """One GeoTIFF of the folder: its path, acquisition date and optional mask file."""

    path: Path
    date: dt.date
    mask_path: Path | None

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def metadata_path(self) -> Path:
        """Where the scene's optional Sentinel-2 granule metadata lies: ``<stem>_MTD_TL.xml``."""
        return self.path.with_name(f"{self.path.stem}_MTD_TL.xml")


def scene_date(name: str) -> dt.date | None:
    """The acquisition date encoded in a file name per the naming rule, or None."""
    stem = name.rsplit(".", 1)[0]
    for match in _DATE.finditer(stem):
        try:
            return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
        except ValueError:
            continue
    return None


def resampling_for(name: str) -> Resampling:
    """``"nearest"`` | ``"bilinear"`` -> rasterio Resampling (ParameterError otherwise)."""
    try:
        return RESAMPLING[name]
    except KeyError:
        raise ParameterError(f"resampling {name!r} is unknown: use one of {', '.join(RESAMPLING)}") from None


def read_on_grid(
    src: Any,
    crs: str,
    transform: Any,
    shape: tuple[int, int],
    resampling: Resampling = Resampling.nearest,
    indexes: list[int] | None = None,
    nodata: float | None = 0,
) -> np.ndarray:
    """Warp an open rasterio dataset onto a grid; returns (bands, rows, cols) in the source
    dtype, ``nodata`` (default 0) outside the source footprint and where the source is nodata."""
    src_nodata = src.nodata if src.nodata is not None else nodata
    with WarpedVRT(
        src,
        crs=crs,
        transform=transform,
        width=shape[1],
        height=shape[0],
        resampling=resampling,
        src_nodata=src_nodata,
        nodata=nodata,
    ) as vrt:
        return np.asarray(vrt.read(indexes))


class LocalGeoTIFFSource:
    """Scenes from a local folder of GeoTIFFs (see module docstring for the naming rule)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        resampling: str = "nearest",
        cloud_mask: CloudMaskConfig | None = None,
        shadow: ShadowConfig | None = _DEFAULT_SHADOW,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ImageryError(
                f"imagery folder {self.folder} does not exist: give a folder of per-date GeoTIFFs"
            )
        self.resampling = resampling_for(resampling)
        self.cloud_mask = cloud_mask
        self.shadow = shadow
        self._no_sun: set[str] = set()  # scenes already reported as lacking sun angles
        self.name = f"local:{self.folder}"

    def scenes(self) -> list[LocalScene]:
        """All dated scenes in the folder, sorted by (date, file name)."""
        out: list[LocalScene] = []
        for path in sorted(self.folder.iterdir()):
            lower = path.name.lower()
            if not path.is_file() or not lower.endswith(_SUFFIXES) or path.stem.endswith("_mask"):
                continue
            day = scene_date(path.name)
            if day is None:
                continue
            mask = next(
                (m for m in (path.with_name(f"{path.stem}_mask{s}") for s in _SUFFIXES) if m.exists()), None
            )
            out.append(LocalScene(path, day, mask))
        return sorted(out, key=lambda s: (s.date, s.path.name))

    def validate(self) -> None:
        """Open every scene's header (no pixels): a wrong band count, dtype, CRS or band order
        fails here in one line, before the run reads any tile; so does a folder without a single
        dated scene (empty, or GeoTIFFs without a YYYYMMDD in their names), which would otherwise
        read as "no plastic here"."""
        scenes = self.scenes()
        if not scenes:
            undated = sorted(p.name for p in self.folder.iterdir() if p.name.lower().endswith(_SUFFIXES))
            seen = (
                f" ({len(undated)} GeoTIFF(s) without a YYYYMMDD date in the name, e.g. {undated[0]!r})"
                if undated
                else ""
            )
            raise ImageryError(
                f"no scene in {self.folder}{seen}: name each scene <anything>_YYYYMMDD[_<anything>].tif "
                "(docs/IMAGERY.md)"
            )
        for scene in scenes:
            with _open(scene.path) as src:
                _validate(src, scene.path)

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """Scenes dated within ``period`` whose footprint intersects ``geometry_4326``."""
        found = []
        for scene in self.scenes():
            if not period.contains(scene.date):
                continue
            with _open(scene.path) as src:
                footprint = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21))
            if footprint.intersects(geometry_4326):
                found.append(SceneInfo(id=scene.id, date=scene.date, cloud_cover=None))
        return found

    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Scenes of ``period`` warped onto ``tile``'s grid: data (t, 12, rows, cols) uint16 DN,
        mask (t, rows, cols) bool. Dates with no valid pixel on the tile are dropped."""
        rows, cols = tile.shape
        by_date: dict[dt.date, list[LocalScene]] = {}
        for scene in self.scenes():
            if period.contains(scene.date):
                by_date.setdefault(scene.date, []).append(scene)
        datas, masks, dates, ids = [], [], [], []
        for day, group in sorted(by_date.items()):
            data = np.zeros((len(BAND_NAMES), rows, cols), dtype=np.uint16)
            cirrus = np.zeros((rows, cols), dtype=np.uint16)
            flagged = np.zeros((rows, cols), dtype=bool)
            for scene in group:
                bands, b10, mask = self._read_scene(scene, tile)
                fill = np.any(data == 0, axis=0) & np.all(bands != 0, axis=0)
                data[:, fill] = bands[:, fill]
                cirrus[fill] = b10[fill]
                flagged[fill] = mask[fill]
            nodata = np.any(data == 0, axis=0)
            if nodata.all():
                continue
            if self.cloud_mask is not None and self.cloud_mask.method != "none":
                flagged |= cloud_mask(data[None], cirrus[None], self.cloud_mask)[0]
            if self.shadow is not None and (flagged & ~nodata).any():
                az, zen = self.sun_angles(group, tile)
                flagged = cloud_and_shadow_mask(
                    data[None], (flagged & ~nodata)[None], az, zen, float(tile.resolution), self.shadow
                )[0]
            datas.append(data)
            masks.append(nodata | flagged)
            dates.append(day)
            ids.append("+".join(s.id for s in group))
        return SceneStack(
            data=np.stack(datas) if datas else np.zeros((0, len(BAND_NAMES), rows, cols), np.uint16),
            mask=np.stack(masks) if masks else np.zeros((0, rows, cols), bool),
            crs=str(tile.crs),
            transform=tile.transform,
            dates=tuple(dates),
            scene_ids=tuple(ids),
        )

    def sun_angles(self, group: list[LocalScene], tile: Tile) -> tuple[float, float]:
        """(sun azimuth, sun zenith) in degrees for one date's files: the first file with an
        ``_MTD_TL.xml`` or sun tags (module docstring); NaN (shadows skipped, logged once) if none."""
        centre = tile.geometry_4326.centroid
        for scene in group:
            if scene.metadata_path.exists():
                return mtd_tl_sun_angles(scene.metadata_path)
            with _open(scene.path) as src:
                found = geotiff_sun_angles(src.tags(), centre.x, centre.y, scene.id, scene.date)
            if found is not None:
                return found[0], found[1]
        key = "+".join(s.id for s in group)
        if key not in self._no_sun:
            self._no_sun.add(key)
            log.warning(
                "cloud shadows not masked on %s: no sun angles (no %s, no SUN_AZIMUTH/SUN_ZENITH or "
                "DATETIME tag)",
                key,
                group[0].metadata_path.name,
            )
        return float("nan"), float("nan")

    def _read_scene(self, scene: LocalScene, tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(12, rows, cols) DN, (rows, cols) B10 DN (zeros if absent), (rows, cols) mask-file flags."""
        rows, cols = tile.shape
        with _open(scene.path) as src:
            _validate(src, scene.path)
            if self.cloud_mask is not None and self.cloud_mask.method != "none" and src.count < 13:
                raise ImageryError(
                    f"{scene.path.name} has no 13th band (B10 cirrus) needed by s2cloudless: add B10 "
                    "as band 13, provide a _mask.tif, or use cloud_mask=None"
                )
            arr = read_on_grid(src, str(tile.crs), tile.transform, (rows, cols), self.resampling)
        bands = arr[: len(BAND_NAMES)]
        b10 = arr[len(BAND_NAMES)] if arr.shape[0] > len(BAND_NAMES) else np.zeros((rows, cols), np.uint16)
        flags = np.zeros((rows, cols), dtype=bool)
        if scene.mask_path is not None:
            with _open(scene.mask_path) as msrc:
                m = read_on_grid(
                    msrc,
                    str(tile.crs),
                    tile.transform,
                    (rows, cols),
                    Resampling.nearest,
                    indexes=[1],
                    nodata=None,
                )
            flags = m[0] != 0
        return bands, b10, flags


def _open(path: Path) -> Any:
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise ImageryError(f"cannot read GeoTIFF {path}: {str(err).splitlines()[0]}") from err


def _validate(src: Any, path: Path) -> None:
    """Band count 12 or 13, uint16, band descriptions (if any) in model order."""
    if src.count not in (len(BAND_NAMES), len(BAND_NAMES) + 1):
        raise ImageryError(
            f"{path.name} has {src.count} bands: expected 12 L1C bands in model order "
            f"({' '.join(BAND_NAMES)}), optionally B10 as band 13"
        )
    if src.dtypes[0] != "uint16":
        raise ImageryError(f"{path.name} is {src.dtypes[0]}: expected uint16 TOA DN (reflectance x 10000)")
    if src.crs is None:
        raise ImageryError(f"{path.name} has no CRS: write the file with its UTM CRS and geotransform")
    names = tuple(d for d in src.descriptions[: len(BAND_NAMES)] if d)
    if names and names != BAND_NAMES:
        raise ImageryError(
            f"{path.name} band descriptions {','.join(names)} are not the model order {','.join(BAND_NAMES)}: "
            "reorder the bands"
        )

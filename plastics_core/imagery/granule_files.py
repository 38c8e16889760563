"""Block files of the granule cache: a decoded block as GeoTIFF bytes, and a block read back.

A block file is the block's pixels (uint16 DN for Sentinel-2) as a tiled GeoTIFF on the band's
grid (the block's own transform, the band's CRS and nodata): 512 x 512 px internal tiles, ZSTD
level 1 with the horizontal predictor. Read back, a part of it is copied into the array of a
read's source window (local file, or one GET on S3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.windows import Window
from upath import UPath

from plastics_core.storage.store import is_local, s3_call

#: ZSTD level 1 with the horizontal predictor: on the bench's granule bands it encodes 2x faster
#: than DEFLATE level 6 and writes a smaller file (bench/realimagery.py, docs/PERFORMANCE.md).
BLOCK_OPTIONS = {
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "ZSTD",
    "zstd_level": 1,
    "predictor": 2,
}


def block_bytes(arr: np.ndarray, crs: Any, transform: Affine, nodata: float | None) -> bytes:
    """(y, x) ``arr`` as the bytes of a block file (see module docstring) on ``crs`` / ``transform``."""
    profile = {
        "driver": "GTiff",
        "width": arr.shape[1],
        "height": arr.shape[0],
        "count": 1,
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        **BLOCK_OPTIONS,
    }
    with MemoryFile() as out:
        with out.open(**profile) as dst:
            dst.write(arr, 1)
        return bytes(out.read())


def paste_block(arr: np.ndarray, window: Window, block: Window, path: UPath) -> None:
    """Copy the part of block file ``path`` (covering ``block`` of the band) that lies in
    ``window`` into ``arr`` (``window``'s pixels)."""
    r0, c0 = max(int(window.row_off), int(block.row_off)), max(int(window.col_off), int(block.col_off))
    r1 = min(int(window.row_off + window.height), int(block.row_off + block.height))
    c1 = min(int(window.col_off + window.width), int(block.col_off + block.width))
    inner = Window(c0 - int(block.col_off), r0 - int(block.row_off), c1 - c0, r1 - r0)
    dst = arr[
        r0 - int(window.row_off) : r1 - int(window.row_off),
        c0 - int(window.col_off) : c1 - int(window.col_off),
    ]
    if is_local(path):
        with rasterio.open(path.path) as ds:
            dst[...] = ds.read(1, window=inner)
        return
    data = s3_call(lambda: path.fs.cat_file(path.path), f"read {path}")
    with MemoryFile(data) as mem, mem.open() as ds:
        dst[...] = ds.read(1, window=inner)

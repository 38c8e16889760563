"""One worker decodes a granule block, the others wait for it (plastics_core.imagery.granule_claim).

The band is a real Sentinel-2 L1C band (Slovenia 2015, B02). "Another worker" is simulated by
doing exactly what a worker does on the same store: create the claim marker, write the block,
delete the marker. The claim is exercised on a local folder and on S3 (moto's conditional PUT).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rasterio

from plastics_core.imagery import granule_claim
from plastics_core.imagery.granule_blocks import BandMeta
from plastics_core.imagery.granule_cache import GranuleCache
from plastics_core.imagery.granule_claim import claim_marker, release, try_claim
from plastics_core.imagery.granule_files import block_bytes
from plastics_core.storage.store import atomic_write, store_path
from tests._s3 import moto_bucket

SCENE = "S2L1C_20150711_12band.tif"


@pytest.fixture(scope="module")
def band(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """B02 of a real L1C scene as a one-band uint16 GeoTIFF (the source a worker decodes)."""
    out = tmp_path_factory.mktemp("band") / "B02.tif"
    with rasterio.open(shared_dir / "data" / "s2l1c_slovenia_2015" / SCENE) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint16"}
        data = src.read(2).astype(np.uint16)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
    return out


def _never() -> Any:
    pytest.fail("the band was decoded although another worker's block was awaited")


def _grid(band: Path) -> Any:
    """The band's own grid: a read onto it returns the band's pixels."""
    with rasterio.open(band) as src:
        return str(src.crs), src.transform, (src.height, src.width)


def _claimers_meta(cache: GranuleCache, band: Path) -> None:
    """What the claiming worker wrote before it claimed the block: the band's meta."""
    with rasterio.open(band) as src:
        atomic_write(
            cache.band_dir("scene", "B02") / "meta.json", BandMeta.of(src, cache.min_block).to_json().encode()
        )


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_claim_is_exclusive_released_and_taken_over_when_stale(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = (
        moto_bucket(monkeypatch, "s3://plastics/cache")
        if where == "s3"
        else contextlib.nullcontext(str(tmp_path))
    )
    with ctx as root:
        marker = claim_marker(store_path(root) / "scene" / "B02.tif")
        assert marker.name == "B02.tif.decoding"
        assert try_claim(marker, stale_s=600)
        assert not try_claim(marker, stale_s=600)  # a second worker: held
        assert b"pid" in marker.read_bytes()  # names its claimer
        if where == "local":
            hour_ago = time.time() - 3600
            os.utime(marker.path, (hour_ago, hour_ago))  # a claimer that died an hour ago
        else:  # an S3 object's time is the server's: look at the marker an hour later instead
            later = SimpleNamespace(
                time=lambda: time.time() + 3600, monotonic=time.monotonic, sleep=time.sleep
            )
            monkeypatch.setattr(granule_claim, "time", later)
        assert try_claim(marker, stale_s=600)  # older than the timeout: its claimer died
        release(marker)
        assert not marker.exists()
        release(marker)  # releasing twice is harmless
        assert try_claim(marker, stale_s=600)


def test_a_worker_waits_for_the_claimed_decode_instead_of_decoding(band: Path, tmp_path: Path) -> None:
    cache = GranuleCache(str(tmp_path / "cache"))
    _claimers_meta(cache, band)
    block = cache.block_path("scene", "B02", 0, 0)
    marker = claim_marker(block)
    assert try_claim(marker, stale_s=600)  # the other worker has claimed the block

    def other_worker() -> None:
        time.sleep(0.5)
        with rasterio.open(band) as src:
            atomic_write(block, block_bytes(src.read(1), src.crs, src.transform, src.nodata))
        release(marker)

    thread = threading.Thread(target=other_worker)
    thread.start()
    got = cache.read("scene", "B02", _never, _grid(band))
    thread.join()
    with rasterio.open(band) as src:
        np.testing.assert_array_equal(got, src.read(1))
    assert cache.stats == {"decodes": 0, "hits": 1, "skipped": 0, "evicted": 0, "waits": 1}
    assert cache.timer.totals["claim_wait"][0] >= 0.4
    assert not marker.exists()


def test_a_dead_claimer_does_not_block_and_a_fill_leaves_no_marker(band: Path, tmp_path: Path) -> None:
    cache = GranuleCache(str(tmp_path / "cache"), claim_timeout_s=60)
    block = cache.block_path("scene", "B02", 0, 0)
    marker = claim_marker(block)
    assert try_claim(marker, stale_s=60)
    hour_ago = time.time() - 3600
    os.utime(marker.path, (hour_ago, hour_ago))  # a worker that died an hour ago

    @contextlib.contextmanager
    def source() -> Iterator[Any]:
        with rasterio.open(band) as src:
            yield src

    t0 = time.monotonic()
    got = cache.read("scene", "B02", source, _grid(band))
    assert time.monotonic() - t0 < 30  # no wait for the dead claimer's timeout
    with rasterio.open(band) as src:
        np.testing.assert_array_equal(got, src.read(1))
    assert cache.stats["decodes"] == 1 and cache.stats["waits"] == 0
    assert not marker.exists() and block.exists()
    assert [Path(name).name for name, _, _ in cache.entries()] == [
        "r0_c0.tif"
    ]  # markers are not cache entries

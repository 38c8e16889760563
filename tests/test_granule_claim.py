"""One worker decodes a granule band, the others wait for its COG (plastics_core.imagery.granule_claim).

The band is a real Sentinel-2 L1C band (Slovenia 2015, B02). "Another worker" is simulated by
doing exactly what a worker does on the same store: create the claim marker, write the COG,
delete the marker. The claim is exercised on a local folder and on S3 (moto's conditional PUT).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from plastics_core.imagery.granule_cache import GranuleCache, cog_bytes
from plastics_core.imagery.granule_claim import claim_marker, release, try_claim
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
    pytest.fail("the band was decoded although another worker's COG was awaited")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_claim_is_exclusive_released_and_taken_over_when_stale(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = moto_bucket(monkeypatch, "s3://plastics/cache") if where == "s3" else contextlib.nullcontext(str(tmp_path))
    with ctx as root:
        marker = claim_marker(store_path(root) / "scene" / "B02.tif")
        assert marker.name == "B02.tif.decoding"
        assert try_claim(marker, stale_s=600)
        assert not try_claim(marker, stale_s=600)  # a second worker: held
        assert b"pid" in marker.read_bytes()  # names its claimer
        time.sleep(1.1)
        assert try_claim(marker, stale_s=0.5)  # older than the timeout: its claimer died
        release(marker)
        assert not marker.exists()
        release(marker)  # releasing twice is harmless
        assert try_claim(marker, stale_s=600)


def test_a_worker_waits_for_the_claimed_decode_instead_of_decoding(band: Path, tmp_path: Path) -> None:
    cache = GranuleCache(str(tmp_path / "cache"))
    cog = cache.path("scene", "B02")
    marker = claim_marker(cog)
    assert try_claim(marker, stale_s=600)  # the other worker has claimed the band

    def other_worker() -> None:
        time.sleep(0.5)
        with rasterio.open(band) as src:
            atomic_write(cog, cog_bytes(src.read(1), src))
        release(marker)

    thread = threading.Thread(target=other_worker)
    thread.start()
    with cache.open("scene", "B02", _never) as ds:
        got = ds.read(1)
    thread.join()
    with rasterio.open(band) as src:
        np.testing.assert_array_equal(got, src.read(1))
    assert cache.stats == {"decodes": 0, "hits": 1, "evicted": 0, "waits": 1}
    assert cache.timer.totals["claim_wait"][0] >= 0.4
    assert not marker.exists()


def test_a_dead_claimer_does_not_block_and_a_fill_leaves_no_marker(band: Path, tmp_path: Path) -> None:
    cache = GranuleCache(str(tmp_path / "cache"), claim_timeout_s=60)
    cog = cache.path("scene", "B02")
    marker = claim_marker(cog)
    assert try_claim(marker, stale_s=60)
    hour_ago = time.time() - 3600
    os.utime(marker.path, (hour_ago, hour_ago))  # a worker that died an hour ago

    @contextlib.contextmanager
    def source() -> Iterator[Any]:
        with rasterio.open(band) as src:
            yield src

    t0 = time.monotonic()
    with cache.open("scene", "B02", source) as ds:
        got = ds.read(1)
    assert time.monotonic() - t0 < 30  # no wait for the dead claimer's timeout
    with rasterio.open(band) as src:
        np.testing.assert_array_equal(got, src.read(1))
    assert cache.stats["decodes"] == 1 and cache.stats["waits"] == 0
    assert not marker.exists() and cog.exists()
    assert [Path(name).name for name, _, _ in cache.entries()] == ["B02.tif"]  # markers are not cache entries

"""One truth for what exists: every quarter's pair computed is a ``descartes_run`` materialization,
and computed once however many runs need it (plastics_core.execution.pair_claim).

On the synthetic 4-tile ROI of the fan-out tests (64 px tiles): a window materialized alone computes
its missing quarters inside its step and records each as its ``descartes_run`` partition (metadata
and data version as the fan-out records them); two workers needing the same quarters at once
compute each tile of each quarter exactly once; a claim whose holder failed is taken over."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, MultiPartitionKey, materialize
from upath import UPath

from plastics_core.execution.manifest import MANIFEST_KEYS, RunRecord
from plastics_core.execution.pair_claim import claim_marker, compute_once, compute_pairs_once
from plastics_core.storage.store import store_path
from tests import _fanout_util as fu
from tests._s3 import moto_bucket

RUN = AssetKey("descartes_run")


def _resources(store: Path) -> dict[str, Any]:
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.definitions import default_resources
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    return default_resources(
        params=DetectionParams(tilesize=fu.TILESIZE, pad=fu.PAD, pairs=2),
        imagery=ImagerySourceResource(),
        store=StoreResource(location=str(store)),
    )


def _window(instance: DagsterInstance, store: Path, window: str) -> Any:
    from plastics_dagster.definitions import ALL_ASSETS

    result = materialize(
        ALL_ASSETS,
        selection=["heatmaps"],
        instance=instance,
        resources=_resources(store),
        partition_key=MultiPartitionKey({"roi": fu.ROI_NAME, "window": window}),
    )
    assert result.success
    return result


def _stored_quarters(store: Path) -> set[str]:
    return {p.parent.name for p in (store / "descartes_run" / fu.ROI_NAME).glob("*/*.json")}


def _records(instance: DagsterInstance, quarter: str) -> list[Any]:
    key = f"{fu.ROI_NAME}|{quarter}"
    return list(
        instance.fetch_materializations(
            AssetRecordsFilter(asset_key=RUN, asset_partitions=[key]), limit=10
        ).records
    )


def test_window_step_records_the_pairs_it_computed(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    fu.register(instance, tmp_path)
    _window(instance, tmp_path, "2021-01-01")  # pairs=2: quarters 2020-10-01 and 2021-01-01, neither stored
    assert _stored_quarters(tmp_path) == {"2020-10-01", "2021-01-01"}
    materialized = instance.get_materialized_partitions(RUN)
    assert materialized == {f"{fu.ROI_NAME}|{q}" for q in _stored_quarters(tmp_path)}
    for quarter in ("2020-10-01", "2021-01-01"):
        (record,) = _records(instance, quarter)
        event = record.event_log_entry.asset_materialization
        meta = {k: v.value for k, v in event.metadata.items()}
        assert meta["tiles"] == 4 and meta["pairs_computed"] == 4 and meta["tiles_skipped"] == 0
        assert meta["backend"] == "in-window" and meta["executor"] == "in-process"
        manifest = json.loads(
            next((tmp_path / "descartes_run" / fu.ROI_NAME / quarter).glob("*.json")).read_text()
        )
        assert sorted(manifest) == sorted(MANIFEST_KEYS) and manifest["run_hash"] == meta["run_hash"]
        assert manifest["params"]["pairs"] == 2 and manifest["models"] == meta["models"]
        assert set(meta["models"]) and all(len(sha) == 64 for sha in meta["models"].values())
        assert event.tags["dagster/data_version"] == f"{meta['run_hash']}:{quarter}"
    # the next window shares 2021-01-01: only 2021-04-01 is computed and recorded
    _window(instance, tmp_path, "2021-04-01")
    assert instance.get_materialized_partitions(RUN) == {
        f"{fu.ROI_NAME}|{q}" for q in _stored_quarters(tmp_path)
    }
    assert len(_records(instance, "2021-01-01")) == 1 and len(_records(instance, "2021-04-01")) == 1


def test_concurrent_workers_compute_each_quarter_once(tmp_path: Path) -> None:
    from plastics_core.geo.tiles import plan_tiles

    fu.register(DagsterInstance.ephemeral(), tmp_path)
    res = _resources(tmp_path)
    params, store = res["params"], store_path(str(tmp_path))
    tiles = [t.key for t in plan_tiles(fu.four_tile_roi(), fu.TILESIZE, fu.PAD)]
    run_hash = params.run_hash(res["imagery"].source_name(), res["store"].roi_hash(fu.ROI_NAME))
    starts = ["2020-10-01", "2021-01-01"]
    barrier, results, errors = threading.Barrier(2), [], []

    def worker(order: list[str]) -> None:
        try:
            barrier.wait()
            results.append(
                compute_pairs_once(
                    store,
                    RunRecord(run_hash, fu.ROI_NAME, params.core(), "synthetic", {}, "in-window", "test"),
                    order,
                    tiles,
                    res["imagery"].get_source(),
                    res["models"].get_store(),
                )
            )
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(order,)) for order in (starts, starts[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    computed = [p.start for done in results for p in done]
    assert sorted(computed) == starts  # each quarter computed by exactly one worker
    assert sum(p.pairs_computed for done in results for p in done) == len(starts) * len(tiles)
    assert _stored_quarters(tmp_path) == set(starts)
    assert not list(tmp_path.rglob("*.computing"))  # every claim released


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_failed_claimer_is_taken_over(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = (
        moto_bucket(monkeypatch, "s3://plastics/store")
        if where == "s3"
        else contextlib.nullcontext(str(tmp_path))
    )
    with ctx as root:
        _failed_claimer(store_path(root) / "out.json")


def _failed_claimer(result: UPath) -> None:
    """A claimer works longer than ``stale_s`` (its heartbeat keeps the claim), then fails: the
    waiting worker computes only after the failure, and no marker is left."""
    events: dict[str, float] = {}
    holding = threading.Event()

    def failing() -> str:
        holding.set()
        time.sleep(3.0)  # longer than stale_s: only the heartbeat keeps the claim fresh
        events["failed"] = time.monotonic()
        raise RuntimeError("worker failed")

    def first() -> None:
        with pytest.raises(RuntimeError):
            compute_once(result, failing, lambda: "loaded", stale_s=2.0)

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    assert claim_marker(result).exists()

    def second() -> str:
        events["second"] = time.monotonic()
        result.write_text("done")
        return "computed"

    assert compute_once(result, second, lambda: "loaded", stale_s=2.0) == ("computed", True)
    thread.join()
    assert events["second"] >= events["failed"]  # never while the first still held its claim
    assert not claim_marker(result).exists()
    assert compute_once(result, second, lambda: "loaded") == ("loaded", False)


def test_a_stale_claim_is_taken_over(tmp_path: Path) -> None:
    import os

    result = UPath(str(tmp_path / "out.json"))
    marker = claim_marker(result)
    marker.write_text("a worker that died")
    old = time.time() - 120
    os.utime(marker.path, (old, old))

    def compute() -> str:
        result.write_text("done")
        return "computed"

    assert compute_once(result, compute, lambda: "loaded", stale_s=60) == ("computed", True)
    assert not marker.exists()

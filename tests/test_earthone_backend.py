"""``descartes_run`` on the ``earthone`` backend, offline: the fan-out graph submits one EarthOne
compute job per tile through the real earthdaily-earthone client to the fake platform
(tests/earthone_fake.py), whose runner executes :func:`plastics_core.execution.tile_job.infer_tile_remote`
in-process with each job's JSON arguments (synthetic imagery inside the job).

Exercised: backend selection, Function create + bundle upload (plastics_core + pinned
requirements), one bulk submission with one job per pending tile, job status polling, result
blobs, job ids in the manifest, tile files byte-identical to the local backend, skip of tiles
already done (no job), resubmission of a failed tile, step failure naming the tile and the job's
error, the one-line CredentialsError. Not exercised: the live service (auth, image builds, remote
execution of the uploaded bundle, worker access to the store / model store).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetSelection, DagsterEventType, DagsterInstance, materialize

from plastics_core.errors import ImageryError
from plastics_core.execution.tile_job import infer_tile_remote
from plastics_core.imagery.earthone import EARTHONE_L1C_BANDS, S2_L1C_PRODUCT
from plastics_dagster.backend import BackendResource
from tests import _fanout_util as fu
from tests.earthone_fake import FakeEarthOne
from tests.test_earthone import ENV, SECRET

SELECTION = AssetSelection.assets("descartes_run", "heatmaps", "patch_geojson")
CRED_VARS = (
    "EARTHONE_CLIENT_ID",
    "EARTHONE_CLIENT_SECRET",
    "EARTHONE_REFRESH_TOKEN",
    "EARTHONE_TOKEN",
    "DESCARTESLABS_CLIENT_ID",
    "DESCARTESLABS_CLIENT_SECRET",
    "DESCARTESLABS_REFRESH_TOKEN",
)


def _backend(srv: FakeEarthOne) -> BackendResource:
    return BackendResource(
        kind="earthone",
        compute_url=f"{srv.base}/compute/v1",
        catalog_url=f"{srv.base}/catalog/v2",
        poll_interval_s=0.01,
    )


def _run(instance: DagsterInstance, store: Path, backend: BackendResource | None = None) -> Any:
    from plastics_dagster.definitions import ALL_ASSETS

    extra = {"backend": backend} if backend is not None else {}
    return materialize(
        ALL_ASSETS,
        selection=SELECTION,
        partition_key=fu.partition(),
        instance=instance,
        resources=fu.resources(store, **extra),
        raise_on_error=False,
    )


def _posts(srv: FakeEarthOne, path: str) -> list[dict[str, Any]]:
    return [json.loads(b) for m, p, h, b in srv.requests if m == "POST" and p == path]


def _failures(result: Any) -> dict[str, str]:
    return {
        e.step_key: e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE
    }


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEarthOne]:
    for name in CRED_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with FakeEarthOne(S2_L1C_PRODUCT, list(EARTHONE_L1C_BANDS)) as srv:
        srv.runner = infer_tile_remote
        yield srv


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same partition on the default (local) backend: the reference tile files."""
    store = tmp_path_factory.mktemp("local_store")
    instance = DagsterInstance.ephemeral()
    fu.register(instance, store)
    assert _run(instance, store).success
    manifest = fu.manifest(store)
    assert manifest["executor"] == "in-process" and manifest["earthone"] == {"function_ids": [], "jobs": {}}
    return store


def test_one_job_per_tile_and_identical_files(fake: FakeEarthOne, local_store: Path, tmp_path: Path) -> None:
    from plastics_core.geo.tiles import plan_tiles

    instance = DagsterInstance.ephemeral()
    fu.register(instance, tmp_path)
    result = _run(instance, tmp_path, _backend(fake))
    assert result.success, _failures(result)
    tiles = [t.key for t in plan_tiles(fu.four_tile_roi(), fu.TILESIZE, fu.PAD)]
    # one Function, one bulk submission, one job per tile with the tile key as its argument
    assert len(fake.functions) == 1 and len(fake.jobs) == 4
    (bulk,) = _posts(fake, "/compute/v1/jobs/bulk")
    assert bulk["bulk_args"] == [[k] for k in tiles]
    kwargs = bulk["bulk_kwargs"][0]
    assert kwargs["imagery"]["kind"] == "synthetic" and kwargs["run_hash"] == fu.run_hash()
    assert kwargs["store"] == str(tmp_path.resolve()) and kwargs["roi"] == fu.ROI_NAME
    (fid,) = fake.functions
    assert fake.functions[fid]["name"] == "plastics-descartes-run"
    bundle = zipfile.ZipFile(io.BytesIO(fake.bundles[fid]))
    assert "plastics_core/execution/tile_job.py" in bundle.namelist()
    assert "plastics_dagster/fanout.py" not in bundle.namelist()  # the job needs no Dagster
    # manifest: backend earthone, function and job ids
    manifest = fu.manifest(tmp_path)
    assert manifest["backend"] == "earthone" and manifest["tiles"] == tiles
    assert manifest["earthone"] == {
        "function_ids": [fid],
        "jobs": {k: manifest["earthone"]["jobs"][k] for k in tiles},
    }
    assert set(manifest["earthone"]["jobs"].values()) == set(fake.jobs)
    assert {j["args"][0]: j["id"] for j in fake.jobs.values()} == manifest["earthone"]["jobs"]
    # the files equal the local backend's: heatmaps and patches byte for byte, summaries but for timings
    names = sorted(p.name for p in fu.run_dir(local_store).iterdir())
    assert len(names) == 12 and names == sorted(p.name for p in fu.run_dir(tmp_path).iterdir())
    for name in names:
        ours, ref = (fu.run_dir(tmp_path) / name).read_bytes(), (fu.run_dir(local_store) / name).read_bytes()
        if name.endswith(".summary"):
            ours_doc, ref_doc = json.loads(ours), json.loads(ref)
            for doc in (ours_doc, ref_doc):
                doc.pop("seconds"), doc.pop("timings")
            assert ours_doc == ref_doc, name
        else:
            assert ours == ref, name
    ours_manifest, ref_manifest = fu.comparable_manifest(tmp_path), fu.comparable_manifest(local_store)
    assert ours_manifest.pop("earthone") != ref_manifest.pop("earthone")  # the one schema, other values
    assert ours_manifest == ref_manifest
    rel = Path("patch_geojson") / fu.ROI_NAME / fu.WINDOW / f"{fu.run_hash()}.geojson"
    assert (tmp_path / rel).read_bytes() == (local_store / rel).read_bytes()
    # no credentials in any request but the credentials call itself, nor in the manifest
    assert all(
        SECRET not in (p + b.decode(errors="replace"))
        for m, p, h, b in fake.requests
        if not p.endswith("/credentials")
    )
    assert SECRET not in json.dumps(manifest)


def test_failed_job_fails_its_step_then_only_that_tile_is_resubmitted(
    fake: FakeEarthOne, tmp_path: Path
) -> None:
    instance = DagsterInstance.ephemeral()
    fu.register(instance, tmp_path)
    from plastics_core.geo.tiles import plan_tiles

    tiles = [t.key for t in plan_tiles(fu.four_tile_roi(), fu.TILESIZE, fu.PAD)]
    bad = tiles[2]

    def flaky(tile_key: str, **kwargs: Any) -> Any:
        if tile_key == bad:
            raise ImageryError(f"no scenes for tile {tile_key}")
        return infer_tile_remote(tile_key, **kwargs)

    fake.runner = flaky
    result = _run(instance, tmp_path, _backend(fake))
    assert not result.success
    failures = _failures(result)
    (step,) = failures
    assert step.startswith("descartes_run.infer_tile[") and "\n" not in failures[step].strip()
    assert f"tile {bad}: EarthOne job " in failures[step] and "failure: no scenes for tile" in failures[step]
    assert len(fu.tile_markers(tmp_path)) == 3  # the other tiles are done
    # re-run: the three finished tiles are skipped without a job; one job for the failed tile
    fake.runner = infer_tile_remote
    jobs_before = set(fake.jobs)
    result = _run(instance, tmp_path, _backend(fake))
    assert result.success, _failures(result)
    new = [fake.jobs[j] for j in set(fake.jobs) - jobs_before]
    assert [j["args"] for j in new] == [[bad]]
    assert fu.manifest(tmp_path)["earthone"]["jobs"] == {bad: new[0]["id"]}
    # and once everything is done, nothing is submitted at all
    functions, jobs = len(fake.functions), len(fake.jobs)
    assert _run(instance, tmp_path, _backend(fake)).success
    assert (len(fake.functions), len(fake.jobs)) == (functions, jobs)


def test_missing_credentials_is_one_line(
    fake: FakeEarthOne, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in CRED_VARS:
        monkeypatch.delenv(name, raising=False)
    instance = DagsterInstance.ephemeral()
    fu.register(instance, tmp_path)
    result = _run(instance, tmp_path, _backend(fake))
    assert not result.success
    failures = _failures(result)
    assert list(failures) == ["descartes_run.submit_tiles"]
    msg = failures["descartes_run.submit_tiles"].strip()
    assert "\n" not in msg and "EarthOne credentials missing" in msg
    assert "EARTHONE_CLIENT_ID" in msg and "DESCARTESLABS_CLIENT_ID" in msg
    assert not fake.requests  # nothing reached the service


def test_backend_choice_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core.errors import ParameterError
    from plastics_core.execution.tile_job import remote_requirements

    monkeypatch.setenv("PLASTICS_BACKEND", "earthone")  # read when the resource is used, not at import
    assert BackendResource().resolved_kind() == "earthone"
    assert BackendResource(kind="local").resolved_kind() == "local"  # config wins
    monkeypatch.delenv("PLASTICS_BACKEND")
    assert BackendResource().resolved_kind() == "local"
    with pytest.raises(ParameterError, match="PLASTICS_BACKEND"):
        BackendResource(kind="lambda").check()
    for bad in (
        {"poll_interval_s": -5.0},
        {"poll_interval_s": 0.0},
        {"wait_timeout_s": 0.0},
        {"cpus": 0.0},
        {"memory": -1},
        {"timeout": 0},
    ):  # refused when the resource is built, before any job is submitted
        with pytest.raises(Exception, match="greater than|less than"):
            BackendResource(kind="earthone", **bad)
    reqs = remote_requirements()
    assert any(r.startswith("tensorflow-cpu==") for r in reqs) and not any(
        r.startswith("dagster") for r in reqs
    )


def test_retry_submits_a_fresh_job_to_the_same_function(fake: FakeEarthOne) -> None:
    """A retried / re-executed ``infer_tile`` (not the run that submitted) sends its tile again."""
    from plastics_dagster.backend import run_remote_tile

    fake.runner = lambda tile_key, **kw: {"key": tile_key, "scene_ids": [], "n": kw["n"]}
    eo = _backend(fake).client()
    fid = str(eo.function().id)
    out = run_remote_tile(
        _backend(fake).client(), "64:22:10.0:50:1:2", {"function_id": fid, "jobs": {}}, False, {"n": 3}
    )
    assert out["key"] == "64:22:10.0:50:1:2" and out["n"] == 3 and out["function_id"] == fid
    assert len(fake.functions) == 1 and [j["args"] for j in fake.jobs.values()] == [["64:22:10.0:50:1:2"]]
    assert out["job_id"] in fake.jobs

"""The one parameter model: bounds checked before any compute, the Dagster resource mirrors it,
the documented table is the model's, and the run hash covers everything an output depends on."""

from __future__ import annotations

import math
from typing import Any

import pytest
from shapely import affinity
from shapely.geometry import box

import plastics_core
from plastics_core import params as P
from plastics_core.errors import ModelError, ParameterError, PlasticsError
from plastics_dagster.config import DetectionParams, detection_params

ROI = box(115.34, -8.57, 115.36, -8.55)


def test_docstring_table_is_the_models() -> None:
    assert P.parameter_table() in (P.__doc__ or "")
    for name in P.DetectParams.model_fields:
        assert f"\n{name} " in P.parameter_table()


def test_dagster_resource_mirrors_the_core_model() -> None:
    core, dag = P.DetectParams.model_fields, DetectionParams.model_fields
    assert list(dag) == list(core)
    for name, info in core.items():
        mine = dag[name]
        assert mine.annotation == info.annotation, name
        assert mine.default == info.default, name
        assert mine.description == info.description, name
        assert [repr(m) for m in mine.metadata] == [repr(m) for m in info.metadata], name
    assert DetectionParams().core() == P.DetectParams()


def test_defaults_are_the_planners_and_the_presets() -> None:
    from plastics_core.geo.tiles import DEFAULT_PAD, DEFAULT_TILESIZE
    from plastics_core.method.blobs import PRESETS

    p = P.make_params()
    assert (p.tilesize, p.pad) == (DEFAULT_TILESIZE, DEFAULT_PAD)
    assert p.blob_params() == PRESETS["high"]
    low = P.make_params({"preset": "low", "min_sigma": 4.0}).blob_params()
    assert (low.pred_threshold, low.min_sigma, low.patch_threshold) == (0.9, 4.0, 0.6)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"tilesize": 63}, "tilesize=63"),
    ({"tilesize": 4097}, "[64, 4096]"),
    ({"tilesize": True}, "boolean"),
    ({"pad": -1}, "[0, 256]"),
    ({"pad": 257}, "[0, 256]"),
    ({"min_sigma": 0.0}, "(0, 200]"),
    ({"max_sigma": 1e9}, "(0, 200]"),
    ({"max_sigma": math.inf}, "finite"),
    ({"pred_threshold": math.nan}, "finite"),
    ({"pred_threshold": 1.01}, "[0, 1]"),
    ({"area_threshold": -0.1}, "[0, 1]"),
    ({"patch_keep_threshold": 2.0}, "[0, 1]"),
    ({"max_masked": 1.5}, "[0, 1]"),
    ({"mosaic_period": 0}, "[1, 12]"),
    ({"spectrogram_interval": 9}, "[1, 8]"),
    ({"stride": 0}, "[1, 45]"),
    ({"rect_width": 0.0}, "(0, 0.1]"),
    ({"merge_radius": 1.0}, "[0, 0.1]"),
    ({"preset": "extreme"}, "low | medium | high"),
    ({"composite_method": "mean"}, "min | median | min_masked"),
    ({"min_sigma": 25.0}, "exceeds max_sigma 20.0"),  # the preset's max_sigma
    ({"min_sigma": 30.0, "max_sigma": 25.0}, "exceeds max_sigma 25.0"),
    ({"pairs_of_socks": 2}, "unknown parameter 'pairs_of_socks'"),
]


@pytest.mark.parametrize(("values", "needle"), BAD, ids=[str(v) for v, _ in BAD])
def test_out_of_range_values_are_one_line(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ParameterError) as info:
        P.make_params(values)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg, msg
    # the Dagster resource (built from run config when a run starts) refuses the same values with the
    # same words when the run first uses it, not as a resource-initialisation error
    resource = DetectionParams(**values)
    assert msg in resource.refused()
    with pytest.raises(PlasticsError) as dag:
        resource.core()
    assert msg in str(dag.value) and "\n" not in str(dag.value)


def test_model_names_checked_with_the_params() -> None:
    with pytest.raises(ModelError, match="available are"):
        P.make_params({"model": "nosuch.h5"})
    with pytest.raises(ModelError, match="available ensembles"):
        detection_params({"ensemble_model": "nope"})


def test_frozen() -> None:
    from pydantic import ValidationError

    p = P.make_params()
    with pytest.raises(ValidationError, match="frozen"):
        p.tilesize = 128  # type: ignore[misc]


def test_remote_job_params_refuse_unknown_keys() -> None:
    from plastics_core.execution.tile_job import detect_params

    resolved = P.make_params({"preset": "low"}).resolved()
    assert detect_params(resolved) == P.make_params({"preset": "low"}).model_copy(
        update={k: resolved[k] for k in P.BLOB_FIELDS}
    )
    with pytest.raises(ParameterError, match="unknown parameter 'tilesise'"):
        detect_params({**resolved, "tilesise": 128})


# ----------------------------------------------------------------------------- run identity
CHANGES: list[dict[str, Any]] = [
    {"model": "spectrogram_v0.0.11_unit_norm_a_2021-08-25.h5"},
    {"rect_width": 0.01},
    {"mosaic_period": 2},
    {"spectrogram_interval": 3},
    {"composite_method": "median"},
    {"preset": "medium"},
    {"pred_threshold": 0.7},
    {"min_sigma": 4.0},
    {"max_sigma": 15.0},
    {"area_threshold": 0.02},
    {"patch_threshold": 0.5},
    {"patch_keep_threshold": 0.2},
    {"merge_radius": 0.004},
    {"stride": 4},
    {"max_masked": 0.2},
    {"tilesize": 512},
    {"pad": 16},
]


def test_run_hash_covers_every_parameter() -> None:
    roi = P.geometry_hash(ROI)
    base = P.run_hash(P.make_params(), "synthetic", roi)
    assert base == P.run_hash(P.make_params(), "synthetic", roi) and len(base) == 12
    seen = {base}
    for change in CHANGES:
        h = P.run_hash(P.make_params(change), "synthetic", roi)
        assert h not in seen, change
        seen.add(h)
    assert set(P.make_params().resolved()) == set(P.DetectParams.model_fields)  # every field is hashed


def test_run_hash_covers_code_models_imagery_and_roi(monkeypatch: pytest.MonkeyPatch) -> None:
    params = P.make_params()
    roi = P.geometry_hash(ROI)
    base = P.run_hash(params, "synthetic", roi)
    assert P.run_hash(params, "stac:https://x", roi) != base
    moved = P.geometry_hash(affinity.translate(ROI, xoff=-0.1))
    assert moved != roi and P.run_hash(params, "synthetic", moved) != base
    monkeypatch.setattr(P, "METHOD_VERSION", plastics_core.METHOD_VERSION + "-next")
    assert P.run_hash(params, "synthetic", roi) != base
    monkeypatch.undo()
    key = "v0.0.11_ensemble-8-25-21/spectrogram_v0.0.11_unit_norm_c_2021-08-25.h5"
    monkeypatch.setitem(P.SHA256, key, "0" * 64)  # a retrained ensemble member
    assert P.run_hash(params, "synthetic", roi) != base
    assert key in params.model_checksums()
    monkeypatch.undo()
    monkeypatch.setenv("PLASTICS_INFER_PRECISION", "exact")  # the default: the same hash as unset
    assert P.run_hash(params, "synthetic", roi) == base
    monkeypatch.setenv("PLASTICS_INFER_PRECISION", "fast")  # bf16 scores differ: never the exact run's tiles
    assert P.run_hash(params, "synthetic", roi) != base


def test_geometry_hash_is_canonical() -> None:
    from shapely.geometry import Polygon

    ring = list(ROI.exterior.coords)
    other_start = Polygon(ring[2:-1] + ring[:3])  # same polygon, another first vertex
    assert P.geometry_hash(other_start) == P.geometry_hash(ROI)
    assert P.geometry_hash(affinity.translate(ROI, xoff=1e-9)) != P.geometry_hash(ROI)

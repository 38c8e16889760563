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


# ----------------------------------------------------------------------------- validated once
def _field_reads(source: str, fields: set[str]) -> list[tuple[int, str]]:
    """``(line, "name.field")`` of every read of a :class:`DetectionParams` field on a function
    argument annotated ``DetectionParams`` (the resource Dagster builds from run config)."""
    import ast

    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        names = {
            a.arg for a in args if a.annotation is not None and "DetectionParams" in ast.unparse(a.annotation)
        }
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in names
                and node.attr in fields
            ):
                found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(set(found))


def test_code_reads_parameters_from_the_validated_model() -> None:
    """Refused run config leaves the resource's fields at their defaults (the run fails in its first
    step): steps, assets, sensors and IO managers read the frozen core model (``params.core()``),
    never a field of the resource, so nothing runs with a value nobody validated."""
    from pathlib import Path

    fields = set(DetectionParams.model_fields)
    assert _field_reads("def f(params: DetectionParams) -> int:\n    return params.pairs\n", fields) == [
        (2, "params.pairs")
    ]  # the check sees a read
    root = Path(__file__).resolve().parents[1] / "plastics_dagster"
    offenders = [
        f"{path.relative_to(root.parent)}:{line} {read}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "config.py"
        for line, read in _field_reads(path.read_text(encoding="utf-8"), fields)
    ]
    assert not offenders, offenders


def test_the_resource_validates_once_and_keeps_the_frozen_model() -> None:
    """The values go through the core model when the resource is built: ``core()`` returns that one
    frozen object (no validation per call), a recipe's values filled in."""
    resource = DetectionParams(recipe="gpw-2021", preset="low")
    assert resource.core() is resource.core()
    assert resource.core() == P.make_params({"recipe": "gpw-2021", "preset": "low"})
    assert resource.core().tilesize == 863 and resource.core().blob_params().grid == "wgs84"
    given = P.make_params({"preset": "medium", "pairs": 5})
    assert detection_params(given).core() is given  # validated at its edge: adopted, not rebuilt
    assert detection_params({"preset": "medium", "pairs": 5}).core() == given


def test_the_run_hash_is_computed_once_per_roi_and_unchanged(tmp_path: Any) -> None:
    """``run_hash_for`` reads the ROI and hashes once per (ROI, imagery, store) on a resource
    instance, and gives the value :func:`plastics_core.params.run_hash` gives."""
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    calls: list[str] = []

    class CountingStore(StoreResource):
        def roi_hash(self, name: str) -> str:
            calls.append(name)
            return P.geometry_hash(ROI)

    store, imagery = CountingStore(location=str(tmp_path)), ImagerySourceResource(kind="synthetic")
    resource = DetectionParams(preset="medium")
    first = resource.run_hash_for("bali", imagery, store)
    assert resource.run_hash_for("bali", imagery, store) == first and calls == ["bali"]
    assert first == P.run_hash(
        P.make_params({"preset": "medium"}), imagery.source_name(), P.geometry_hash(ROI)
    )
    assert DetectionParams(preset="medium").run_hash_for("bali", imagery, store) == first
    assert calls == ["bali", "bali"]  # another instance (another run) computes its own
    other = CountingStore(location=str(tmp_path / "other"))
    assert resource.run_hash_for("bali", imagery, other) == first and len(calls) == 3  # keyed by store too

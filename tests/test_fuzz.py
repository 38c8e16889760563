"""Fuzzing (hypothesis) of the ROI reader and of the `plastics blobs` / `plastics candidates` CLI.

Contract: only documented error types escape (RoiError from read_roi;
exit code 2 with ONE `Error:` line from the CLI), never a traceback, never a partial output
file. Examples are bounded (no deadline: the first CLI call imports heavy modules).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon

from plastics_core.errors import ImageryError, ParameterError, RoiError
from plastics_core.geo.roi import read_roi
from plastics_core.storage.inputs import read_heatmap, read_patches, read_points
from plastics_dagster.cli import cli

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
CLI_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# ----------------------------------------------------------------------------- strategies
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-200, max_value=200),
    st.sampled_from([0.0, 115.35, -8.56, 180.0, -180.0, 181.0, 1e308, -0.0]),
)
ring = st.lists(st.tuples(floats, floats).map(list), min_size=0, max_size=6)
closed_ring = ring.map(lambda r: [*r, r[0]] if r else r)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), floats, st.text(max_size=5))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=12,
)
GEOM_TYPES = [
    "Polygon",
    "MultiPolygon",
    "Point",
    "LineString",
    "MultiPoint",
    "GeometryCollection",
    "Feature",
    "junk",
]


@st.composite
def geometries(draw: Any) -> Any:
    kind = draw(st.sampled_from(GEOM_TYPES))
    coords = draw(
        st.one_of(
            closed_ring.map(lambda r: [r]),  # polygon-shaped
            st.lists(closed_ring.map(lambda r: [r]), max_size=2),  # multipolygon-shaped
            st.tuples(floats, floats).map(list),  # point-shaped
            ring,  # line-shaped
            json_values,  # anything
        )
    )
    geom: dict[str, Any] = {"type": kind, "coordinates": coords}
    if kind == "GeometryCollection":
        geom = {
            "type": kind,
            "geometries": draw(st.lists(st.just({"type": "Polygon", "coordinates": coords}), max_size=2)),
        }
    mutation = draw(st.sampled_from(["none", "none", "drop_type", "crs"]))
    if mutation == "drop_type":
        del geom["type"]
    elif mutation == "crs":
        geom["crs"] = draw(json_values)
    return geom


@st.composite
def geojsonish(draw: Any) -> Any:
    """FeatureCollections / Features / bare geometries with plausible and broken parts."""
    feature = st.builds(
        lambda g, p: {"type": "Feature", "geometry": g, "properties": p},
        st.one_of(geometries(), json_values),
        st.one_of(st.none(), json_values),
    )
    doc = draw(
        st.one_of(
            st.builds(
                lambda fs: {"type": "FeatureCollection", "features": fs},
                st.one_of(st.lists(st.one_of(feature, json_values), max_size=3), json_values),
            ),
            feature,
            geometries(),
            json_values,
        )
    )
    if isinstance(doc, dict) and draw(st.booleans()):
        doc["crs"] = draw(
            st.one_of(
                json_values,
                st.just({"type": "name", "properties": {"name": "EPSG:32750"}}),
                st.just({"type": "name", "properties": [1]}),
            )
        )
    return doc


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


roi_bytes = st.one_of(
    st.binary(max_size=200),
    geojsonish().map(_dump),
    st.text(max_size=50).map(str.encode),
    st.sampled_from([b"[" * 5000, b'{"type":' * 3000, b"\xff\xfe{}", b"NaN", b""]),
)


# ----------------------------------------------------------------------------- ROI reader
@FUZZ
@given(data=roi_bytes)
@example(
    data=b'{"type":"Polygon","crs":{"type":"name","properties":[1]},"coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}'
)
@example(data=b'{"type":"Polygon","coordinates":[[[NaN,0],[1,0],[1,1],[NaN,0]]]}')
@example(data=b'{"type":"Polygon","coordinates":[[[Infinity,0],[1,0],[1,1],[Infinity,0]]]}')
@example(data=b'{"type":"FeatureCollection","features":{"a":1}}')
@example(data=b'{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}')
@example(data=b'{"type":"LineString","coordinates":[[0.0,0.0]]}')
def test_read_roi_only_raises_roi_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "roi.geojson"
        path.write_bytes(data)
        try:
            roi = read_roi(path)
        except RoiError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, msg
            return
        assert isinstance(roi, Polygon | MultiPolygon) and roi.is_valid and not roi.is_empty
        minx, miny, maxx, maxy = roi.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90


# ----------------------------------------------------------------------------- input readers
@st.composite
def point_files(draw: Any) -> bytes:
    def feat(g: Any) -> dict[str, Any]:
        props = draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"name": st.one_of(st.text(max_size=6), st.integers(), st.none())},
                    optional={"score": st.one_of(floats, st.text(max_size=3), st.none(), st.booleans())},
                ),
            )
        )
        return {"type": "Feature", "geometry": g, "properties": props}

    point = st.tuples(st.floats(114, 116), st.floats(-9, -8)).map(
        lambda c: {"type": "Point", "coordinates": list(c)}
    )
    geom = st.one_of(point, point, geometries())
    feats = draw(st.lists(geom.map(feat), max_size=4))
    return draw(st.one_of(st.just(_dump({"type": "FeatureCollection", "features": feats})), roi_bytes))


@st.composite
def patch_files(draw: Any) -> bytes:
    def feat(x: float, y: float, mean: Any) -> dict[str, Any]:
        ring = [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"mean": mean},
        }

    good = st.builds(
        feat,
        st.floats(114, 116),
        st.floats(-9, -8),
        st.one_of(st.floats(0, 1), floats, st.text(max_size=3), st.none(), st.booleans()),
    )
    other = st.builds(lambda g: {"type": "Feature", "geometry": g, "properties": {"mean": 0.9}}, geometries())
    feats = draw(st.lists(st.one_of(good, good, other), max_size=4))
    return draw(st.one_of(st.just(_dump({"type": "FeatureCollection", "features": feats})), roi_bytes))


@FUZZ
@given(blobs=point_files(), patches=patch_files())
def test_input_readers_raise_only_parameter_errors(blobs: bytes, patches: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bp, pp = Path(tmp) / "b.geojson", Path(tmp) / "p.geojson"
        bp.write_bytes(blobs)
        pp.write_bytes(patches)
        for reader, path in ((read_points, bp), (read_patches, pp)):
            try:
                gdf = reader(path)
            except ParameterError as exc:
                assert "\n" not in str(exc)
                continue
            assert gdf.crs is not None and gdf.crs.to_epsg() == 4326


# ----------------------------------------------------------------------------- CLI helpers
def _check_cli(result: Any, out: Path) -> None:
    """Exit 0 with a valid output file, or exit 2 with ONE 'Error:' line and no output file."""
    assert "Traceback" not in (result.output or ""), result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"uncaught {type(result.exception).__name__}: {result.exception}"
        ) from result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, leftovers
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), lines
        assert not out.exists(), "partial output written on error"
    else:
        doc = json.loads(out.read_text())
        assert doc["type"] == "FeatureCollection"


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=True)


@CLI_FUZZ
@given(
    blobs=point_files(),
    patches=patch_files(),
    threshold=st.one_of(
        st.none(), st.none(), st.floats(0, 1).map(repr), floats.map(repr), st.text(max_size=4)
    ),
)
@example(blobs=b"garbage{", patches=b"garbage{", threshold=None)
@example(
    blobs=_dump(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[0, 0]]},
                    "properties": {},
                }
            ],
        }
    ),
    patches=b"{}",
    threshold="0.4",
)
@example(
    blobs=_dump(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [115.3, -8.5]},
                    "properties": {"name": "a"},
                }
            ],
        }
    ),
    patches=_dump(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[115.2, -8.6], [115.4, -8.6], [115.4, -8.4], [115.2, -8.6]]],
                    },
                    "properties": {"mean": "high"},
                }
            ],
        }
    ),
    threshold="0.4",
)
@example(
    blobs=_dump(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [114.0, -8.0]},
                    "properties": None,
                },
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [114.0, -8.0]},
                    "properties": {"name": None},
                },
            ],
        }
    ),
    patches=_dump({"type": "FeatureCollection", "features": []}),
    threshold=None,
)
def test_cli_candidates_garbled_inputs(blobs: bytes, patches: bytes, threshold: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bp, pp, out = Path(tmp) / "b.geojson", Path(tmp) / "p.geojson", Path(tmp) / "out" / "c.geojson"
        bp.write_bytes(blobs)
        pp.write_bytes(patches)
        out.parent.mkdir()
        args = ["candidates", "--blobs", str(bp), "--patches", str(pp), "-o", str(out)]
        if threshold is not None:
            args += ["--patch-threshold", threshold]
        _check_cli(_invoke(args), out)


@st.composite
def heatmap_files(draw: Any) -> bytes:
    """Valid-looking rasters with random bands/dtypes/CRS/values, their truncations, or junk bytes."""
    from rasterio.io import MemoryFile

    kind = draw(st.sampled_from(["raster", "raster", "truncated", "junk"]))
    if kind == "junk":
        return draw(st.one_of(st.binary(max_size=300), st.just(b"II*\x00garbage"), st.just(b"<VRTDataset>")))
    bands = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    dtype = draw(st.sampled_from(["float32", "float64", "uint8", "int16"]))
    values = draw(st.sampled_from(["blob", "random", "nan", "inf", "const"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if values == "blob":
        yy, xx = np.mgrid[0:h, 0:w]
        arr = 0.95 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * 4.0**2))
    elif values == "random":
        arr = rng.uniform(-1, 2, (h, w))
    elif values == "nan":
        arr = np.full((h, w), np.nan)
    elif values == "inf":
        arr = np.where(rng.random((h, w)) > 0.5, np.inf, 0.7)
    else:
        arr = np.full((h, w), 0.8)
    data = np.stack([arr] * bands)
    if dtype in ("uint8", "int16"):
        data = np.nan_to_num(data * 100, nan=0, posinf=0, neginf=0)
    data = data.astype(dtype)
    crs = draw(st.sampled_from(["EPSG:32750", "EPSG:4326", None]))
    transform = (
        Affine(10, 0, 318000, 0, -10, 9054000)
        if crs != "EPSG:4326"
        else Affine(1e-4, 0, 115.3, 0, -1e-4, -8.5)
    )
    profile = {
        "driver": "GTiff",
        "count": bands,
        "height": h,
        "width": w,
        "dtype": dtype,
        "transform": transform,
    }
    if crs:
        profile["crs"] = crs
    descs = draw(st.lists(st.sampled_from(["median", "a|b", "", "x"]), min_size=bands, max_size=bands))
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
            for i, d in enumerate(descs, start=1):
                if d:
                    dst.set_band_description(i, d)
        raw = bytes(mem.read())
    if kind == "truncated":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    return raw


_junk_numbers = st.one_of(floats.map(repr), st.sampled_from(["abc", "", "1e309", "-1", "inf", "nan"]))
#: mostly valid (or absent) option values, so most examples reach the file readers
unit_values = st.one_of(st.none(), st.none(), st.floats(0, 1).map(repr), _junk_numbers)
sigma_values = st.one_of(st.none(), st.none(), st.floats(0.5, 25).map(repr), _junk_numbers)


@st.composite
def blob_options(draw: Any) -> list[str]:
    """Usually sane option values (so the file readers are exercised), sometimes junk."""
    sane = draw(st.integers(0, 3)) > 0
    args: list[str] = []
    for opt, values in (
        ("--pred-threshold", unit_values),
        ("--min-sigma", sigma_values),
        ("--max-sigma", sigma_values),
        ("--area-threshold", unit_values),
    ):
        value = draw(
            st.one_of(st.none(), st.floats(0.01, 1).map(repr))
            if sane and "sigma" not in opt
            else st.none()
            if sane
            else values
        )
        if value is not None:
            args += [opt, value]
    band = draw(st.one_of(st.none(), st.none(), st.sampled_from(["median", "0", "1", "7", "x", "-1"])))
    return args + (["--band", band] if band is not None else [])


@CLI_FUZZ
@given(tif=heatmap_files(), opts=blob_options())
@example(tif=b"II*\x00garbage", opts=[])
@example(tif=b"", opts=["--min-sigma", "inf", "--max-sigma", "inf", "--band", "0"])
def test_cli_blobs_garbled_inputs(tif: bytes, opts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "heat.tif", Path(tmp) / "out" / "b.geojson"
        src.write_bytes(tif)
        out.parent.mkdir()
        _check_cli(_invoke(["blobs", str(src), *opts, "-o", str(out)]), out)


def test_cli_blobs_infinite_sigma_is_a_user_error(tmp_path: Path) -> None:
    """A valid heatmap with sigma 'inf' must not crash inside the DoH halo arithmetic."""
    from plastics_core.geo.raster import Raster
    from plastics_core.storage.outputs import write_cog

    data = np.full((2, 32, 32), 0.9, np.float32)
    write_cog(
        Raster(data, "EPSG:32750", Affine(10, 0, 318000, 0, -10, 9054000), ("a|b", "median")),
        tmp_path / "h.tif",
    )
    out = tmp_path / "b.geojson"
    for opts in (
        ["--min-sigma", "inf", "--max-sigma", "inf"],
        ["--max-sigma", "inf"],
        ["--min-sigma", "nan"],
    ):
        result = _invoke(["blobs", str(tmp_path / "h.tif"), *opts, "-o", str(out)])
        _check_cli(result, out)
        assert result.exit_code == 2 and "sigma" in result.stderr, (opts, result.output)


@pytest.mark.parametrize("bad", [b"", b"\x00\x01", b"II*\x00garbage"])
def test_read_heatmap_garbled_is_imagery_error(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "h.tif"
    path.write_bytes(bad)
    with pytest.raises(ImageryError, match="not a readable GeoTIFF"):
        read_heatmap(path)


def test_read_heatmap_without_crs(tmp_path: Path) -> None:
    import rasterio

    path = tmp_path / "h.tif"
    with rasterio.open(path, "w", driver="GTiff", count=1, height=4, width=4, dtype="float32") as dst:
        dst.write(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ImageryError, match="no CRS"):
        read_heatmap(path)

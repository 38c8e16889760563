"""``plastics blobs`` and ``plastics candidates``: re-run the cheap stages without inference.

Inputs are the files the graph writes (a heatmap COG or VRT from the ``heatmaps`` asset, the
``blobs`` and ``patch_geojson`` GeoJSON) or the published GPW files in
``../shared/data/gpw``. Both commands call :mod:`plastics_core.method.blobs` /
:mod:`plastics_core.method.candidates` directly and write with :func:`plastics_core.storage.outputs.write_geojson`
(atomic: temp file then rename; RFC 7946, EPSG:4326).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plastics_dagster.cli._base import echo_kv

if TYPE_CHECKING:
    from plastics_core.method.blob_params import BlobParams

PRESET_CHOICE = click.Choice(["low", "medium", "high"])
_IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT_FILE = click.Path(dir_okay=False, writable=False, path_type=Path)


def default_preset() -> str:
    """The graph's default sensitivity preset (``DetectParams.preset``)."""
    from plastics_core.params import DetectParams

    return str(DetectParams.model_fields["preset"].default)


def refuse_overwriting_inputs(output: Path, *inputs: Path) -> None:
    """ParameterError (one line) when ``output`` resolves to one of the ``inputs``."""
    from plastics_core.errors import ParameterError

    out = output.expanduser().resolve()
    for src in inputs:
        if src.expanduser().resolve() == out:
            raise ParameterError(f"output {output} is the input {src}: write the output to another file")


def resolve_blob_params(preset: str | None, **overrides: float | None) -> BlobParams:
    """The :class:`plastics_core.method.blob_params.BlobParams` of the preset with the given
    (non-None) overrides, validated by the run parameter model
    (:func:`plastics_core.params.make_params`): the bounds and the one-line ParameterError of
    ``plastics run --param``. ``preset`` None = the graph's default."""
    from plastics_core.params import make_params

    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return make_params({"preset": preset or default_preset(), **given}).blob_params()


@click.command("blobs")
@click.argument("heatmap", type=_IN_FILE, metavar="HEATMAP.tif")
@click.option("-o", "--output", type=_OUT_FILE, required=True, help="Output GeoJSON (blob points).")
@click.option(
    "--preset",
    type=PRESET_CHOICE,
    default=None,
    help="Sensitivity preset giving the defaults of the thresholds below [default: the graph's, high].",
)
@click.option("--pred-threshold", type=float, help="Heatmap probability threshold in [0, 1] (preset).")
@click.option("--min-sigma", type=float, help="Smallest blob scale in pixels, in (0, 200] (preset).")
@click.option("--max-sigma", type=float, help="Largest blob scale in pixels, in (0, 200] (preset).")
@click.option("--area-threshold", type=float, help="DoH response threshold in [0, 1] (preset).")
@click.option(
    "--band",
    default="median",
    show_default=True,
    help="Heatmap band: a band description (e.g. 'median') or a 0-based index; a single-band heatmap "
    "uses its one band.",
)
def blobs(
    heatmap: Path,
    output: Path,
    preset: str | None,
    pred_threshold: float | None,
    min_sigma: float | None,
    max_sigma: float | None,
    area_threshold: float | None,
    band: str,
) -> None:
    """Detect blobs (DoH) on a heatmap COG/VRT written by the `heatmaps` asset.

    Example: plastics blobs heatmap.tif --preset high -o blobs.geojson
    """
    from plastics_core.method import blobs as core_blobs
    from plastics_core.storage import inputs, outputs

    refuse_overwriting_inputs(output, heatmap)
    params = resolve_blob_params(
        preset,
        pred_threshold=pred_threshold,
        min_sigma=min_sigma,
        max_sigma=max_sigma,
        area_threshold=area_threshold,
    )
    raster = inputs.read_heatmap(heatmap)  # one-line ImageryError on garbled files
    band_key: str | int = int(band) if band.isdigit() else band
    found = core_blobs.detect_blobs(raster, params, band=band_key)
    outputs.write_geojson(found, output)
    echo_kv(
        [
            ("heatmap", heatmap),
            ("params", ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(params).items())),
            ("blobs", len(found)),
            ("output", output),
        ]
    )


@click.command("candidates")
@click.option(
    "--blobs",
    "blobs_path",
    type=_IN_FILE,
    required=True,
    help="Blob points GeoJSON (`blobs` asset, `plastics blobs`, or GPW pixel_candidates_*).",
)
@click.option(
    "--patches",
    "patches_path",
    type=_IN_FILE,
    required=True,
    help="Patch polygons GeoJSON with a 'mean' property (`patch_geojson` asset or GPW file).",
)
@click.option(
    "--patch-threshold",
    type=float,
    default=None,
    help="Keep blobs inside a patch whose mean exceeds this, in [0, 1] [default: the preset's].",
)
@click.option(
    "--preset",
    type=PRESET_CHOICE,
    default=None,
    help="Sensitivity preset supplying the default patch threshold [default: the graph's, high].",
)
@click.option("-o", "--output", type=_OUT_FILE, required=True, help="Output GeoJSON (candidate points).")
def candidates(
    blobs_path: Path, patches_path: Path, patch_threshold: float | None, preset: str | None, output: Path
) -> None:
    """Select candidate sites: merged blob points inside a strong patch-classifier patch.

    Example (the published East Timor run, 5 candidates):
    plastics candidates --blobs pixel_candidates_v0.0.11_thresh0.6_minsigma3.5.geojson
    --patches patch_classifier_v1.2_stride8.geojson --patch-threshold 0.4 -o candidates.geojson
    """
    from plastics_core.method import candidates as sites
    from plastics_core.storage import inputs, outputs

    refuse_overwriting_inputs(output, blobs_path, patches_path)
    threshold = resolve_blob_params(preset, patch_threshold=patch_threshold).patch_threshold
    points = inputs.read_points(blobs_path)  # validated: one-line ParameterError on bad input
    patches = inputs.read_patches(patches_path)
    found = sites.select_candidates(points, patches, threshold)
    outputs.write_geojson(found, output)
    names = ", ".join(str(n) for n in found["name"]) if len(found) else "-"
    echo_kv(
        [
            ("blobs", f"{len(points)} points ({blobs_path})"),
            ("patches", f"{len(patches)} polygons ({patches_path})"),
            ("patch_threshold", threshold),
            ("candidates", f"{len(found)}: {names}"),
            ("output", output),
        ]
    )

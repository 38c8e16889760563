"""``plastics run`` and ``plastics demo``: materialize one (roi, window) partition in-process.

Both call :func:`plastics_dagster.runner.materialize_partition` against the persistent Dagster
instance (``$DAGSTER_HOME`` or ``./.dagster_home``): one ``detect_job`` run of the partition, as
the UI's *Materialize* launches it, then the ROI's ``registry_job`` run; a progress bar follows
the runs' events (:mod:`plastics_dagster.cli._progress`). They print its
:class:`~plastics_dagster.runner.RunSummary`; ``--json`` prints the summary as JSON instead.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from plastics_dagster.cli._base import echo_kv
from plastics_dagster.cli._instance import open_instance, store_location
from plastics_dagster.cli._progress import dagster_progress
from plastics_dagster.cli._stop import stoppable
from plastics_dagster.cli.stages import PRESET_CHOICE

if TYPE_CHECKING:
    from plastics_core.params import DetectParams

#: ``--preset``: a sensitivity preset, or ``gpw-2021``: the recipe that reproduces the 2021 code
#: (the ``recipe`` parameter; docs/FIDELITY.md).
RUN_PRESET_CHOICE = click.Choice([*PRESET_CHOICE.choices, "gpw-2021"])
_RUN_PRESET_HELP = (
    "Sensitivity preset (low | medium | high) [default: the graph's, high], or gpw-2021: "
    "the 2021 code's recipe (tiles, blob parameters, 7 pairs, merge, contours)."
)


def preset_overrides(preset: str | None) -> dict[str, Any]:
    """The parameter a ``--preset`` value sets: ``recipe`` for ``gpw-2021``, else ``preset``."""
    if not preset:
        return {}
    return {"recipe": preset} if preset == "gpw-2021" else {"preset": preset}


DEMO_ROI = "test_patch"
DEMO_WINDOW = "2021-01-01"
DEMO_SITE = "TPA Temesi"
#: TPA Temesi (Gianyar, Bali) from GPW's tpa_points.geojson; used when ../shared is absent.
DEMO_SITE_LONLAT = (115.35024222376158, -8.562120592268835)
_IMAGERY_HELP = "synthetic | local:DIR | stac[:URL] | earthone [default: $PLASTICS_IMAGERY; required]"
_STORE_HELP = "Output store: folder or s3://bucket/prefix [default: $PLASTICS_STORE or ./.plastics/store]"


def known_sites() -> dict[str, tuple[float, float]]:
    """Known landfills (name -> lon, lat) from ``<shared>/data/gpw/tpa_points.geojson``, with the
    centroid of the site's polygon in ``tpa_polygons.geojson`` where one exists (the synthetic
    imagery plants the polygons; GPW's point for TPA Temesi lies ~180 m from its polygon)."""
    from shapely.geometry import shape

    from plastics_dagster.resources import shared_dir

    folder = shared_dir() / "data" / "gpw"
    sites: dict[str, tuple[float, float]] = {}
    for name, centroid in (("tpa_points.geojson", False), ("tpa_polygons.geojson", True)):
        path = folder / name
        if path.is_file():
            for f in json.loads(path.read_text(encoding="utf-8"))["features"]:
                geom = shape(f["geometry"])
                point = geom.centroid if centroid else geom
                sites[str(f["properties"].get("Name"))] = (float(point.x), float(point.y))
    return sites or {DEMO_SITE: DEMO_SITE_LONLAT}


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Geodesic (WGS84) distance in metres between two (lon, lat) points."""
    from pyproj import Geod

    return float(Geod(ellps="WGS84").inv(a[0], a[1], b[0], b[1])[2])


def nearest_site(
    lonlat: tuple[float, float], sites: dict[str, tuple[float, float]]
) -> tuple[str, float] | None:
    """(name, metres) of the closest known site, or None when ``sites`` is empty."""
    if not sites:
        return None
    return min(((name, distance_m(lonlat, xy)) for name, xy in sites.items()), key=lambda t: t[1])


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> parameter values by name (YAML scalars; unknown keys refused). The
    values are checked once, with the other options, by :func:`run_params`."""
    import yaml

    from plastics_dagster.config import DetectionParams

    fields = set(DetectionParams.model_fields)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise click.BadParameter(
                f"{pair!r}: use KEY=VALUE with KEY one of {', '.join(sorted(fields))}", param_hint="--param"
            )
        try:
            out[key] = _yaml_scalar(value, pair) if value.strip() else None
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or type(err).__name__
            raise click.BadParameter(
                f"{pair!r}: the value is not a YAML scalar ({problem}); quote it or fix it, "
                "e.g. --param \"KEY='text'\"",
                param_hint="--param",
            ) from None
    return out


def run_params(values: dict[str, Any]) -> DetectParams:
    """The run's frozen parameters from ``--preset`` / ``--param`` values: the one validation of
    the command line (one ParameterError / ModelError line naming the value and its range)."""
    from plastics_core.params import make_params

    return make_params(values)


#: The longest ``--param`` value (characters): every parameter is a number or a short word.
MAX_PARAM_CHARS = 100


def _yaml_scalar(value: str, pair: str) -> Any:
    """``value`` parsed as YAML, refused before it is expanded when it is longer than
    :data:`MAX_PARAM_CHARS` or holds an anchor or alias (``&a`` / ``*a``: an alias bomb expands to
    gigabytes)."""
    import yaml

    if len(value) > MAX_PARAM_CHARS:
        raise click.BadParameter(
            f"the value of {pair[:40]!r}... is {len(value)} characters long, more than "
            f"{MAX_PARAM_CHARS}: give a number or a word",
            param_hint="--param",
        )
    tokens = yaml.scan(value, Loader=yaml.SafeLoader)
    if any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in tokens):
        raise click.BadParameter(
            f"{pair!r}: YAML anchors and aliases (&name, *name) are not accepted: give a "
            "plain value, quoted if it holds & or *",
            param_hint="--param",
        )
    return yaml.safe_load(value)


def detection_params(overrides: dict[str, Any]) -> Any:
    """The run parameters with ``overrides``; a bad value is one ParameterError line."""
    from plastics_dagster.config import detection_params as build

    return build(overrides)


def resolve_window(
    window: str | None, start: str | None, end: str | None, params: DetectParams
) -> tuple[str, DetectParams]:
    """The window to run and its parameters: ``--window`` and ``params``, or for
    ``--start``/``--end`` the range's last pair and ``params`` with ``pairs`` set to the range's
    pair count. One ParameterError line otherwise."""
    from plastics_core.errors import ParameterError
    from plastics_core.geo.periods import MAX_PAIRS, parse_day, range_pair_starts
    from plastics_dagster.partitions import parse_window

    if window is not None and (start or end):
        raise ParameterError("give either --window or --start/--end, not both")
    if window is not None:
        parse_window(window)  # strict YYYY-MM-DD of a quarter start, before any work
        return window, params
    if not (start and end):
        raise ParameterError(
            "give --window YYYY-MM-DD, or --start and --end (e.g. --start 2019-01-01 --end 2021-06-30)"
        )
    parse_day(start, "--start")
    first = parse_window(start)
    last_day = parse_day(end, "--end", "YYYY-MM-DD, e.g. 2021-06-30")
    p = params
    starts = range_pair_starts(first, last_day, p.mosaic_period, p.spectrogram_interval)
    if not starts:
        raise ParameterError(
            f"--start {start} --end {end} holds no spectrogram pair (a pair spans "
            f"{p.mosaic_period * (p.spectrogram_interval + 1)} months): give a later --end"
        )
    if len(starts) > MAX_PAIRS:
        raise ParameterError(
            f"--start {start} --end {end} holds {len(starts)} pairs, more than {MAX_PAIRS}: split the range"
        )
    # 1 <= len(starts) <= MAX_PAIRS: inside the field's bounds, nothing to validate again
    return starts[-1].isoformat(), params.model_copy(update={"pairs": len(starts)})


def execute(
    roi: str, window: str, params: DetectParams, store: str | None, imagery: str | None, verbose: bool
) -> tuple[Any, float]:
    """Run the partition with a progress bar; returns (RunSummary, seconds)."""
    from plastics_dagster.runner import materialize_partition

    instance = open_instance()
    start = time.perf_counter()
    with stoppable() as stop, dagster_progress(f"{roi} {window}", verbose=verbose) as progress:
        summary = materialize_partition(
            roi,
            window,
            params,
            store=store_location(store),
            imagery=imagery,
            instance=instance,
            stop_requested=stop.requested,
            on_event=progress.on_event,
            log_level=progress.log_level,
        )
    return summary, time.perf_counter() - start


def print_summary(summary: Any, seconds: float, reference: str | None = None) -> None:
    """Human-readable summary; candidates annotated with the nearest known landfill (or ``reference``)."""
    sites = known_sites()
    if reference is not None:
        sites = {reference: sites.get(reference, DEMO_SITE_LONLAT)}
    rows: list[tuple[str, object]] = [
        ("roi / window", f"{summary.roi} / {summary.window}"),
        ("run hash", summary.run_hash),
        ("tiles", summary.tiles),
        ("blobs", summary.blobs),
        ("candidates", len(summary.candidates)),
    ]
    for cand in summary.candidates:
        near = nearest_site((cand["lon"], cand["lat"]), sites)
        where = f"  {near[1]:.0f} m from {near[0]}" if near else ""
        score = f"  patch_mean {cand['patch_mean']:.2f}" if cand.get("patch_mean") is not None else ""
        rows.append((f"  {cand['name']}", f"lon {cand['lon']:.5f} lat {cand['lat']:.5f}{score}{where}"))
    statuses = sorted(set(summary.geocode_status))
    rows += [
        ("contour area", f"{summary.contour_area_km2:.4f} km2"),
        ("geocode status", ", ".join(statuses) if statuses else "-"),
        ("checks failed", ", ".join(summary.checks_failed) or "none"),
        ("output folder", summary.store),
    ]
    rows += [(f"  {name}", path) for name, path in sorted(summary.paths.items())]
    rows.append(("time", f"{seconds:.1f} s"))
    echo_kv(rows)


_verbose = click.option(
    "-v", "--verbose", is_flag=True, help="Show Dagster's full event log instead of a progress bar."
)
_json = click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")


@click.command("run")
@click.option("--roi", default=DEMO_ROI, show_default=True, help="Registered ROI name (`plastics roi list`).")
@click.option(
    "--window",
    metavar="YYYY-MM-DD",
    help="Detection window: the quarter (Jan/Apr/Jul/Oct 1st, from 2017-07-01) of its latest pair; the "
    "window aggregates the last `pairs` quarters' pairs (default 8).",
)
@click.option(
    "--start",
    "start",
    metavar="YYYY-MM-DD",
    help="With --end, instead of --window: every pair of the range, as GPW's Detect(start, end) "
    "(first periods from START every quarter while the partner period ends by END).",
)
@click.option("--end", "end", metavar="YYYY-MM-DD", help="Last day of the range (inclusive), with --start.")
@click.option("--imagery", help=_IMAGERY_HELP)
@click.option("--store", help=_STORE_HELP)
@click.option("--preset", type=RUN_PRESET_CHOICE, default=None, help=_RUN_PRESET_HELP)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other detection parameter, e.g. --param patch_threshold=0.4 (repeatable).",
)
@_verbose
@_json
def run(
    roi: str,
    window: str | None,
    start: str | None,
    end: str | None,
    imagery: str | None,
    store: str | None,
    preset: str | None,
    params: tuple[str, ...],
    verbose: bool,
    as_json: bool,
) -> None:
    """Materialize the whole detection graph for one ROI and window, in-process.

    Example: plastics run --roi test_patch --window 2021-01-01 --imagery synthetic --preset high;
    plastics run --roi test_patch --start 2019-01-01 --end 2021-06-30 --imagery stac
    """
    given = run_params({**parse_params(params), **preset_overrides(preset)})
    window, run_with = resolve_window(window, start, end, given)
    summary, seconds = execute(roi, window, run_with, store, imagery, verbose)
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), "seconds": round(seconds, 2)}, indent=2, default=str))
    else:
        print_summary(summary, seconds)


@click.command("demo")
@click.option("--window", default=DEMO_WINDOW, show_default=True, metavar="YYYY-MM-DD", help="Window to run.")
@click.option("--store", help=_STORE_HELP)
@click.option("--preset", type=RUN_PRESET_CHOICE, default=None, help=_RUN_PRESET_HELP)
@_verbose
@_json
def demo(window: str, store: str | None, preset: str | None, verbose: bool, as_json: bool) -> None:
    """Run the whole graph on the embedded default and report what it found.

    ROI test_patch (2 x 2 km in east Bali), synthetic Sentinel-2 scenes with TPA Temesi planted,
    the real GPW models from $PLASTICS_MODEL_STORE (default ../shared/models), a local store.
    Exits 1 when no candidate lies within 500 m of TPA Temesi.
    """
    params = run_params(preset_overrides(preset))
    summary, seconds = execute(DEMO_ROI, window, params, store, "synthetic", verbose)
    target = known_sites().get(DEMO_SITE, DEMO_SITE_LONLAT)
    dists = [distance_m((c["lon"], c["lat"]), target) for c in summary.candidates]
    if as_json:
        click.echo(
            json.dumps(
                {**summary.to_dict(), "seconds": round(seconds, 2), "distance_to_tpa_temesi_m": dists},
                indent=2,
                default=str,
            )
        )
    else:
        click.echo("plastics demo: synthetic imagery with TPA Temesi planted (real GPW models)")
        print_summary(summary, seconds, reference=DEMO_SITE)
    best = min(dists, default=float("inf"))
    if best > 500.0:
        click.echo(f"Error: no candidate within 500 m of {DEMO_SITE} (nearest: {best:.0f} m)", err=True)
        raise click.exceptions.Exit(1)
    if not as_json:
        click.echo(f"found {DEMO_SITE}: nearest candidate {best:.0f} m away")
        from plastics_dagster.cli.serve import browse_hint

        for line in browse_hint(summary.store, DEMO_ROI, target, DEMO_SITE):
            click.echo(line)

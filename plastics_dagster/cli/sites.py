"""``plastics sites``: print the ``site_registry`` asset of an ROI (every site across all windows).

The registry is read from ``<store>/site_registry/<roi>/<run-hash>.geojson`` (written by
``plastics run``); when only per-window ``enriched_sites`` are stored it is built from them on the
fly (:func:`plastics_dagster.assets.preview.load_site_registry`). The run hash is computed from
``--imagery/--preset/--param`` exactly as ``plastics run`` computes it, or given with ``--run-hash``.
Each site's ``verdict`` is read now from the site database (``$PLASTICS_DATABASE_URL``, else
``sites.sqlite`` beside a local store): ``unreviewed`` when none exists yet or it holds no verdict.
"""

from __future__ import annotations

import re
from typing import Any

import click

from plastics_core.errors import PlasticsError, RoiError
from plastics_dagster.cli._instance import open_store
from plastics_dagster.cli.run import _IMAGERY_HELP, _STORE_HELP, parse_params
from plastics_dagster.cli.stages import PRESET_CHOICE

_HASH = re.compile(r"[0-9a-f]{12}")  # used with fullmatch: no trailing newline
_MAX_LISTED = 10


def params_run_hash(overrides: dict[str, Any], imagery: str | None, root: Any, roi: str) -> str:
    """The run hash ``plastics run`` would use for these parameter overrides, imagery spec and ROI."""
    from plastics_dagster.cli.run import detection_params
    from plastics_dagster.registry import roi_hash
    from plastics_dagster.runner import parse_imagery

    return str(
        detection_params(overrides).run_hash(parse_imagery(imagery).source_name(), roi_hash(root, roi))
    )


def stored_run_hashes(root: Any, roi: str) -> list[str]:
    """Run hashes with a registry of ``roi`` in the store: a ``site_registry`` file, or a window
    of ``enriched_sites`` to build one from. Sorted."""
    from plastics_core.storage.layout import GEOJSON_EXT, asset_folder
    from plastics_core.storage.layout import stored_run_hashes as stored_hashes

    found = set(stored_hashes(asset_folder(root, "site_registry", roi), GEOJSON_EXT))
    windows = asset_folder(root, "enriched_sites", roi)
    if windows.exists():
        for wdir in windows.iterdir():
            if wdir.is_dir():
                found.update(stored_hashes(asset_folder(root, "enriched_sites", roi, wdir.name), GEOJSON_EXT))
    return sorted(found)


def _missing(root: Any, roi: str, run_hash: str, available: list[str]) -> PlasticsError:
    from plastics_dagster.registry import DEFAULT_ROI, roi_key

    if available:
        shown = ", ".join(available[:_MAX_LISTED]) + (", ..." if len(available) > _MAX_LISTED else "")
        return PlasticsError(
            f"no site registry for ROI {roi!r} at run hash {run_hash} in {root}; available: "
            f"{shown} (use --run-hash, or the --preset/--param/--imagery of that run)"
        )
    register = (
        ""
        if roi == DEFAULT_ROI or roi_key(root, roi).exists()
        else f"register it with `plastics roi add {roi} FILE.geojson`, then "
    )
    return PlasticsError(
        f"no site registry for ROI {roi!r} in {root}: {register}run `plastics run --roi {roi} "
        "--window YYYY-MM-DD` first (with the same --store, --imagery, --preset and --param)"
    )


def _verdicts(root: Any, roi: str) -> dict[str, str]:
    """The latest review verdicts of ``roi`` (site id -> verdict), read now; empty without a database."""
    from plastics_core.sitedb.engine import env_database_url
    from plastics_core.sitedb.site_verdicts import read_site_verdicts

    return read_site_verdicts(env_database_url(str(root)), roi)


def _echo_table(gdf: Any, roi: str, run_hash: str, source: str) -> None:
    from plastics_core.method.site_registry import STATUSES, format_registry_table

    click.echo(f"site registry of ROI {roi} · run hash {run_hash} · {source}")
    if len(gdf) == 0:
        click.echo(f"0 sites: {', '.join(f'0 {s}' for s in STATUSES)}")
    else:
        click.echo(format_registry_table(gdf))


@click.command("sites")
@click.option("--roi", required=True, help="Registered ROI name (`plastics roi list`).")
@click.option("--store", help=_STORE_HELP)
@click.option("--imagery", help=_IMAGERY_HELP + " (part of the run hash)")
@click.option(
    "--preset", type=PRESET_CHOICE, default=None, help="Sensitivity preset of the run [default: high]."
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other detection parameter of the run, as in `plastics run` (repeatable).",
)
@click.option(
    "--run-hash",
    "run_hash",
    metavar="HASH",
    help="Select the registry of this run hash instead of computing it from the parameters.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print the registry as CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as GeoJSON.")
def sites(
    roi: str,
    store: str | None,
    imagery: str | None,
    preset: str | None,
    params: tuple[str, ...],
    run_hash: str | None,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Print the site registry of an ROI: every site across all windows, new / persistent / gone.

    Give the same --store, --imagery, --preset and --param as the `plastics run` that wrote it.

    Example: plastics sites --roi test_patch --store ./out
    """
    from plastics_core.geo.roi import validate_roi_name
    from plastics_core.storage.store import read_bytes
    from plastics_dagster.assets.preview import load_site_registry, registry_paths

    validate_roi_name(roi)
    if as_csv and as_json:
        raise click.UsageError("--csv and --json exclude each other: give one")
    if run_hash is not None:
        if imagery or preset or params:
            raise click.UsageError("--run-hash replaces --imagery/--preset/--param: give one or the other")
        if not _HASH.fullmatch(run_hash):
            raise click.BadParameter(
                f"{run_hash!r} is not a run hash (12 hex digits, e.g. from `plastics run`)",
                param_hint="--run-hash",
            )
    else:
        overrides = parse_params(params)
        if preset:
            overrides["preset"] = preset
        try:
            run_hash = params_run_hash(overrides, imagery, open_store(store), roi)
        except RoiError:  # never registered: no run of it can exist
            raise _missing(open_store(store), roi, "", []) from None
    root = open_store(store)
    available = stored_run_hashes(root, roi)
    if run_hash not in available:
        raise _missing(root, roi, run_hash, available)
    gj, _ = registry_paths(root, roi, run_hash)
    stored = gj.exists()
    verdicts = _verdicts(root, roi)
    if as_json and stored and not verdicts:
        click.echo(read_bytes(gj).decode("utf-8").rstrip("\n"))
        return
    gdf = load_site_registry(root, roi, run_hash)
    if len(gdf) == 0:  # an empty GeoJSON has no columns: use the documented ones (CSV header)
        from plastics_core.method.site_registry import empty_registry

        gdf = empty_registry()
    else:
        from plastics_core.method.site_registry import with_verdicts

        gdf = with_verdicts(gdf, verdicts)
    if as_json:
        from plastics_core.storage.outputs import geojson_bytes

        click.echo(geojson_bytes(gdf).decode("utf-8").rstrip("\n"))
    elif as_csv:
        from plastics_core.method.site_registry import registry_csv_bytes

        click.echo(registry_csv_bytes(gdf).decode("utf-8"), nl=False)
    else:
        _echo_table(
            gdf, roi, run_hash, str(gj) if stored else "built from the stored windows (no registry file)"
        )

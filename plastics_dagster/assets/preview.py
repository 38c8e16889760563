"""Preview group: ``preview`` (HTML map + site reports per ROI × window) and ``site_registry``
(every site of an ROI merged across all windows).

Files (``<store>`` and ``<run-hash>`` as in :mod:`plastics_dagster.io_manager`; paths from
:func:`plastics_core.storage.layout.asset_path`)::

    <store>/preview/<roi>/<window>/<run-hash>.html                 self-contained map (offline)
    <store>/preview/<roi>/<window>/<run-hash>/reports/<site>.png   top-N site reports
    <store>/site_registry/<roi>/<run-hash>.geojson                 written by the IO manager
    <store>/site_registry/<roi>/<run-hash>.csv                     same rows, written here

``preview`` writes its own files (any store, atomic) and returns a MaterializeResult whose
metadata holds ``map`` (the map as an inline 800 px PNG framed on the ROI, with colour bar,
numbered sites and legend: "Show Markdown" in the UI) and a link a browser opens:
``preview_url``, a presigned ``https`` URL (7 days) on S3 stores; on a local store the page's
address on ``plastics serve`` when ``$PLASTICS_PREVIEW_URL`` names that server, else its
``file://`` URL (some browsers refuse ``file://`` links from a web page: ``open_with`` names the
command that opens it, ``plastics preview --roi R --window W --open``). ``site_registry`` is partitioned by ROI only and reads every
window of ``enriched_sites`` and ``contours`` of that ROI (``MultiToSingleDimensionPartitionMapping``
on the ``roi`` dimension; windows never materialized are skipped).

Both carry each site's latest review verdict, read through the ``database`` resource
(:func:`site_verdicts`: a plain dict site id -> verdict, empty when no site database exists yet)
and passed to the pure builders; the asset graph does not change.
"""

import re
import warnings
from typing import Any

import geopandas as gpd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BetaWarning,
    Config,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
)
from upath import UPath

from plastics_core.errors import PlasticsError
from plastics_core.geo.raster import Raster
from plastics_core.method.site_registry import (
    VERDICT_STATES,
    build_site_registry,
    format_registry_table,
    registry_csv_bytes,
)
from plastics_core.report import thumbnails
from plastics_core.report.preview import build_preview_html
from plastics_core.report.site_reports import build_site_reports, holding_tile
from plastics_core.storage.folders import read_gdf
from plastics_core.storage.layout import CSV_EXT, GEOJSON_EXT, HTML_EXT, asset_folder, asset_path
from plastics_core.storage.store import atomic_write, is_local, safe_name
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import GEOJSON_IO
from plastics_dagster.partitions import detect_partitions, roi_partitions, split_key
from plastics_dagster.reliability import NETWORK_RETRY, STORE_RETRY, fail_fast_on_user_errors
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from plastics_dagster.sitedb_resource import SiteDatabase

GROUP = "preview"
CODE_VERSION = "1"
_ALL_WINDOWS = {"allow_missing_partitions": True}

with warnings.catch_warnings():  # the mapping is marked beta in dagster 1.13; its behaviour is tested here
    warnings.simplefilter("ignore", BetaWarning)
    _BY_ROI = MultiToSingleDimensionPartitionMapping(partition_dimension_name="roi")


class PreviewConfig(Config):
    """Run config of ``preview``: how many site reports, and whether to load imagery for their RGB."""

    report_top_n: int = 5
    report_rgb: bool = True


def preview_path(store: UPath, roi: str, window: str, run_hash: str) -> UPath:
    """``<store>/preview/<roi>/<window>/<run-hash>.html``."""
    return asset_path(store, "preview", roi, window, run_hash, HTML_EXT)


def registry_paths(store: UPath, roi: str, run_hash: str) -> tuple[UPath, UPath]:
    """(GeoJSON, CSV) paths of an ROI's site registry."""
    return (
        asset_path(store, "site_registry", roi, None, run_hash, GEOJSON_EXT),
        asset_path(store, "site_registry", roi, None, run_hash, CSV_EXT),
    )


def load_site_registry(store: UPath, roi: str, run_hash: str) -> gpd.GeoDataFrame:
    """The stored registry of ``roi``; if absent, built from every stored window of that ROI."""
    path, _ = registry_paths(store, roi, run_hash)
    if path.exists():
        return read_gdf(path.read_bytes())
    return build_site_registry(collect_windows(store, roi, run_hash))


def collect_windows(store: UPath, roi: str, run_hash: str) -> dict[str, tuple[gpd.GeoDataFrame, Any]]:
    """window -> (enriched sites, contours or None) for every window of ``roi`` in the store."""
    out: dict[str, tuple[gpd.GeoDataFrame, Any]] = {}
    folder = asset_folder(store, "enriched_sites", roi)
    if not folder.exists():
        return out
    for wdir in sorted(folder.iterdir(), key=lambda p: p.name):
        sites = asset_path(store, "enriched_sites", roi, wdir.name, run_hash, GEOJSON_EXT)
        if not sites.exists():
            continue
        cpath = asset_path(store, "contours", roi, wdir.name, run_hash, GEOJSON_EXT)
        out[wdir.name] = (
            read_gdf(sites.read_bytes()),
            read_gdf(cpath.read_bytes()) if cpath.exists() else None,
        )
    return out


#: lifetime of the presigned preview URL on S3 stores (the S3 maximum: 7 days)
PRESIGN_SECONDS = 7 * 24 * 3600


#: Base URL of a running ``plastics serve`` (which serves ``<store>/preview`` of a local store at
#: ``<url>/preview/...``); read when ``preview`` runs. Unset: ``file://`` links.
PREVIEW_URL_VAR = "PLASTICS_PREVIEW_URL"


def served_url(root: UPath, path: UPath) -> str | None:
    """``$PLASTICS_PREVIEW_URL/preview/<roi>/<window>/<run-hash>.html`` for a page ``path`` of the
    local store ``root`` when that variable is set; else None."""
    import os
    from pathlib import Path
    from urllib.parse import quote

    base = os.environ.get(PREVIEW_URL_VAR, "").strip().rstrip("/")
    if not base or not is_local(path) or not base.startswith(("http://", "https://")):
        return None
    relative = Path(path.path).relative_to(Path(str(root.path)) / "preview")
    return f"{base}/preview/{quote(relative.as_posix())}"


def browser_url(path: UPath) -> str | None:
    """A URL a browser opens for a stored file: presigned ``https`` on S3 (credentials of the
    store's environment), ``file://`` for a local store; None when the filesystem cannot sign."""
    if is_local(path):
        from pathlib import Path

        return Path(path.path).resolve().as_uri()
    try:
        return str(path.fs.sign(path.path, expiration=PRESIGN_SECONDS))
    except (NotImplementedError, AttributeError, ValueError, OSError):
        return None


def _url(path: UPath) -> Any:
    """Metadata pointing at a stored file: a local path, or the ``s3://`` URL."""
    return MetadataValue.path(str(path.path)) if is_local(path) else MetadataValue.url(str(path))


def _composites(
    heatmaps: list[Raster],
    imagery: ImagerySourceResource,
    window: str,
    params: DetectionParams,
    context: AssetExecutionContext,
) -> Any:
    """A callable site -> RGB-capable composite of the tile holding it (loaded once per tile)."""
    from plastics_core.geo.periods import pair_periods, parse_day
    from plastics_core.geo.tiles import tile_from_key
    from plastics_core.method.composite import composite

    p = params.core()
    _, period = pair_periods(parse_day(window), p.mosaic_period, p.spectrogram_interval)
    cache: dict[str, Any] = {}
    source: list[Any] = []

    def for_tile(name: str) -> Any:
        if name not in cache:
            try:
                if not source:
                    source.append(imagery.get_source())
                cache[name] = composite(source[0].load(tile_from_key(name), period), period, "median")
            except (PlasticsError, OSError, ValueError) as err:  # best effort: the report has no RGB panel
                context.log.warning(f"no RGB composite for tile {name}: {err}")
                cache[name] = None
        return cache[name]

    return for_tile


def _reports(
    context: AssetExecutionContext,
    cfg: PreviewConfig,
    sites: gpd.GeoDataFrame,
    heatmaps: list[Raster],
    contours: gpd.GeoDataFrame,
    imagery: ImagerySourceResource,
    params: DetectionParams,
    window: str,
) -> dict[str, bytes]:
    if cfg.report_top_n <= 0 or len(sites) == 0:
        return {}
    get = _composites(heatmaps, imagery, window, params, context) if cfg.report_rgb else None

    def composite_at(lon: float, lat: float) -> Any:
        tile = holding_tile(heatmaps, lon, lat)
        return get(tile.name) if (get is not None and tile is not None) else None

    return build_site_reports(sites, composite_at, heatmaps, contours, top_n=cfg.report_top_n)


@asset(
    retry_policy=NETWORK_RETRY,
    partitions_def=detect_partitions,
    group_name=GROUP,
    code_version=CODE_VERSION,
    kinds={"python", "html"},
    description="Self-contained HTML map (Leaflet inlined, opens offline) of the ROI, median heatmap, blobs, "
    "candidates, contours by date and a sortable site table; plus PNG reports of the top sites.",
)
@fail_fast_on_user_errors
def preview(
    context: AssetExecutionContext,
    config: PreviewConfig,
    heatmaps: list[Raster],
    blobs: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    contours: gpd.GeoDataFrame,
    enriched_sites: gpd.GeoDataFrame,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    database: SiteDatabase,
) -> MaterializeResult[Any]:
    roi, window = split_key(context.partition_key)
    run_hash = params.run_hash_for(roi, imagery, store)
    root = store.path()
    geom = store.load_roi(roi)
    verdicts = site_verdicts(database, store, roi)
    html = build_preview_html(
        geom,
        heatmaps,
        blobs,
        candidates,
        contours,
        enriched_sites,
        f"{roi} · window {window} · run {run_hash}",
        verdicts=verdicts,
    )
    path = preview_path(root, roi, window, run_hash)
    atomic_write(path, html.encode("utf-8"))
    reports = _reports(context, config, enriched_sites, heatmaps, contours, imagery, params, window)
    folder = asset_path(root, "preview", roi, window, run_hash) / "reports"
    for sid, png in sorted(reports.items()):
        atomic_write(folder / f"{safe_name(sid)}.png", png)
    png = thumbnails.preview_map_png(geom, heatmaps, candidates, f"{roi} · window {window}")
    meta: dict[str, Any] = {
        "map": MetadataValue.md(
            thumbnails.markdown_image(png, f"{roi} {window}: median heatmap and candidates")
        ),
        "preview": _url(path),
        "sites": len(enriched_sites),
        "candidates": len(candidates),
        "blobs": len(blobs),
        "contours": len(contours),
        "html_bytes": len(html),
        "reports": len(reports),
        "run_hash": run_hash,
    }
    url = served_url(root, path) or browser_url(path)
    if url:
        meta["preview_url"] = MetadataValue.url(url)
    if is_local(path) or not url:
        meta["open_with"] = MetadataValue.text(f"plastics preview --roi {roi} --window {window} --open")
    if reports:
        meta["reports_folder"] = _url(folder)
    if len(enriched_sites) == 0:
        meta["empty_reason"] = "no sites in this partition: the map shows the ROI and heatmap only"
    return MaterializeResult(metadata=meta)


def site_verdicts(database: SiteDatabase, store: StoreResource, roi: str) -> dict[str, str]:
    """site id -> latest review verdict of ``roi`` in the site database (empty when none exists yet)."""
    from plastics_core.sitedb.site_verdicts import read_site_verdicts

    return read_site_verdicts(database.resolved_url(store.resolved()), roi)


def _code_block(text: str) -> str:
    """Markdown code block of ``text`` whose fence no backtick run in ``text`` can close."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}\n{text}\n{fence}"


def _as_windows(loaded: Any, keys: list[str]) -> dict[str, gpd.GeoDataFrame]:
    if isinstance(loaded, gpd.GeoDataFrame):  # a single upstream partition is loaded unwrapped
        return {split_key(keys[0])[1]: loaded} if keys else {}
    return {split_key(k)[1]: v for k, v in (loaded or {}).items()}


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=roi_partitions,
    group_name=GROUP,
    code_version=CODE_VERSION,
    kinds={"python", "geojson", "csv"},
    io_manager_key=GEOJSON_IO,
    ins={
        "enriched_sites": AssetIn(partition_mapping=_BY_ROI, metadata=_ALL_WINDOWS),
        "contours": AssetIn(partition_mapping=_BY_ROI, metadata=_ALL_WINDOWS),
    },
    description="Every site of the ROI across all windows: first/last window, n windows, scores and area over "
    "time, status new/persistent/gone (GeoJSON via the IO manager + CSV beside it).",
)
@fail_fast_on_user_errors
def site_registry(
    context: AssetExecutionContext,
    enriched_sites: Any,
    contours: Any,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    database: SiteDatabase,
) -> Output[gpd.GeoDataFrame]:
    roi = context.partition_key
    keys = [str(k) for k in context.asset_partition_keys_for_input("enriched_sites")]
    sites_by_window = _as_windows(enriched_sites, keys)
    contours_by_window = _as_windows(
        contours, [str(k) for k in context.asset_partition_keys_for_input("contours")]
    )
    per_window = {w: (g, contours_by_window.get(w)) for w, g in sites_by_window.items()}
    registry = build_site_registry(per_window, site_verdicts(database, store, roi))
    run_hash = params.run_hash_for(roi, imagery, store)
    gj, csv = registry_paths(store.path(), roi, run_hash)
    atomic_write(csv, registry_csv_bytes(registry))
    counts = registry["status"].value_counts().to_dict() if len(registry) else {}
    verdicts = registry["verdict"].value_counts().to_dict() if len(registry) else {}
    meta: dict[str, Any] = {
        "sites": len(registry),
        "windows": len(per_window),
        "new": int(counts.get("new", 0)),
        "persistent": int(counts.get("persistent", 0)),
        "gone": int(counts.get("gone", 0)),
        **{state: int(verdicts.get(state, 0)) for state in VERDICT_STATES},
        "geojson": _url(gj),
        "csv": _url(csv),
        "run_hash": run_hash,
        "table": MetadataValue.md(_code_block(format_registry_table(registry))),
    }
    if not per_window:
        meta["empty_reason"] = f"no window of ROI {roi} has enriched_sites for run {run_hash}"
    return Output(registry, metadata=meta)


preview_assets = [preview, site_registry]

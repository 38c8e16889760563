"""The site registry of one ROI: every site ever detected, merged across quarterly windows.

Input per window (``YYYY-MM-DD`` keys, which sort chronologically): the enriched sites
(:data:`plastics_core.method.enrich.SITE_COLUMNS`: ``site_id`` (H3 cell), ``name``, ``lon``, ``lat``,
``score``, ``patch_mean``, ``display_name`` ...) and the contours (``name``, ``date``, ``area_km2``).

Sites are matched across windows with :func:`plastics_core.method.enrich.same_site` (the same H3 cell or
a neighbour, which tolerates jitter of the blob centre), never merging two sites of one window.
A registry row's ``site_id`` is the id of its first detection (stable as windows are added).

Status (``latest`` = the latest window given, detected or not):
``new``: detected only in the latest window; ``gone``: detected before but not in the latest
window; ``persistent``: detected in the latest window and in an earlier one.

Time series are JSON strings with sorted keys (deterministic, CSV- and GeoJSON-safe):
``pixel_scores`` / ``patch_scores`` ``{window: score}``, ``areas_km2`` ``{contour date: km²}``
(sum of the site's contour polygons of that date; the latest window wins a shared date).
These series are how a confirmed site is tracked over time: every new window adds its score and
area to the same row.

``verdict``: the site's latest review verdict (:data:`VERDICT_LABELS`: ``confirmed``, ``rejected``,
``unsure``, ``unreviewed``) from a plain dict ``site id -> verdict`` read from the site database
(:func:`plastics_core.sitedb.site_verdicts.read_site_verdicts`); a verdict given to any of a row's
``site_ids`` counts (:func:`verdict_label`). No dict, or no verdict: ``unreviewed``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point

from plastics_core.method.enrich import same_site

REGISTRY_COLUMNS = [
    "site_id", "status", "first_window", "last_window", "n_windows", "windows", "name", "lon", "lat",
    "score_latest", "patch_latest", "score_max", "area_km2_latest", "pixel_scores", "patch_scores",
    "areas_km2", "site_ids", "address", "verdict",
]  # fmt: skip
STATUSES = ("new", "persistent", "gone")
#: stored verdict (``confirm`` | ``reject`` | ``unsure``) -> the label outputs show
VERDICT_LABELS = {"confirm": "confirmed", "reject": "rejected", "unsure": "unsure"}
UNREVIEWED = "unreviewed"
#: every label a ``verdict`` column may hold
VERDICT_STATES = (*VERDICT_LABELS.values(), UNREVIEWED)
_FLOAT_DIGITS = 6


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _json(obj: Mapping[str, float] | list[str]) -> str:
    def clean(v: Any) -> Any:
        return (
            None
            if isinstance(v, float) and not math.isfinite(v)
            else (round(v, _FLOAT_DIGITS) if isinstance(v, float) else v)
        )

    if isinstance(obj, list):
        return json.dumps(obj, separators=(",", ":"))
    return json.dumps({k: clean(v) for k, v in obj.items()}, sort_keys=True, separators=(",", ":"))


def _near(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return same_site(a, b)
    except ValueError:  # not an H3 cell (hand-made ids): exact match only
        return False


def _label(verdict: Any) -> str:
    text = str(verdict)
    if text in VERDICT_LABELS:
        return VERDICT_LABELS[text]
    return text if text in VERDICT_STATES else UNREVIEWED


def verdict_label(ids: list[str], verdicts: Mapping[str, str] | None, near: bool = False) -> str:
    """The verdict label (:data:`VERDICT_STATES`) of a site known by ``ids`` (registry id first).

    ``verdicts``: site id -> verdict (``confirm``/``reject``/``unsure`` or a label), ordered oldest
    first; among the ids that have one, the newest counts. ``near``: when no id has one, also accept
    a verdict of a neighbouring H3 cell (how the registry matches a site detected again). Unknown
    verdict text shows as ``unreviewed``.
    """
    if not verdicts:
        return UNREVIEWED
    order = {k: i for i, k in enumerate(verdicts)}
    found = [i for i in ids if i in order]
    if not found and near:
        found = [k for k in verdicts if any(_near(i, k) for i in ids)]
    if not found:
        return UNREVIEWED
    return _label(verdicts[max(found, key=lambda k: order[k])])


def with_verdicts(gdf: gpd.GeoDataFrame, verdicts: Mapping[str, str] | None) -> gpd.GeoDataFrame:
    """A copy of the registry ``gdf`` whose ``verdict`` column holds each row's latest verdict
    (:func:`verdict_label` over the row's ``site_id`` and ``site_ids``). Empty stays empty."""
    out = gdf.copy()
    labels = []
    for _, row in out.iterrows():
        try:
            extra = [str(i) for i in json.loads(str(row.get("site_ids") or "[]"))]
        except ValueError:
            extra = []
        labels.append(verdict_label([str(row["site_id"]), *extra], verdicts))
    out["verdict"] = pd.Series(labels, index=out.index, dtype=object)
    return out


@dataclass
class _Site:
    ids: list[str] = field(default_factory=list)
    obs: dict[str, dict[str, Any]] = field(default_factory=dict)  # window -> row fields
    areas: dict[str, tuple[str, float]] = field(default_factory=dict)  # date -> (window, km²)


def _areas_by_name(contours: gpd.GeoDataFrame | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if contours is None or len(contours) == 0 or not {"name", "date", "area_km2"} <= set(contours.columns):
        return out
    for (name, day), area in contours.groupby(["name", "date"])["area_km2"].sum().items():
        out.setdefault(str(name), {})[str(day)[:10]] = float(area)
    return out


def _match(sites: list[_Site], sid: str, window: str) -> _Site | None:
    best: _Site | None = None
    for s in sites:
        if window in s.obs or not any(_near(sid, i) for i in s.ids):
            continue
        if best is None or max(s.obs) > max(best.obs) or (sid in s.ids and sid not in best.ids):
            best = s
    return best


def empty_registry() -> gpd.GeoDataFrame:
    """A registry with no rows: the documented columns, Point geometry, EPSG:4326."""
    return gpd.GeoDataFrame(
        {c: [] for c in REGISTRY_COLUMNS}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326"
    )


def build_site_registry(
    per_window: Mapping[str, tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]],
    verdicts: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """One row per site across windows (:data:`REGISTRY_COLUMNS`, Point at the latest detection,
    EPSG:4326), sorted by ``site_id``. ``per_window``: window -> (enriched sites, contours); include
    windows with no detection (empty or None frames) so that ``gone`` is known. No windows -> empty.
    ``verdicts``: site id -> latest verdict (see :func:`with_verdicts`); None: all ``unreviewed``.
    """
    windows = sorted(per_window)
    if not windows:
        return empty_registry()
    latest = windows[-1]
    sites: list[_Site] = []
    for window in windows:
        enriched, contours = per_window[window]
        if enriched is None or len(enriched) == 0:
            continue
        areas = _areas_by_name(contours)
        frame = pd.DataFrame(enriched.drop(columns=enriched.geometry.name))
        frame["_score"] = frame["score"].map(_num) if "score" in frame.columns else math.nan
        frame["_id"] = (
            frame["site_id"].astype(str) if "site_id" in frame.columns else frame["name"].astype(str)
        )
        frame = frame.sort_values(["_score", "_id"], ascending=[False, True], na_position="last")
        for _, row in frame.iterrows():
            sid = str(row["_id"])
            site = _match(sites, sid, window)
            if site is None:
                site = _Site()
                sites.append(site)
            if sid not in site.ids:
                site.ids.append(sid)
            site.obs[window] = {
                k: row.get(k)
                for k in ("name", "lon", "lat", "score", "patch_mean", "display_name", "address")
            }
            for day, km2 in areas.get(str(row.get("name")), {}).items():
                site.areas[day] = (
                    (window, km2)
                    if day not in site.areas or window >= site.areas[day][0]
                    else site.areas[day]
                )
    if not sites:
        return empty_registry()
    rows = []
    for s in sites:
        seen = sorted(s.obs)
        last = s.obs[seen[-1]]
        status = "gone" if seen[-1] != latest else ("new" if len(seen) == 1 else "persistent")
        scores = {w: _num(s.obs[w]["score"]) for w in seen}
        area_ts = {d: v for d, (_, v) in sorted(s.areas.items())}
        address = last.get("address") or last.get("display_name") or ""
        rows.append(
            {
                "site_id": s.ids[0],
                "status": status,
                "first_window": seen[0],
                "last_window": seen[-1],
                "n_windows": len(seen),
                "windows": _json(seen),
                "name": str(last.get("name") or ""),
                "lon": _num(last["lon"]),
                "lat": _num(last["lat"]),
                "score_latest": scores[seen[-1]],
                "patch_latest": _num(last["patch_mean"]),
                "score_max": max((v for v in scores.values() if math.isfinite(v)), default=math.nan),
                "area_km2_latest": area_ts[max(area_ts)] if area_ts else math.nan,
                "pixel_scores": _json(scores),
                "patch_scores": _json({w: _num(s.obs[w]["patch_mean"]) for w in seen}),
                "areas_km2": _json(area_ts),
                "site_ids": _json(sorted(s.ids)),
                "address": str(address),
                "verdict": verdict_label(s.ids, verdicts),
            }
        )
    df = pd.DataFrame(rows, columns=REGISTRY_COLUMNS).sort_values("site_id").reset_index(drop=True)
    geom = [Point(x, y) for x, y in zip(df["lon"], df["lat"], strict=True)]
    return gpd.GeoDataFrame(df, geometry=geom, crs="EPSG:4326")


def registry_csv_bytes(gdf: gpd.GeoDataFrame) -> bytes:
    """The registry as UTF-8 CSV (:data:`REGISTRY_COLUMNS`, no geometry; floats with 6 decimals).

    Text cells that a spreadsheet would run as a formula get a leading ``'``
    (:mod:`plastics_core.storage.csv_safe`); numeric columns are written as numbers."""
    from plastics_core.storage.csv_safe import safe_csv_text

    cols = [c for c in REGISTRY_COLUMNS if c in gdf.columns]
    text = safe_csv_text(
        pd.DataFrame(gdf[cols]), index=False, float_format=f"%.{_FLOAT_DIGITS}f", lineterminator="\n"
    )
    return text.encode("utf-8")


def write_registry_csv(gdf: gpd.GeoDataFrame, path: str | Path) -> Path:
    """Write :func:`registry_csv_bytes` atomically (temp file in the same folder + os.replace)."""
    from plastics_core.storage.atomic import write_bytes

    write_bytes(registry_csv_bytes(gdf), path)
    return Path(path)


def write_registry(gdf: gpd.GeoDataFrame, geojson_path: str | Path) -> tuple[Path, Path]:
    """Write the registry as GeoJSON (``plastics_core.storage.outputs.write_geojson``) and CSV beside it
    (same stem, ``.csv``); both atomic. Returns (geojson path, csv path)."""
    from plastics_core.storage.outputs import write_geojson

    gj = Path(geojson_path)
    write_geojson(gdf, gj)
    return gj, write_registry_csv(gdf, gj.with_suffix(".csv"))


def _fmt(v: Any, spec: str) -> str:
    f = _num(v)
    return "-" if not math.isfinite(f) else format(f, spec)


def format_registry_table(gdf: gpd.GeoDataFrame, max_address: int = 40) -> str:
    """A plain-text table of the registry for terminals (``plastics sites --roi NAME``), with each
    site's verdict (``unreviewed`` when the registry has no ``verdict`` column).

    Rows ordered by status (new, persistent, gone), then latest score (highest first), then id.
    """
    if gdf is None or len(gdf) == 0:
        return "no sites in the registry"
    head = [
        "site_id",
        "status",
        "first",
        "last",
        "n",
        "score",
        "patch",
        "area_km2",
        "lat",
        "lon",
        "verdict",
        "address",
    ]
    order = {s: i for i, s in enumerate(STATUSES)}
    recs = sorted(
        (r for _, r in gdf.iterrows()),
        key=lambda r: (
            order.get(str(r["status"]), 9),
            -_num(r["score_latest"]) if math.isfinite(_num(r["score_latest"])) else math.inf,
            str(r["site_id"]),
        ),
    )
    lines = [
        [
            str(r["site_id"]),
            str(r["status"]),
            str(r["first_window"]),
            str(r["last_window"]),
            str(int(r["n_windows"])),
            _fmt(r["score_latest"], ".3f"),
            _fmt(r["patch_latest"], ".3f"),
            _fmt(r["area_km2_latest"], ".4f"),
            _fmt(r["lat"], ".5f"),
            _fmt(r["lon"], ".5f"),
            _label(r.get("verdict") or UNREVIEWED),
            str(r.get("address") or "")[:max_address],
        ]
        for r in recs
    ]
    widths = [max(len(head[i]), *(len(row[i]) for row in lines)) for i in range(len(head))]
    numeric = {4, 5, 6, 7, 8, 9}

    def fmt_row(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    counts = ", ".join(f"{sum(1 for r in recs if r['status'] == s)} {s}" for s in STATUSES)
    verdicts = ", ".join(f"{n} {v}" for v in VERDICT_STATES if (n := sum(1 for row in lines if row[10] == v)))
    return "\n".join(
        [
            fmt_row(head),
            fmt_row(["-" * w for w in widths]),
            *map(fmt_row, lines),
            f"{len(recs)} site{'' if len(recs) == 1 else 's'}: {counts}; {verdicts}",
        ]
    )

"""The asset graph (keys, deps, groups, partitions, checks) matches tests/data/graph_snapshot.json.

A missing or different snapshot fails the test. Regenerate it after an intended change with
``PLASTICS_UPDATE_SNAPSHOT=1 pytest tests/test_graph_snapshot.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parent / "data" / "graph_snapshot.json"


def _partitions(pdef: Any) -> Any:
    if pdef is None:
        return None
    dims = getattr(pdef, "partitions_defs", None)
    if dims:
        return {d.name: _partitions(d.partitions_def) for d in dims}
    out: dict[str, Any] = {"type": type(pdef).__name__}
    for attr in ("name", "cron_schedule", "fmt"):
        value = getattr(pdef, attr, None)
        if value is not None:
            out[attr] = value
    if hasattr(pdef, "start") and out["type"].startswith("TimeWindow"):
        out["start"] = pdef.start.strftime("%Y-%m-%d")
    return out


def graph_snapshot() -> dict[str, Any]:
    from plastics_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
        }
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    return {"assets": assets, "checks": checks}


def write_snapshot() -> None:
    """Rewrite the snapshot from the current definitions (only on an explicit request)."""
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(json.dumps(graph_snapshot(), indent=2, sort_keys=True) + "\n")


def test_graph_matches_snapshot() -> None:
    if os.environ.get("PLASTICS_UPDATE_SNAPSHOT") == "1":
        write_snapshot()
    assert SNAPSHOT.is_file(), (
        f"{SNAPSHOT.name} is missing: regenerate it with "
        "PLASTICS_UPDATE_SNAPSHOT=1 pytest tests/test_graph_snapshot.py and review the diff"
    )
    assert graph_snapshot() == json.loads(SNAPSHOT.read_text()), (
        "graph changed: if intended, rerun with PLASTICS_UPDATE_SNAPSHOT=1 and commit the reviewed snapshot"
    )


def test_detect_chain_present() -> None:
    deps = {k: v["deps"] for k, v in graph_snapshot()["assets"].items()}
    assert deps["descartes_run"] == []
    assert deps["heatmaps"] == ["descartes_run"]
    assert deps["patch_geojson"] == ["descartes_run"]
    assert deps["blobs"] == ["heatmaps"]
    assert deps["candidates"] == ["blobs", "patch_geojson"]
    assert deps["contours"] == ["candidates"]
    assert deps["enriched_sites"] == ["candidates", "contours"]

"""The fan-out's tile steps: GPU placement of ``infer_tile``, mapping keys, the collected summaries.

- :data:`GPU_POOL`, :data:`INFER_TILE_TAGS`: the Dagster pool and the Celery queue / Kubernetes
  pod config (:data:`GPU_K8S_CONFIG`: ``nvidia.com/gpu: 1``, GPU node selector and toleration)
  that place each ``infer_tile`` step on a GPU worker.
- :func:`mapping_key`: a DLTile key as a dynamic-output mapping key.
- :func:`complete_summaries`: one summary per planned tile, from the steps or the stored files.
"""

from __future__ import annotations

import re
from typing import Any

from dagster import Failure
from upath import UPath

from plastics_core.storage.corrupt import load_json
from plastics_core.storage.store import tile_files

GPU_POOL = "gpu"
GPU_QUEUE = "gpu"
#: ``dagster-k8s/config`` of ``infer_tile`` (deploy/helm/gpu-step-k8s-config.json is the same).
GPU_K8S_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {
            "limits": {"nvidia.com/gpu": "1", "memory": "16Gi"},
            "requests": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "12Gi"},
        },
        "env": [{"name": "TF_FORCE_GPU_ALLOW_GROWTH", "value": "true"}],
    },
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
INFER_TILE_TAGS: dict[str, Any] = {"dagster-celery/queue": GPU_QUEUE, "dagster-k8s/config": GPU_K8S_CONFIG}


def mapping_key(tile_key: str) -> str:
    """A DLTile key as a short dynamic mapping key (``[A-Za-z0-9_]``): UTM zone and tile indices,
    ``-`` as ``m`` (``897:22:10.0:50:-21:-106`` -> ``z50_xm21_ym106``; tilesize, pad and resolution
    are the same for every tile of a run). Keys that are not DLTile keys: every other character -> ``_``."""
    parts = tile_key.split(":")
    if len(parts) == 6:
        zone, ti, tj = (p.replace("-", "m") for p in parts[3:])
        return re.sub(r"[^A-Za-z0-9_]", "_", f"z{zone}_x{ti}_y{tj}")
    return "t_" + re.sub(r"[^A-Za-z0-9]", "_", tile_key.replace("-", "m"))


def complete_summaries(
    summaries: list[dict[str, Any]], planned: list[str], folder: UPath
) -> list[dict[str, Any]]:
    """One summary per planned tile (sorted by key): from the steps, else from the tile's stored
    summary file (same run hash). Raises :class:`dagster.Failure` naming any tile with neither:
    a manifest never lists a partial set of tiles."""
    by_key = {str(s["key"]): s for s in summaries}
    missing = []
    for key in planned:
        marker = tile_files(folder, key)["summary"]
        if key not in by_key and marker.exists():
            by_key[key] = {**load_json(marker), "skipped": True}  # corrupt: moved aside, one line
        elif key not in by_key:
            missing.append(key)
    if missing:
        raise Failure(
            f"{len(missing)} of {len(planned)} tiles have no outputs ({', '.join(missing[:5])}): "
            "resume the run with plastics_dagster.resume.resume (re-runs only the missing tiles)"
        )
    return [by_key[k] for k in planned]

"""Where the CLI keeps Dagster state and outputs.

- Dagster instance: ``$DAGSTER_HOME`` when set, else ``./.dagster_home`` (created on first
  use). ``dagster dev`` run with the same ``DAGSTER_HOME`` shows the CLI's runs, ROIs
  (dynamic ``roi`` partitions) and materializations. Its ``dagster.yaml`` (written once, by the
  CLI or by ``make ui`` before the UI first starts; never overwritten) is
  :data:`INSTANCE_YAML`: telemetry off, at most ``MAX_CONCURRENT_RUNS`` runs at once, and every op pool (``gpu``: the ``infer_tile`` steps) limited to
  ``GPU_POOL_LIMIT`` step(s) at once across runs. Raise them as docs/OPERATING.md shows.
- Output store: ``--store`` > ``$PLASTICS_STORE`` > ``./.plastics/store`` (a folder or
  ``s3://bucket/prefix``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_DAGSTER_HOME = ".dagster_home"
MAX_CONCURRENT_RUNS = 2
GPU_POOL_LIMIT = 1
INSTANCE_YAML = f"""\
# Dagster instance of plastics (sqlite storage in this folder). See docs/OPERATING.md.
telemetry:
  enabled: false
concurrency:
  runs:
    # runs executing at once; more wait in the queue (TensorFlow runs need ~2 GB each)
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
  pools:
    # steps of one pool at once, across all runs: infer_tile is in pool "gpu" (one per GPU)
    default_limit: {GPU_POOL_LIMIT}
"""


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``./.dagster_home`` (absolute)."""
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()


def open_instance() -> Any:
    """A persistent :class:`dagster.DagsterInstance` rooted at :func:`dagster_home`; ParameterError
    (one line) when its ``dagster.yaml`` is not a valid instance configuration."""
    import yaml
    from dagster import DagsterInstance, DagsterInvalidConfigError

    from plastics_core.errors import ParameterError

    home = ensure_instance_config(dagster_home())
    try:
        instance = DagsterInstance.from_config(str(home))
    except (DagsterInvalidConfigError, yaml.YAMLError) as exc:
        raise ParameterError(
            f"{home / 'dagster.yaml'} is not a valid Dagster instance configuration "
            f"({' '.join(str(exc).split())[:200]}): fix it (docs/OPERATING.md) or set DAGSTER_HOME "
            "to another folder"
        ) from exc
    warn_unusable_rois(instance)
    return instance


def warn_unusable_rois(instance: Any) -> None:
    """One ``Warning:`` line on stderr when the instance holds ``roi`` partitions whose name no run
    can use (added in the UI or through the API), naming the command that removes them."""
    import click

    from plastics_dagster.registry import unusable_rois, unusable_rois_message

    message = unusable_rois_message(unusable_rois(instance))
    if message:
        click.echo(f"Warning: {message}", err=True)


def ensure_instance_config(home: Path) -> Path:
    """Create ``home`` and its ``dagster.yaml`` (:data:`INSTANCE_YAML`) unless it exists; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML, encoding="utf-8")
    return home


def store_location(store: str | None) -> str:
    """The output store location string (``--store`` or the documented default)."""
    from plastics_dagster.resources import default_store

    return store or default_store()


def open_store(store: str | None) -> Any:
    """The output store as a :class:`upath.UPath` (local folders made absolute; S3 endpoint
    from ``$AWS_ENDPOINT_URL``), exactly as the IO manager opens it."""
    from plastics_core.storage.store import store_path

    return store_path(store_location(store))


def prepare_ui() -> list[str]:
    """What ``make ui`` does before ``dagster dev``: the instance's ``dagster.yaml``
    (:func:`ensure_instance_config`) and the demo ROI ``test_patch`` registered (from the shared
    data folder, when present), so the UI can materialize it at once. Returns the lines to print."""
    from plastics_dagster.registry import DEFAULT_ROI, default_roi_file, ensure_roi

    home = ensure_instance_config(dagster_home())
    lines = [f"Dagster instance: {home}"]
    if default_roi_file().exists():
        ensure_roi(open_instance(), open_store(None), DEFAULT_ROI)
        lines.append(f"demo ROI {DEFAULT_ROI} registered (store {store_location(None)})")
    imagery = os.environ.get("PLASTICS_IMAGERY", "")
    lines.append(
        f"imagery of the UI's runs: PLASTICS_IMAGERY={imagery}"
        if imagery
        else "PLASTICS_IMAGERY is not set: the UI's runs fail until it is set (or the Launchpad sets "
        "resources.imagery.config.kind)"
    )
    return lines


def main() -> None:
    """``make ui`` runs this before ``dagster dev`` (:func:`prepare_ui`)."""
    for line in prepare_ui():
        print(line)


if __name__ == "__main__":
    main()

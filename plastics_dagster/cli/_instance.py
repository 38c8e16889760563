"""Where the CLI keeps Dagster state and outputs.

- Dagster instance: ``$DAGSTER_HOME`` when set, else ``./.dagster_home`` (created on first
  use). ``dagster dev`` run with the same ``DAGSTER_HOME`` shows the CLI's runs, ROIs
  (dynamic ``roi`` partitions) and materializations.
- Output store: ``--store`` > ``$PLASTICS_STORE`` > ``./.plastics/store`` (a folder or
  ``s3://bucket/prefix``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_DAGSTER_HOME = ".dagster_home"


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``./.dagster_home`` (absolute)."""
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()


def open_instance() -> Any:
    """A persistent :class:`dagster.DagsterInstance` rooted at :func:`dagster_home`."""
    from dagster import DagsterInstance

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # sqlite storage under ``home``; no telemetry from a CLI instance
        config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return DagsterInstance.from_config(str(home))


def store_location(store: str | None) -> str:
    """The output store location string (``--store`` or the documented default)."""
    from plastics_dagster.resources import default_store

    return store or default_store()


def open_store(store: str | None) -> Any:
    """The output store as a :class:`upath.UPath` (local folders made absolute; S3 endpoint
    from ``$AWS_ENDPOINT_URL``), exactly as the IO manager opens it."""
    from plastics_dagster.io_manager import store_path

    return store_path(store_location(store))

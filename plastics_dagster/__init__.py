"""plastics_dagster: the Dagster asset graph over plastics_core.

Entry points for other code (CLI): :func:`plastics_dagster.runner.materialize_partition`,
:func:`plastics_dagster.registry.register_roi` / ``list_rois`` / ``load_roi``, and
``plastics_dagster.definitions.defs``. Heavy modules are imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["list_rois", "load_roi", "materialize_partition", "register_roi"]


def __getattr__(name: str) -> Any:
    if name in ("register_roi", "list_rois", "load_roi"):
        from plastics_dagster import registry

        return getattr(registry, name)
    if name == "materialize_partition":
        from plastics_dagster.runner import materialize_partition

        return materialize_partition
    raise AttributeError(name)

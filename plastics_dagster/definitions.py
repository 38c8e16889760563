"""The Definitions object (``workspace.yaml`` loads ``plastics_dagster.definitions``).

Resources are chosen by env vars when this module loads (see :mod:`plastics_dagster.resources`)
and can be overridden per run as run config under ``resources.<key>.config``.
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from plastics_dagster.assets import DETECT_ASSETS
from plastics_dagster.assets.preview import preview_assets
from plastics_dagster.automation import AUTOMATION_SENSORS, with_automation
from plastics_dagster.backend import BackendResource
from plastics_dagster.checks import ALL_CHECKS
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import plastics_io_manager
from plastics_dagster.jobs import celery_detect_job, detect_job, registry_job
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)
from plastics_dagster.sensors import imagery_sensor, roi_sensor


def default_resources(**overrides: Any) -> dict[str, Any]:
    """The resource dict of the graph (env-var defaults), with keys replaced by ``overrides``."""
    resources: dict[str, Any] = {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource.from_env(),
        "models": ModelStoreResource(),
        "geocoder": GeocoderResource.from_env(),
        "store": StoreResource(),
        "backend": BackendResource.from_env(),
        "io_manager": plastics_io_manager,
    }
    resources.update(overrides)
    return resources


ALL_ASSETS: list[Any] = with_automation([*DETECT_ASSETS, *preview_assets])

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    sensors=[roi_sensor, imagery_sensor, *AUTOMATION_SENSORS],
    jobs=[detect_job, registry_job, celery_detect_job()],
    resources=default_resources(),
)

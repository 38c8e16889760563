"""The code location's one Definitions object (``workspace.yaml`` loads ``plastics_dagster.definitions``).

Nothing here reads the environment: resources take their settings from run config
(``resources.<key>.config``) or, for fields left empty, from environment variables read at run
time by the resource itself (see :mod:`plastics_dagster.resources`). Every job's executor is fixed
in :mod:`plastics_dagster.jobs` (``detect_job`` in-process, ``detect_job_celery``,
``detect_job_k8s``, ``registry_job``).
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from plastics_dagster.alerts import AlertWebhookResource, new_site_alerts
from plastics_dagster.assets import DETECT_ASSETS
from plastics_dagster.assets.preview import preview_assets
from plastics_dagster.assets.publish import published_sites
from plastics_dagster.automation import AUTOMATION_SENSORS, with_automation
from plastics_dagster.backend import BackendResource
from plastics_dagster.checks import ALL_CHECKS
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import io_managers
from plastics_dagster.jobs import detect_job, detect_job_celery, detect_job_k8s, registry_job
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    LaunchResource,
    ModelStoreResource,
    StoreResource,
)
from plastics_dagster.review_checks import REVIEW_CHECKS
from plastics_dagster.sensors import imagery_sensor, roi_sensor
from plastics_dagster.sitedb_resource import SiteDatabase


def default_resources(**overrides: Any) -> dict[str, Any]:
    """The resource dict of the graph, with keys replaced by ``overrides``."""
    resources: dict[str, Any] = {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource(),
        "models": ModelStoreResource(),
        "geocoder": GeocoderResource(),
        "store": StoreResource(),
        "backend": BackendResource(),
        "launch": LaunchResource(),
        "database": SiteDatabase(),
        "alert_webhook": AlertWebhookResource(),
        **io_managers(),
    }
    resources.update(overrides)
    return resources


ALL_ASSETS: list[Any] = with_automation([*DETECT_ASSETS, *preview_assets, published_sites])

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=[*ALL_CHECKS, *REVIEW_CHECKS],
    sensors=[roi_sensor, imagery_sensor, *AUTOMATION_SENSORS, new_site_alerts],
    jobs=[detect_job, detect_job_celery, detect_job_k8s, registry_job],
    resources=default_resources(),
)

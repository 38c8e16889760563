"""The code location's Definitions (``workspace.yaml`` loads ``plastics_dagster.definitions``).

:func:`make_definitions` builds them for one deployment: the same assets, checks, sensors, jobs
and resources, with the executor of ``detect_job`` given by the deployment's entry module
(this one: in-process; :mod:`plastics_dagster.definitions_celery`,
:mod:`plastics_dagster.definitions_k8s`). Nothing here reads the environment: resources take their
settings from their field defaults, from run config (``resources.<key>.config``), or from the
``dagster.EnvVar`` a field is bound to, resolved when a run starts (see
:mod:`plastics_dagster.resources`).
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions, ExecutorDefinition, in_process_executor

from plastics_dagster.alerts import AlertWebhookResource, new_site_alerts
from plastics_dagster.assets import DETECT_ASSETS
from plastics_dagster.assets.preview import preview_assets
from plastics_dagster.assets.publish import published_sites
from plastics_dagster.automation import AUTOMATION_SENSORS, with_automation
from plastics_dagster.backend import BackendResource
from plastics_dagster.checks import ALL_CHECKS
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import io_managers
from plastics_dagster.jobs import detect_job, registry_job
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)
from plastics_dagster.review_checks import REVIEW_CHECKS
from plastics_dagster.sensors import imagery_sensor, roi_sensor
from plastics_dagster.sitedb_resource import SiteDatabase
from plastics_dagster.step_io import STEP_IO_MANAGER_KEY, StepIOManager


def default_resources(**overrides: Any) -> dict[str, Any]:
    """The resource dict of the graph, with keys replaced by ``overrides``.

    ``params``, ``imagery`` and ``store`` not given are ``configure_at_launch()`` resources: the
    IO managers hold them as nested resources, and only a resource configured at launch is
    resolved once per run by its key, so the IO managers see the run config a Launchpad user
    gives those keys (``resources.store.config.location``, ...). Given objects are shared as
    they are (do not also configure them in run config)."""
    run: dict[str, Any] = {
        "params": overrides.pop("params", None) or DetectionParams.configure_at_launch(),
        "imagery": overrides.pop("imagery", None) or ImagerySourceResource.configure_at_launch(),
        "store": overrides.pop("store", None) or StoreResource.configure_at_launch(),
    }
    resources: dict[str, Any] = {
        **run,
        "models": ModelStoreResource(),
        "geocoder": GeocoderResource(),
        "backend": BackendResource(),
        "database": SiteDatabase(),
        "alert_webhook": AlertWebhookResource(),
        STEP_IO_MANAGER_KEY: StepIOManager(),
        **io_managers(**run),
    }
    resources.update(overrides)
    return resources


ALL_ASSETS: list[Any] = with_automation([*DETECT_ASSETS, *preview_assets, published_sites])


def make_definitions(
    executor: ExecutorDefinition = in_process_executor, **resource_overrides: Any
) -> Definitions:
    """The code location with ``executor`` as the executor of ``detect_job`` (``registry_job``
    always runs in-process) and :func:`default_resources` with ``resource_overrides``."""
    return Definitions(
        assets=ALL_ASSETS,
        asset_checks=[*ALL_CHECKS, *REVIEW_CHECKS],
        sensors=[roi_sensor, imagery_sensor, *AUTOMATION_SENSORS, new_site_alerts],
        jobs=[detect_job, registry_job],
        resources=default_resources(**resource_overrides),
        executor=executor,
    )


defs = make_definitions()

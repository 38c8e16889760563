"""The graph as the browser test's webserver loads it: tiny synthetic tiles and 2-pair windows in the
test's store.

``dagster dev -f tests/_ui_defs.py`` with ``PLASTICS_STORE`` (the temp store) and
``PLASTICS_MODEL_STORE`` set by the test (read when the definitions load: this module is the test's
code location, not the project's); assets, checks, jobs and sensors are the project's own."""

from __future__ import annotations

import os

from dagster import Definitions

from plastics_dagster import definitions as project
from plastics_dagster.config import DetectionParams
from plastics_dagster.definitions import ALL_ASSETS, default_resources
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from tests._fanout_util import PAD, TILESIZE, UI_PAIRS

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=list(project.defs.asset_checks or []),
    sensors=list(project.defs.sensors or []),
    jobs=list(project.defs.jobs or []),
    executor=project.defs.executor,  # the default code location's (in-process)
    resources=default_resources(
        params=DetectionParams(tilesize=TILESIZE, pad=PAD, pairs=UI_PAIRS),
        imagery=ImagerySourceResource(kind="synthetic"),
        store=StoreResource(location=os.environ["PLASTICS_STORE"]),
    ),
)

"""The code location of the Celery deployment (``deploy/celery``): the same Definitions as
:mod:`plastics_dagster.definitions`, with ``detect_job`` on dagster-celery.

``infer_tile`` goes to queue ``gpu``, every other step to ``dagster`` (see
:mod:`plastics_dagster.celery_job`); broker and backend URLs come from ``$PLASTICS_CELERY_BROKER`` /
``$PLASTICS_CELERY_BACKEND`` when a run starts. Step outputs stay in the instance's storage folder
(webserver, daemon and workers share ``DAGSTER_HOME`` on one host).
"""

from __future__ import annotations

from plastics_dagster.definitions import make_definitions
from plastics_dagster.jobs import celery_executor_def

defs = make_definitions(celery_executor_def())

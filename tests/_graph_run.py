"""What the session's shared graph run (the ``graph_run`` fixture in tests/conftest.py) is made of."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Fake credentials planted in the environment while ``graph_run`` executes; the secrets tests
#: search every output, instance file and event record of that run for these values.
FAKE_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "fakeAwsSecret-7d1e4c-DO-NOT-LEAK",
    "AWS_SESSION_TOKEN": "fakeAwsSessionToken-93b2aa-DO-NOT-LEAK",
    "EARTHONE_CLIENT_SECRET": "fakeEarthOneSecret-5f0c11-DO-NOT-LEAK",
    "EARTHONE_REFRESH_TOKEN": "fakeEarthOneRefresh-e21b07-DO-NOT-LEAK",
    "DESCARTESLABS_CLIENT_SECRET": "fakeDLSecret-a4c9d2-DO-NOT-LEAK",
    "DESCARTESLABS_REFRESH_TOKEN": "fakeDLRefresh-0b7f3e-DO-NOT-LEAK",
    "PLASTICS_S3_SECRET": "fakePlasticsS3-66aa01-DO-NOT-LEAK",
}
FAKE_IDS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEID",
    "EARTHONE_CLIENT_ID": "fake-client-id",
    "DESCARTESLABS_CLIENT_ID": "fake-dl-client-id",
}
#: The shared run's partition and parameters (256 px tiles and one pair keep it to a few seconds).
GRAPH_RUN_WINDOW = "2021-01-01"
GRAPH_RUN_PARAMS: dict[str, Any] = {"tilesize": 256, "pad": 16, "pairs": 1}  # one pair per window: fast


@dataclass(frozen=True)
class GraphRun:
    """One finished ``plastics run`` of ``test_patch`` / ``GRAPH_RUN_WINDOW`` on synthetic imagery.

    ``summary``: the runner's RunSummary; ``store``: its output folder; ``home``: the Dagster
    instance folder; ``runs`` / ``records``: the instance's runs (detect + site registry) and every
    event log entry as ``(run_id, entry)``. Tests only read these; a test that writes copies
    ``store`` first.
    """

    summary: Any
    store: Path
    home: Path
    runs: list[Any]
    records: list[tuple[str, Any]]

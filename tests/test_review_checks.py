"""The evaluation checks of ``published_sites`` run by Dagster on a published SQLite database:
recall of the ROI's reference sites within 500 m, precision from verdicts, unreviewed count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, Definitions, define_asset_job
from upath import UPath

from plastics_core.evaluation import ReferenceSite, store_reference_sites
from plastics_core.sitedb.engine import open_database
from plastics_core.sitedb.verdicts import review_queue, set_verdict
from plastics_dagster.definitions import ALL_ASSETS, default_resources
from plastics_dagster.partitions import ROI_PARTITIONS_NAME, roi_partitions
from plastics_dagster.resources import StoreResource
from plastics_dagster.review_checks import REVIEW_CHECKS
from plastics_dagster.sitedb_resource import SiteDatabase
from tests import _review_data as d


def _run_checks(tmp: Path, floor: float | None = None) -> dict[str, Any]:
    job = define_asset_job(
        "evaluation", selection=AssetSelection.checks(*REVIEW_CHECKS), partitions_def=roi_partitions
    )
    resources = default_resources(
        database=SiteDatabase(url=f"sqlite:///{tmp}/sites.sqlite"),
        store=StoreResource(location=str(tmp / "store")),
    )
    defs = Definitions(assets=ALL_ASSETS, asset_checks=REVIEW_CHECKS, jobs=[job], resources=resources)
    config = (
        {}
        if floor is None
        else {
            "ops": {
                f"{ASSET}_{name}": {"config": {"recall_floor": floor}}
                for name in ("reference_recall", "unreviewed_sites")
            }
        }
    )
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, [d.ROI])
        result = defs.resolve_job_def("evaluation").execute_in_process(
            instance=instance, tags={"dagster/partition": d.ROI}, run_config=config, raise_on_error=True
        )
        evals = result.get_asset_check_evaluations()
    return {e.check_name: e for e in evals}


ASSET = "published_sites"


@pytest.fixture
def published(tmp_path: Path) -> Path:
    engine = open_database(f"sqlite:///{tmp_path}/sites.sqlite")
    d.publish(engine, {"2024-01-01": d.enriched({"temesi": 0.9, "north": 0.7, "west": 0.5})})
    queue = review_queue(engine, d.ROI)
    set_verdict(engine, d.ROI, queue[0].site_id, "confirm", "ana")
    set_verdict(engine, d.ROI, queue[1].site_id, "reject", "ana")
    set_verdict(engine, d.ROI, queue[2].site_id, "unsure", "ana")
    engine.dispose()
    return tmp_path


def test_recall_precision_and_unreviewed_as_numbers(published: Path, gpw_dir: Path) -> None:
    from plastics_core.evaluation import read_reference_sites

    temesi = [r for r in read_reference_sites(gpw_dir / "tpa_points.geojson") if "Temesi" in r.name]
    far = ReferenceSite("no site here", 115.45, -8.45)  # ~10 km from every published site
    store_reference_sites(UPath(str(published / "store")), d.ROI, [*temesi, far])
    checks = _run_checks(published, floor=0.8)
    recall = checks["reference_recall"]
    assert not recall.passed and recall.severity == AssetCheckSeverity.WARN
    meta = {k: getattr(v, "value", v) for k, v in recall.metadata.items()}
    assert (meta["recall"], meta["found"], meta["reference_sites"]) == (0.5, 1, 2)
    assert meta["missed"] == "no site here"
    precision = {k: getattr(v, "value", v) for k, v in checks["verdict_precision"].metadata.items()}
    assert (precision["precision"], precision["reviewed"], precision["unsure"]) == (0.5, 2, 1)
    unreviewed = {k: getattr(v, "value", v) for k, v in checks["unreviewed_sites"].metadata.items()}
    assert unreviewed["unreviewed"] == 0
    assert _run_checks(published, floor=0.5)["reference_recall"].passed


def test_an_roi_without_reference_sites_passes(published: Path) -> None:
    checks = _run_checks(published)
    meta = {k: getattr(v, "value", v) for k, v in checks["reference_recall"].metadata.items()}
    assert checks["reference_recall"].passed and meta["reference_sites"] == 0
    assert json.dumps(meta)  # plain numbers and text only

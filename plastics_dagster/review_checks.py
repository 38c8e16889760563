"""Evaluation checks on ``published_sites`` (per ROI), with numeric metadata the UI plots over time.

- ``reference_recall``: share of the ROI's reference sites (``plastics roi add ... --reference``)
  with a published site within ``radius_m`` (500 m, geodesic); WARN below ``recall_floor``. An
  ROI without reference sites passes with ``reference_sites = 0``.
- ``verdict_precision``: confirmed ÷ reviewed (latest verdicts; ``unsure`` is not counted as
  reviewed); ``precision`` metadata only once a site is reviewed.
- ``unreviewed_sites``: how many sites of the latest publication wait for review (the queue).

The sites are those of the ROI's latest publication in the site database (``database`` resource).
"""

import math
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    Config,
    MetadataValue,
)
from pydantic import Field

from plastics_core.evaluation import RECALL_RADIUS_M, load_reference_sites, reference_recall
from plastics_core.sitedb.verdicts import DEFAULT_MARGIN, precision_counts, review_queue, site_reviews
from plastics_dagster.checks import partitioned_asset_check
from plastics_dagster.partitions import roi_partitions
from plastics_dagster.resources import StoreResource
from plastics_dagster.sitedb_resource import SiteDatabase

ASSET = "published_sites"


class EvaluationConfig(Config):
    """Thresholds of the evaluation checks."""

    recall_floor: float = Field(
        default=0.8, ge=0.0, le=1.0, description="reference recall below this is a WARN"
    )
    radius_m: float = Field(
        default=RECALL_RADIUS_M,
        gt=0.0,
        le=10_000.0,
        description="a reference site is found when a published site lies within this (m)",
    )
    margin: float = Field(
        default=DEFAULT_MARGIN,
        ge=0.0,
        le=1.0,
        description="score rise since a reject that returns a site to the queue",
    )


def _engine(database: SiteDatabase, store: StoreResource) -> Any:
    return database.open(store.resolved())


@partitioned_asset_check(
    asset=ASSET,
    name="reference_recall",
    partitions_def=roi_partitions,
    blocking=False,
    description="share of the ROI's reference sites with a published site within 500 m (WARN below the floor)",
)
def reference_recall_check(
    context: AssetCheckExecutionContext,
    config: EvaluationConfig,
    database: SiteDatabase,
    store: StoreResource,
) -> AssetCheckResult:
    roi = context.partition_key
    refs = load_reference_sites(store.path(), roi)
    if not refs:
        return AssetCheckResult(
            passed=True,
            metadata={
                "reference_sites": 0,
                "note": f"ROI {roi} has no reference sites (plastics roi add ... --reference FILE)",
            },
        )
    engine = _engine(database, store)
    try:
        sites = site_reviews(engine, roi, config.margin)
    finally:
        engine.dispose()
    recall = reference_recall(refs, [(s.lon, s.lat) for s in sites], config.radius_m)
    passed = recall.recall >= config.recall_floor
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "recall": MetadataValue.float(recall.recall),
            "found": recall.found,
            "reference_sites": recall.total,
            "radius_m": MetadataValue.float(config.radius_m),
            "recall_floor": MetadataValue.float(config.recall_floor),
            "published_sites": len(sites),
            "missed": MetadataValue.text(", ".join(recall.missed) or "none"),
        },
    )


@partitioned_asset_check(
    asset=ASSET,
    name="verdict_precision",
    partitions_def=roi_partitions,
    blocking=False,
    description="confirmed ÷ reviewed sites of the ROI's latest publication (latest verdicts)",
)
def verdict_precision_check(
    context: AssetCheckExecutionContext, database: SiteDatabase, store: StoreResource
) -> AssetCheckResult:
    engine = _engine(database, store)
    try:
        counts = precision_counts(engine, context.partition_key)
    finally:
        engine.dispose()
    reviewed = counts["confirm"] + counts["reject"]
    meta: dict[str, Any] = {
        "confirmed": counts["confirm"],
        "rejected": counts["reject"],
        "unsure": counts["unsure"],
        "reviewed": reviewed,
        "sites": counts["sites"],
    }
    if reviewed:
        meta["precision"] = MetadataValue.float(counts["confirm"] / reviewed)
    return AssetCheckResult(passed=True, metadata=meta)


@partitioned_asset_check(
    asset=ASSET,
    name="unreviewed_sites",
    partitions_def=roi_partitions,
    blocking=False,
    description="sites of the ROI's latest publication waiting for review (the /review queue)",
)
def unreviewed_sites_check(
    context: AssetCheckExecutionContext,
    config: EvaluationConfig,
    database: SiteDatabase,
    store: StoreResource,
) -> AssetCheckResult:
    engine = _engine(database, store)
    try:
        queue = review_queue(engine, context.partition_key, config.margin)
    finally:
        engine.dispose()
    requeued = sum(1 for i in queue if i.reason != "unreviewed")
    top = queue[0].score if queue else math.nan
    meta: dict[str, Any] = {"unreviewed": len(queue), "requeued_rejected": requeued}
    if math.isfinite(top):
        meta["top_score"] = MetadataValue.float(top)
    return AssetCheckResult(passed=True, metadata=meta)


REVIEW_CHECKS: list[AssetChecksDefinition] = [
    reference_recall_check,
    verdict_precision_check,
    unreviewed_sites_check,
]

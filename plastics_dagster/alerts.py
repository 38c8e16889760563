"""``new_site_alerts``: one webhook message per ROI and publication of ``published_sites`` that
brought new sites to review.

The sensor reads the materializations of ``published_sites`` recorded since its cursor (the event
log's storage id, JSON ``{"after": id}``), oldest first. For each one (an ROI partition and its run
hash) that added or changed sites, it asks the site database for the sites that publication brought
to the review queue (:func:`plastics_core.sitedb.verdicts.alert_sites`: new unreviewed sites, and
rejected sites whose score rose by the margin; a rejected site detected again without that rise is
not among them) and, when there are any, posts one message (:func:`plastics_core.alerts.send_alert`).
The cursor then moves past that publication, so no publication is announced twice. When the webhook
does not accept the message within its retry budget the cursor stays before that publication and
the next tick tries again. Without a webhook (``PLASTICS_ALERT_WEBHOOK`` unset) the sensor skips and
moves its cursor: publications made while alerts are off are not announced later.
"""

from __future__ import annotations

import json
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    ConfigurableResource,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from pydantic import Field

from plastics_core.alerts import AlertError, AlertSite, build_message, send_alert
from plastics_core.errors import PlasticsError
from plastics_core.sitedb.verdicts import DEFAULT_MARGIN, alert_sites
from plastics_dagster.resources import StoreResource, env_setting
from plastics_dagster.sitedb_resource import SiteDatabase

PUBLISHED_ASSET = AssetKey("published_sites")
#: materializations read per tick (older ones wait for the next tick)
BATCH = 50
DEFAULT_REVIEW_URL = "http://127.0.0.1:8000"


class AlertWebhookResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where new-site alerts go. ``webhook_url`` '' = ``$PLASTICS_ALERT_WEBHOOK`` read at tick time
    (a credential: never logged, shown redacted); ``review_url`` '' = ``$PLASTICS_REVIEW_URL`` or
    ``http://127.0.0.1:8000`` (the ``plastics serve`` address the message links to)."""

    webhook_url: str = Field(
        default="", description="'' = $PLASTICS_ALERT_WEBHOOK (Slack-compatible incoming webhook)"
    )
    review_url: str = Field(
        default="",
        description=f"base URL of `plastics serve`; '' = $PLASTICS_REVIEW_URL or {DEFAULT_REVIEW_URL}",
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="seconds to wait for the webhook, per attempt"
    )
    max_total_s: float = Field(
        default=30.0, gt=0, le=300, description="seconds of retries per message at most"
    )
    top_n: int = Field(default=5, ge=1, le=50, description="sites listed in a message")
    margin: float = Field(
        default=DEFAULT_MARGIN,
        ge=0,
        le=1,
        description="score rise that returns a rejected site to the queue (and to alerts)",
    )

    def resolved_webhook(self) -> str | None:
        return self.webhook_url or env_setting("PLASTICS_ALERT_WEBHOOK") or None

    def review_page(self, roi: str) -> str:
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.review_url or env_setting("PLASTICS_REVIEW_URL", DEFAULT_REVIEW_URL))
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        base = urlunsplit(
            (parts.scheme, netloc, parts.path.rstrip("/"), "", "")
        )  # no user:password@, no query
        return f"{base}/review?roi={quote(roi, safe='')}"


def _meta_value(meta: Any, key: str) -> Any:
    entry = meta.get(key)
    return getattr(entry, "value", entry)


def _changed(meta: Any) -> bool:
    """False only when the publication's metadata says no site was added or updated."""
    counts = [_meta_value(meta, k) for k in ("sites_added", "sites_updated")]
    known = [int(c) for c in counts if isinstance(c, int | float)]
    return not known or sum(known) > 0


def check_publications(
    context: SensorEvaluationContext,
    webhook: AlertWebhookResource,
    database: SiteDatabase,
    store: StoreResource,
) -> SkipReason | None:
    """One tick of :data:`new_site_alerts` (see the module docstring); updates the cursor."""
    after = int(json.loads(context.cursor or "{}").get("after", 0))
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=PUBLISHED_ASSET, after_storage_id=after or None),
        limit=BATCH,
        ascending=True,
    )
    if not result.records:
        return SkipReason("no new publication of published_sites")
    url = webhook.resolved_webhook()
    if not url:
        context.update_cursor(json.dumps({"after": result.records[-1].storage_id}))
        return SkipReason("PLASTICS_ALERT_WEBHOOK is not set: no alert sent")
    engine = None
    sent = 0
    try:
        for record in result.records:
            mat = record.asset_materialization
            roi = record.partition_key
            if mat is None or roi is None or not _changed(mat.metadata):
                after = record.storage_id
                continue
            run_hash = _meta_value(mat.metadata, "run_hash")
            engine = engine or database.open(store.resolved())
            items = alert_sites(engine, roi, str(run_hash) if run_hash else None, webhook.margin)
            if items:
                sites = [AlertSite(i.site_id, i.score, i.lon, i.lat, i.address, i.reason) for i in items]
                message = build_message(
                    roi, sites, webhook.review_page(roi), top_n=webhook.top_n, publication=str(run_hash or "")
                )
                try:
                    send_alert(url, message, timeout_s=webhook.timeout_s, max_total_s=webhook.max_total_s)
                except AlertError as err:
                    context.log.warning(f"alert for ROI {roi} not sent: {err}")
                    return SkipReason(str(err))
                context.log.info(f"alert sent for ROI {roi}: {len(items)} site(s) to review")
                sent += 1
            after = record.storage_id
    except PlasticsError as err:  # the site database is unavailable: try again next tick
        context.log.warning(f"alerts paused: {err}")
        return SkipReason(str(err))
    finally:
        context.update_cursor(json.dumps({"after": after}))
        if engine is not None:
            engine.dispose()
    return None if sent else SkipReason("the new publications brought no site to review")


@sensor(
    name="new_site_alerts",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts one webhook message per ROI publication of published_sites that brought new "
    "sites to review ($PLASTICS_ALERT_WEBHOOK)",
)
def new_site_alerts(
    context: SensorEvaluationContext,
    alert_webhook: AlertWebhookResource,
    database: SiteDatabase,
    store: StoreResource,
) -> SkipReason | None:
    return check_publications(context, alert_webhook, database, store)

"""runs, sites, detections, contours

Revision ID: sitedb_0001
Revises:
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from plastics_core.sitedb.schema import geometry


def _geometry(kind: str, postgres: bool) -> sa.types.TypeEngine[Any]:
    """PostGIS geometry(kind, 4326) on PostgreSQL; WKB BLOB elsewhere (GeoAlchemy2's SQLite DDL
    hooks expect SpatiaLite, so SQLite never sees a Geometry column type)."""
    return geometry(kind) if postgres else sa.LargeBinary()


revision: str = "sitedb_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _common() -> list[sa.Column[object]]:
    """Columns every per-site table starts with."""
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_hash", sa.String(64), sa.ForeignKey("runs.run_hash", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("roi", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "runs",
        sa.Column("run_hash", sa.String(64), primary_key=True),
        sa.Column("roi", sa.String(200), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("model_checksums", sa.Text(), nullable=False),
        sa.Column("imagery_source", sa.String(500), nullable=False),
        sa.Column("code_version", sa.String(100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_runs_roi", "runs", ["roi"])
    op.create_table(
        "sites",
        *_common(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("first_window", sa.Date(), nullable=True),
        sa.Column("last_window", sa.Date(), nullable=True),
        sa.Column("n_windows", sa.Integer(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("score_latest", sa.Float(), nullable=True),
        sa.Column("patch_latest", sa.Float(), nullable=True),
        sa.Column("score_max", sa.Float(), nullable=True),
        sa.Column("area_km2_latest", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("pixel_scores", sa.Text(), nullable=False),
        sa.Column("patch_scores", sa.Text(), nullable=False),
        sa.Column("areas_km2", sa.Text(), nullable=False),
        sa.Column("site_ids", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("geom", _geometry("POINT", postgres), nullable=False),
        sa.UniqueConstraint("run_hash", "site_id", name="uq_sites_run_site"),
    )
    op.create_table(
        "detections",
        *_common(),
        sa.Column("window", sa.Date(), nullable=False),
        sa.Column("detection_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("pixel_score", sa.Float(), nullable=True),
        sa.Column("patch_mean", sa.Float(), nullable=True),
        sa.Column("area_km2_mean", sa.Float(), nullable=True),
        sa.Column("area_km2_min", sa.Float(), nullable=True),
        sa.Column("area_km2_max", sa.Float(), nullable=True),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.UniqueConstraint("run_hash", "site_id", "window", name="uq_detections_run_site_window"),
    )
    op.create_table(
        "contours",
        *_common(),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("window", sa.Date(), nullable=False),
        sa.Column("area_km2", sa.Float(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("geom", _geometry("MULTIPOLYGON", postgres), nullable=False),
        sa.UniqueConstraint("run_hash", "site_id", "date", name="uq_contours_run_site_date"),
    )
    for table in ("sites", "detections", "contours"):
        for column in ("run_hash", "roi", "site_id"):
            op.create_index(f"ix_{table}_{column}", table, [column])
    op.create_index("ix_sites_lon_lat", "sites", ["lon", "lat"])
    if postgres:
        op.create_index("ix_sites_geom", "sites", ["geom"], postgresql_using="gist")
        op.create_index("ix_contours_geom", "contours", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    for table in ("contours", "detections", "sites", "runs"):
        op.drop_table(table)

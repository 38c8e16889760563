"""sites.page_feature: each site's /sites Feature rendered once (rows already stored rendered now)

Revision ID: sitedb_0003
Revises: sitedb_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from plastics_core.sitedb.page_feature import render_missing

revision: str = "sitedb_0003"
down_revision: str | None = "sitedb_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sites", sa.Column("page_feature", sa.Text(), nullable=True))
    render_missing(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("page_feature")

"""verdicts (append-only review history)

Revision ID: sitedb_0002
Revises: sitedb_0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sitedb_0002"
down_revision: str | None = "sitedb_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "verdicts are append-only: record a new verdict instead"


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("roi", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("window", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("verdict IN ('confirm', 'reject', 'unsure')", name="ck_verdicts_verdict"),
    )
    op.create_index("ix_verdicts_roi_site", "verdicts", ["roi", "site_id", "id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION verdicts_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_REFUSE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER verdicts_append_only BEFORE UPDATE OR DELETE ON verdicts "
            "FOR EACH ROW EXECUTE FUNCTION verdicts_append_only()"
        )
    elif bind.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER verdicts_no_{action.lower()} BEFORE {action} ON verdicts "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS verdicts_append_only ON verdicts")
        op.execute("DROP FUNCTION IF EXISTS verdicts_append_only()")
    op.drop_table("verdicts")

"""Codat's daily quota across replicas; closed accounts; when a webhook last touched a feed;
the Idempotency-Key of a company or connection create still in flight.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "codat_quota_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("background_used", sa.Integer(), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("remaining_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_codat_quota_days")),
    )
    with op.batch_alter_table("source_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("closed_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("bank_feeds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_webhook_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("company_request_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("connection_request_key", sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("bank_feeds", schema=None) as batch_op:
        batch_op.drop_column("connection_request_key")
        batch_op.drop_column("company_request_key")
        batch_op.drop_column("last_webhook_at")
    with op.batch_alter_table("source_accounts", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
    op.drop_table("codat_quota_days")

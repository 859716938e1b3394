"""Outgoing events: host app endpoints, the outbox, deliveries, what each customer was told.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:14:51.115321+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_endpoints",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", app.db.JSONType, nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_endpoints")),
    )
    op.create_table(
        "outbound_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbound_events_event_id")),
    )
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_events_customer_id"), ["customer_id"], unique=False
        )
    states = op.create_table(
        "customer_event_states",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=True),
        sa.Column("connection_status", sa.String(length=16), nullable=True),
        sa.Column("accounts", app.db.JSONType, nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_event_states_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_event_states")),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_name", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deliver_until", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status in ('pending', 'delivered', 'failed')",
            name=op.f("ck_event_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_name"],
            ["event_endpoints.name"],
            name=op.f("fk_event_deliveries_endpoint_name_event_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbound_events.id"],
            name=op.f("fk_event_deliveries_event_id_outbound_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_name", name=op.f("uq_event_deliveries_event_id")),
    )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_deliveries_queue", ["endpoint_name", "customer_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_event_deliveries_status_next_attempt_at",
            ["status", "next_attempt_at"],
            unique=False,
        )
    _record_current_states(states)


def _record_current_states(states: sa.Table) -> None:
    """Customers already connected were never told: record what they are, so no event
    repeats history at their next change."""
    bind = op.get_bind()
    feeds = sa.table(
        "bank_feeds",
        sa.column("customer_id", sa.String),
        sa.column("connection_id", sa.String),
        sa.column("connection_status", sa.String),
    )
    accounts = sa.table(
        "source_accounts",
        sa.column("customer_id", sa.String),
        sa.column("id", sa.String),
        sa.column("pushed_at", sa.String),
        sa.column("codat_status", sa.String),
    )
    rows: dict[str, dict[str, object]] = {}
    for customer_id, connection_id, status in bind.execute(
        sa.select(feeds.c.customer_id, feeds.c.connection_id, feeds.c.connection_status).where(
            feeds.c.connection_id.is_not(None)
        )
    ):
        rows[customer_id] = {
            "customer_id": customer_id,
            "connection_id": connection_id,
            "connection_status": status,
            "accounts": {},
            "updated_at": datetime.now(UTC),
        }
    for customer_id, account_id, pushed_at, codat_status in bind.execute(
        sa.select(
            accounts.c.customer_id, accounts.c.id, accounts.c.pushed_at, accounts.c.codat_status
        )
    ):
        if customer_id in rows:
            status = "not_pushed" if pushed_at is None else codat_status or "unknown"
            rows[customer_id]["accounts"][account_id] = status  # type: ignore[index]
    if rows:
        op.bulk_insert(states, list(rows.values()))


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_status_next_attempt_at")
        batch_op.drop_index("ix_event_deliveries_queue")
    op.drop_table("event_deliveries")
    op.drop_table("customer_event_states")
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_events_customer_id"))
    op.drop_table("outbound_events")
    op.drop_table("event_endpoints")

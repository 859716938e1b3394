"""Initial schema: customers, source accounts, bank feeds, event inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 00:07:41.152498+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "codat_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("generated_date", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payload", app.db.JSONType, nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending', 'handled', 'ignored', 'unmatched', 'failed')",
            name=op.f("ck_codat_events_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_codat_events")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_codat_events_webhook_id")),
    )
    with op.batch_alter_table("codat_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codat_events_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_codat_events_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_codat_events_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("locale", sa.String(length=2), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("locale in ('en', 'fr')", name=op.f("ck_customers_locale")),
        sa.CheckConstraint("length(country) = 2", name=op.f("ck_customers_country")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "service_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", app.db.JSONType, nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_service_state")),
    )
    op.create_table(
        "used_connect_tokens",
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_used_connect_tokens")),
    )
    with op.batch_alter_table("used_connect_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_connect_tokens_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "bank_feeds",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("connection_id", sa.String(length=64), nullable=True),
        sa.Column("connection_status", sa.String(length=16), nullable=True),
        sa.Column("connection_status_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("company_requested_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connection_requested_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("linked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_click_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_refreshed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_reconcile_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lock_owner", sa.String(length=64), nullable=True),
        sa.Column("locked_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_bank_feeds_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_bank_feeds")),
        sa.UniqueConstraint("company_id", name=op.f("uq_bank_feeds_company_id")),
        sa.UniqueConstraint("connection_id", name=op.f("uq_bank_feeds_connection_id")),
    )
    with op.batch_alter_table("bank_feeds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bank_feeds_next_reconcile_at", ["next_reconcile_at"], unique=False
        )
        batch_op.create_index("ix_bank_feeds_updated_at", ["updated_at"], unique=False)

    op.create_table(
        "source_accounts",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("account_type", sa.String(length=16), nullable=False),
        sa.Column("account_number", sa.String(length=64), nullable=False),
        sa.Column("sort_code", sa.String(length=32), nullable=True),
        sa.Column("routing_info", app.db.JSONType, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", app.db.Money(precision=19, scale=4), nullable=False),
        sa.Column("account_info", app.db.JSONType, nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pushed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pushed_account_name", sa.String(length=200), nullable=True),
        sa.Column("pushed_balance", app.db.Money(precision=19, scale=4), nullable=True),
        sa.Column("codat_status", sa.String(length=16), nullable=True),
        sa.Column("feed_start_date", sa.Date(), nullable=True),
        sa.Column("status_changed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_heard_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sync_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "account_type in ('checking', 'savings', 'loan', 'creditCard', 'prepaidCard')",
            name=op.f("ck_source_accounts_account_type"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_source_accounts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "id", name=op.f("pk_source_accounts")),
    )
    op.create_table(
        "bank_feed_connections",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["bank_feeds.customer_id"],
            name=op.f("fk_bank_feed_connections_customer_id_bank_feeds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_bank_feed_connections")),
    )
    with op.batch_alter_table("bank_feed_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bank_feed_connections_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("bank_feed_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_feed_connections_customer_id"))

    op.drop_table("bank_feed_connections")
    op.drop_table("source_accounts")
    with op.batch_alter_table("bank_feeds", schema=None) as batch_op:
        batch_op.drop_index("ix_bank_feeds_updated_at")
        batch_op.drop_index("ix_bank_feeds_next_reconcile_at")

    op.drop_table("bank_feeds")
    with op.batch_alter_table("used_connect_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_connect_tokens_expires_at"))

    op.drop_table("used_connect_tokens")
    op.drop_table("service_state")
    op.drop_table("customers")
    with op.batch_alter_table("codat_events", schema=None) as batch_op:
        batch_op.drop_index("ix_codat_events_status_next_attempt_at")
        batch_op.drop_index(batch_op.f("ix_codat_events_customer_id"))
        batch_op.drop_index(batch_op.f("ix_codat_events_company_id"))

    op.drop_table("codat_events")

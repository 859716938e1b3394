"""Bank transactions from the bank's ledger, their pushes to Codat, each account's feed state.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNT = (["customer_id", "account_id"], ["source_accounts.customer_id", "source_accounts.id"])


def upgrade() -> None:
    op.create_table(
        "transaction_feeds",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("last_pushed_date", sa.Date(), nullable=True),
        sa.Column("last_pushed_balance", app.db.Money(), nullable=True),
        sa.Column("last_pushed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_push_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("write_blocked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("write_blocked_reason", sa.Text(), nullable=True),
        sa.Column("lock_owner", sa.String(length=64), nullable=True),
        sa.Column("locked_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            *ACCOUNT,
            name=op.f("fk_transaction_feeds_customer_id_source_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "account_id", name=op.f("pk_transaction_feeds")),
    )
    op.create_index(
        op.f("ix_transaction_feeds_next_push_at"), "transaction_feeds", ["next_push_at"]
    )
    op.create_table(
        "transaction_pushes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("push_operation_key", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=False),
        sa.Column("last_balance", app.db.Money(), nullable=False),
        sa.Column("requested_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("validation", app.db.JSONType, nullable=True),
        sa.Column("retried_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('sending', 'unconfirmed', 'pending', 'success', 'failed', 'timed_out')",
            name=op.f("ck_transaction_pushes_status"),
        ),
        sa.ForeignKeyConstraint(
            *ACCOUNT,
            name=op.f("fk_transaction_pushes_customer_id_source_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_pushes")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_transaction_pushes_idempotency_key")),
        sa.UniqueConstraint(
            "push_operation_key", name=op.f("uq_transaction_pushes_push_operation_key")
        ),
    )
    op.create_index(
        op.f("ix_transaction_pushes_customer_id"), "transaction_pushes", ["customer_id"]
    )
    op.create_index(op.f("ix_transaction_pushes_company_id"), "transaction_pushes", ["company_id"])
    op.create_index(
        "ix_transaction_pushes_status_next_attempt_at",
        "transaction_pushes",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "bank_transactions",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("amount", app.db.Money(), nullable=False),
        sa.Column("balance", app.db.Money(), nullable=False),
        sa.Column("transaction_type", sa.String(length=16), nullable=False),
        sa.Column("counterparty", sa.String(length=1000), nullable=True),
        sa.Column("reference", sa.String(length=1000), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("push_id", sa.Integer(), nullable=True),
        sa.Column("sent_date", sa.Date(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.Column("received_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pushed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending', 'pushing', 'pushed', 'held', 'rejected')",
            name=op.f("ck_bank_transactions_status"),
        ),
        sa.ForeignKeyConstraint(
            *ACCOUNT,
            name=op.f("fk_bank_transactions_customer_id_source_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["transaction_pushes.id"],
            name=op.f("fk_bank_transactions_push_id_transaction_pushes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bank_transactions")),
        sa.UniqueConstraint("customer_id", "id", name=op.f("uq_bank_transactions_customer_id")),
    )
    op.create_index(op.f("ix_bank_transactions_push_id"), "bank_transactions", ["push_id"])
    op.create_index(
        "ix_bank_transactions_account_status",
        "bank_transactions",
        ["customer_id", "account_id", "status"],
    )


def downgrade() -> None:
    op.drop_table("bank_transactions")
    op.drop_table("transaction_pushes")
    op.drop_table("transaction_feeds")

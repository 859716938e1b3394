"""Indexes for what the console counts, so its pages read indexes instead of every row: accounts
by status, the accounts still waiting on their customer, the transactions held, the
transactions pushed per day (read from the successful pushes) and the last webhook received.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING_ACCOUNTS = "closed_at IS NULL AND (pushed_at IS NULL OR codat_status = 'pending')"


def _partial(name: str, table: str, columns: list[str], where: str, **kw: object) -> None:
    op.create_index(
        name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where), **kw
    )


def upgrade() -> None:
    op.create_index("ix_codat_events_received_at", "codat_events", ["received_at"])
    op.create_index(
        "ix_source_accounts_status", "source_accounts", ["codat_status", "closed_at", "pushed_at"]
    )
    _partial("ix_source_accounts_waiting", "source_accounts", ["customer_id"], WAITING_ACCOUNTS)
    _partial("ix_bank_transactions_held", "bank_transactions", ["customer_id"], "status = 'held'")
    _partial(
        "ix_transaction_pushes_succeeded",
        "transaction_pushes",
        ["completed_at"],
        "status = 'success'",
        postgresql_include=["transaction_count"],
    )


def downgrade() -> None:
    op.drop_index("ix_transaction_pushes_succeeded", table_name="transaction_pushes")
    op.drop_index("ix_bank_transactions_held", table_name="bank_transactions")
    op.drop_index("ix_source_accounts_waiting", table_name="source_accounts")
    op.drop_index("ix_source_accounts_status", table_name="source_accounts")
    op.drop_index("ix_codat_events_received_at", table_name="codat_events")

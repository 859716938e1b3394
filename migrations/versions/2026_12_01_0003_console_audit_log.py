"""The operations console's audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("remote", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "outcome in ('ok', 'failed', 'refused')", name=op.f("ck_console_audit_log_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_audit_log")),
    )
    with op.batch_alter_table("console_audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_console_audit_log_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            "ix_console_audit_log_action_remote_at", ["action", "remote", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_console_audit_log_action_remote_at")
        batch_op.drop_index(batch_op.f("ix_console_audit_log_session_id"))
        batch_op.drop_index(batch_op.f("ix_console_audit_log_at"))
    op.drop_table("console_audit_log")

"""Connect links are spent only when the redirect is issued: a click holds a token's `jti`
(`spent_at` empty) while it works, and marks it spent with its redirect.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("used_connect_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spent_at", app.db.UTCDateTime(timezone=True), nullable=True))
    # Every token recorded so far was spent by its click.
    op.execute("UPDATE used_connect_tokens SET spent_at = used_at")


def downgrade() -> None:
    # A token a click still holds counts as spent under the old rule.
    with op.batch_alter_table("used_connect_tokens", schema=None) as batch_op:
        batch_op.drop_column("spent_at")

"""A customer's connection status as the host app sees it: connected, accounts, action needed."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.statuses import (
    CONNECTED,
    LINKED,
    account_status_sql,
    count_statuses,
    customer_action_reasons,
)
from app.models import BankFeed, Customer, SourceAccount


class ConnectionStatus(BaseModel):
    """What the host app needs to render its Connect to QuickBooks button."""

    customer_id: str
    connected: bool = Field(description="The QuickBooks connection is Linked.")
    connection_status: str | None = Field(
        description="PendingAuth, Linked, Unlinked or Deauthorized; null before the first click."
    )
    accounts_connected: int
    accounts_total: int
    needs_action: bool = Field(description="The customer must click Connect (again).")
    reasons: list[str] = Field(
        description="Why: no_connection, connection_pending_auth, connection_unlinked, "
        "connection_deauthorized, accounts_not_pushed, accounts_pending."
    )


@dataclass(frozen=True)
class Facts:
    """The statuses events are about: the current connection's and each account's."""

    connection_id: str | None = None
    connection_status: str | None = None
    accounts: dict[str, str] = field(default_factory=dict)

    @property
    def linked(self) -> bool:
        return self.connection_status == LINKED

    def reasons(self) -> list[str]:
        counts = count_statuses(self.accounts.values())
        found = customer_action_reasons(self.connection_id, self.connection_status, counts)
        return [code for code, _ in found]

    def status(self, customer_id: str) -> ConnectionStatus:
        reasons = self.reasons()
        return ConnectionStatus(
            customer_id=customer_id,
            connected=self.linked,
            connection_status=self.connection_status,
            accounts_connected=sum(s == CONNECTED for s in self.accounts.values()),
            accounts_total=len(self.accounts),
            needs_action=bool(reasons),
            reasons=reasons,
        )


async def current_facts(session: AsyncSession, customer_id: str) -> Facts:
    """The statuses in the database now, this transaction's changes included: one query."""
    rows = (
        await session.execute(
            select(
                BankFeed.connection_id,
                BankFeed.connection_status,
                SourceAccount.id,
                account_status_sql(),
            )
            .select_from(Customer)
            .outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
            .outerjoin(SourceAccount, SourceAccount.customer_id == Customer.id)
            .where(Customer.id == customer_id)
        )
    ).all()
    if not rows:
        return Facts()
    accounts = {row[2]: row[3] for row in rows if row[2] is not None}
    return Facts(rows[0][0], rows[0][1], accounts)


async def customer_status(session: AsyncSession, customer_id: str) -> ConnectionStatus | None:
    """The customer's status; None when there is no such customer."""
    if await session.get(Customer, customer_id) is None:
        return None
    return (await current_facts(session, customer_id)).status(customer_id)

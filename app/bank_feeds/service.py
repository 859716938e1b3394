"""Bank feeds for the ops API: one customer's in detail (read from Codat on demand), every
customer's by page, and a push of pending changes. Each method is one unit of work: what it
writes is committed before it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds import listing
from app.bank_feeds import repository as feeds
from app.bank_feeds.refresh import refresh_bank_feed
from app.bank_feeds.schemas import (
    AccountOut,
    BankFeedPage,
    BankFeedStatus,
    ConnectionHistoryItem,
    Reason,
    SyncOut,
    TransactionFeeds,
    no_transaction_feeds,
)
from app.bank_feeds.statuses import (
    CONNECTED,
    Announce,
    account_status,
    count_statuses,
    customer_action_reasons,
    live_connection,
)
from app.bank_feeds.sync import create_missing, update_changed
from app.codat.client import CodatClient
from app.errors import Conflict, CustomerNotFound, talking_to_codat
from app.models import Customer


@dataclass
class BankFeedService:
    sessions: async_sessionmaker[AsyncSession]
    codat: CodatClient
    budget: float  # seconds for one request's Codat calls, retries included
    announce: Announce  # stores the host app's events for what a refresh or a push changed
    transaction_feeds: TransactionFeeds = field(default=no_transaction_feeds)

    async def status(self, customer_id: str, *, refresh: bool = False) -> BankFeedStatus:
        """What our database knows of the customer's bank feed; with `refresh`, read from
        Codat and stored first."""
        async with self.sessions() as session:
            await _require_customer(session, customer_id)
            refreshed = False
            if refresh:
                with talking_to_codat(self.budget, "reading the bank feed"):
                    result = await refresh_bank_feed(
                        session, self.codat, customer_id, announce=self.announce
                    )
                await session.commit()
                refreshed = result.refreshed
            status = await _status(session, customer_id, refreshed)
            status.transaction_feeds = await self.transaction_feeds(session, customer_id)
            return status

    async def sync(self, customer_id: str) -> SyncOut:
        """Push pending local changes; the rows keep what Codat confirmed even if a call fails."""
        async with self.sessions() as session:
            await _require_customer(session, customer_id)
            feed = await feeds.get_bank_feed(session, customer_id)
            if feed is None or feed.company_id is None or feed.connection_id is None:
                raise Conflict(
                    f"Customer {customer_id!r} has no bank feed yet: they must click Connect first."
                )
            target = live_connection(feed)
            if target is None:
                raise Conflict(
                    f"The connection of customer {customer_id!r} is {feed.connection_status}: "
                    "they must click Connect to link again, which pushes the accounts."
                )
            accounts = await feeds.list_source_accounts(session, customer_id)
            kept = "what Codat confirmed before that is kept"
            try:
                with talking_to_codat(self.budget, "pushing the customer's accounts", kept):
                    report = await create_missing(self.codat, target, accounts)
                    await update_changed(self.codat, target, accounts, report)
            finally:
                # What Codat confirmed, with its events, even when a later call failed.
                await self.announce(session, customer_id)
                await session.commit()
            return SyncOut(customer_id=customer_id, **vars(report))

    async def page(
        self, filters: listing.BankFeedFilters, *, limit: int, after: str | None
    ) -> BankFeedPage:
        async with self.sessions() as session:
            return await listing.list_bank_feeds(session, filters, limit=limit, after=after)


async def _require_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


async def _status(session: AsyncSession, customer_id: str, refreshed: bool) -> BankFeedStatus:
    feed = await feeds.get_bank_feed(session, customer_id)
    accounts = await feeds.list_source_accounts(session, customer_id)
    counts = count_statuses(account_status(a) for a in accounts)
    connection_id = feed.connection_id if feed else None
    connection_status = feed.connection_status if feed else None
    reasons = customer_action_reasons(connection_id, connection_status, counts)
    history = [
        ConnectionHistoryItem(
            connection_id=c.connection_id,
            company_id=c.company_id,
            status=c.status,
            created_at=c.created_at,
            replaced_at=c.replaced_at,
        )
        for c in (feed.connections if feed else [])
        if c.connection_id != connection_id
    ]
    return BankFeedStatus(
        customer_id=customer_id,
        company_id=feed.company_id if feed else None,
        connection_id=connection_id,
        connection_status=connection_status,
        connection_status_at=feed.connection_status_at if feed else None,
        linked_at=feed.linked_at if feed else None,
        last_refreshed_at=feed.last_refreshed_at if feed else None,
        refreshed=refreshed,
        history=history,
        accounts=[AccountOut.of(a) for a in accounts],
        counts=counts,
        connected_count=counts[CONNECTED],
        needs_customer_action=bool(reasons),
        reasons=[Reason(code=code, message=message) for code, message in reasons],
    )

"""Queries on bank feeds: the row per customer, its lease, its connection history, and the
source accounts it carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.bank_feeds.statuses import LINKED
from app.db import dialect_insert, utcnow
from app.models import BankFeed, BankFeedConnection, Customer, SourceAccount


async def get_bank_feed(session: AsyncSession, customer_id: str) -> BankFeed | None:
    result = await session.execute(
        select(BankFeed)
        .where(BankFeed.customer_id == customer_id)
        .options(selectinload(BankFeed.connections))
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def find_bank_feed(
    session: AsyncSession, company_id: str | None, connection_id: str | None
) -> BankFeed | None:
    """The feed by Codat company, else by any connection it ever had; row-locked on Postgres."""
    customer_id: str | None = None
    if company_id:
        customer_id = (
            await session.execute(
                select(BankFeed.customer_id).where(BankFeed.company_id == company_id)
            )
        ).scalar_one_or_none()
    if customer_id is None and connection_id:
        customer_id = (
            await session.execute(
                select(BankFeedConnection.customer_id).where(
                    BankFeedConnection.connection_id == connection_id
                )
            )
        ).scalar_one_or_none()
    if customer_id is None:
        return None
    result = await session.execute(
        select(BankFeed)
        .where(BankFeed.customer_id == customer_id)
        .options(selectinload(BankFeed.connections))
        .with_for_update(of=BankFeed)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_source_accounts(session: AsyncSession, customer_id: str) -> list[SourceAccount]:
    result = await session.execute(
        select(SourceAccount)
        .where(SourceAccount.customer_id == customer_id)
        .order_by(SourceAccount.id)
    )
    return list(result.scalars())


async def get_customer_with_accounts(session: AsyncSession, customer_id: str) -> Customer | None:
    """The customer, their accounts and their bank feed with its history: what a click writes."""
    result = await session.execute(
        select(Customer)
        .where(Customer.id == customer_id)
        .options(
            # One query: a row per account and connection (a customer's few of each).
            joinedload(Customer.source_accounts),
            joinedload(Customer.bank_feed).joinedload(BankFeed.connections),
        )
        .execution_options(populate_existing=True)
    )
    return result.unique().scalar_one_or_none()


@dataclass
class ClickState:
    """What a click needs to know, in two light queries: no history, no relationships."""

    country: str
    feed: BankFeed | None
    accounts: list[SourceAccount]


async def get_click_state(session: AsyncSession, customer_id: str) -> ClickState | None:
    """One round trip: the customer's country, its feed and its accounts, joined."""
    rows = (
        await session.execute(
            select(Customer.country, BankFeed, SourceAccount)
            .outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
            .outerjoin(SourceAccount, SourceAccount.customer_id == Customer.id)
            .where(Customer.id == customer_id)
        )
    ).all()
    if not rows:
        return None
    accounts = [row[2] for row in rows if row[2] is not None]
    return ClickState(rows[0][0], rows[0][1], accounts)


async def try_lease(
    session: AsyncSession, customer_id: str, owner: str, ttl: timedelta, *, click: bool = False
) -> bool:
    """Take the customer's bank-feed lease if free or expired. Commit right after.

    With `click`, it also records the click: the reconciler watches a fresh one closely.
    """
    now = utcnow()
    taken = {
        "lock_owner": owner,
        "locked_until": now + ttl,
        **({"last_click_at": now, "next_reconcile_at": None} if click else {}),
    }
    # One statement: the feed row made with the lease, or the lease taken if free or expired.
    statement = (
        dialect_insert(session.get_bind().dialect.name, BankFeed)
        .values(customer_id=customer_id, created_at=now, updated_at=now, **taken)
        .on_conflict_do_update(
            index_elements=[BankFeed.customer_id],
            set_={**taken, "updated_at": now},
            where=or_(
                BankFeed.locked_until.is_(None),
                BankFeed.locked_until < now,
                BankFeed.lock_owner == owner,
            ),
        )
    )
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    return result.rowcount == 1  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, customer_id: str, owner: str) -> None:
    await session.execute(
        update(BankFeed)
        .where(BankFeed.customer_id == customer_id, BankFeed.lock_owner == owner)
        .values(lock_owner=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )


def record_connection(
    feed: BankFeed, session: AsyncSession, connection_id: str, status: str, at: datetime
) -> None:
    """Make `connection_id` the current connection; earlier ones stay in the history."""
    for old in feed.connections:
        if old.connection_id != connection_id and old.replaced_at is None:
            old.replaced_at = at
    if all(c.connection_id != connection_id for c in feed.connections):
        assert feed.company_id is not None
        entry = BankFeedConnection(
            connection_id=connection_id,
            customer_id=feed.customer_id,
            company_id=feed.company_id,
            status=status,
            created_at=at,
        )
        session.add(entry)
        feed.connections.append(entry)
    feed.connection_id = connection_id
    set_connection_status(feed, status, at)


def set_connection_status(feed: BankFeed, status: str, at: datetime) -> bool:
    """Apply a status known as of `at`; an older fact never overwrites a newer one."""
    if feed.connection_status_at is not None and at < feed.connection_status_at:
        return False
    changed = feed.connection_status != status
    feed.connection_status = status
    feed.connection_status_at = at
    if status == LINKED and feed.linked_at is None:
        feed.linked_at = at
    for entry in feed.connections:
        if entry.connection_id == feed.connection_id:
            entry.status = status
    return changed

"""Bank-feed status: one customer's in detail, every customer's by page, and a push on demand."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds import repository as feeds
from app.bank_feeds.refresh import refresh_bank_feed
from app.bank_feeds.statuses import (
    account_out,
    account_status,
    account_status_sql,
    count_statuses,
    customer_action_reasons,
    needs_action_sql,
)
from app.bank_feeds.sync import create_missing, update_changed
from app.codat.client import CodatClient
from app.customers.repository import list_source_accounts
from app.customers.schemas import (
    ACCOUNT_STATUSES,
    ID_PATTERN,
    BankFeedPage,
    BankFeedRow,
    BankFeedStatus,
    BankFeedSummaryCounts,
    ConnectionHistoryItem,
    SyncOut,
)
from app.customers.service import live_connection, require_customer
from app.errors import Conflict, talking_to_codat
from app.models import BankFeed, Customer, SourceAccount

MAX_PAGE = 500


class InvalidCursor(ValueError):
    pass


async def bank_feed_status(
    session: AsyncSession, customer_id: str, *, refreshed: bool = False
) -> BankFeedStatus:
    """What our database knows of the customer's bank feed."""
    await require_customer(session, customer_id)
    feed = await feeds.get_bank_feed(session, customer_id)
    accounts = await list_source_accounts(session, customer_id)
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
        accounts=[account_out(a) for a in accounts],
        counts=counts,
        connected_count=counts["connected"],
        needs_customer_action=bool(reasons),
        reasons=reasons,
    )


async def refresh(
    session: AsyncSession, codat: CodatClient, budget: float, customer_id: str
) -> bool:
    """Read the connection and its accounts from Codat into the session; False if no feed."""
    await require_customer(session, customer_id)
    with talking_to_codat(budget, "reading the bank feed"):
        result = await refresh_bank_feed(session, codat, customer_id)
    return result.refreshed


async def sync(
    session: AsyncSession, codat: CodatClient, budget: float, customer_id: str
) -> SyncOut:
    """Push pending local changes; the rows keep what Codat confirmed even if a call fails."""
    await require_customer(session, customer_id)
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
    accounts = await list_source_accounts(session, customer_id)
    kept = "what Codat confirmed before that is kept"
    with talking_to_codat(budget, "pushing the customer's accounts", kept):
        report = await create_missing(codat, *target, accounts)
        await update_changed(codat, *target, accounts, report)
    return SyncOut(customer_id=customer_id, **vars(report))


# --- the list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BankFeedFilters:
    connection_status: str | None = None
    has_disconnected_accounts: bool | None = None
    needs_customer_action: bool | None = None
    updated_since: datetime | None = None


def encode_cursor(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("is not a cursor this API returned") from exc
    if not re.fullmatch(ID_PATTERN, value):
        raise InvalidCursor("is not a cursor this API returned")
    return value


def _account_counts(only: Select[Any] | None = None) -> Any:
    status = account_status_sql()
    query = select(
        SourceAccount.customer_id.label("customer_id"),
        func.max(SourceAccount.updated_at).label("updated_at"),
        *(func.sum(case((status == s, 1), else_=0)).label(s) for s in ACCOUNT_STATUSES),
    )
    if only is not None:
        query = query.where(SourceAccount.customer_id.in_(only))
    return query.group_by(SourceAccount.customer_id).subquery("account_counts")


def _needs_counts(filters: BankFeedFilters) -> bool:
    return (
        filters.has_disconnected_accounts is not None
        or filters.needs_customer_action is not None
        or filters.updated_since is not None
    )


def _filtered(filters: BankFeedFilters, only: Select[Any] | None = None) -> Select[Any]:
    """One row per customer, account counts aggregated in SQL, filters applied.

    `only` limits the aggregation to some customers (a page of them), so a page costs the
    same wherever it is in the list.
    """
    counts = _account_counts(only)
    n = {s: func.coalesce(counts.c[s], 0) for s in ACCOUNT_STATUSES}
    needs = needs_action_sql(n["not_pushed"], n["pending"])
    query = (
        select(
            Customer.id.label("customer_id"),
            Customer.name,
            Customer.country,
            Customer.updated_at.label("customer_updated_at"),
            BankFeed.company_id,
            BankFeed.connection_id,
            BankFeed.connection_status,
            BankFeed.connection_status_at,
            BankFeed.updated_at.label("feed_updated_at"),
            counts.c.updated_at.label("accounts_updated_at"),
            case((needs, 1), else_=0).label("needs_action"),
            *(n[s].label(s) for s in ACCOUNT_STATUSES),
        )
        .select_from(Customer)
        .outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
        .outerjoin(counts, counts.c.customer_id == Customer.id)
    )
    query = _status_filter(query, filters)
    conditions: list[ColumnElement[bool]] = []
    if filters.has_disconnected_accounts is not None:
        has = n["disconnected"] > 0
        conditions.append(has if filters.has_disconnected_accounts else not_(has))
    if filters.needs_customer_action is not None:
        conditions.append(needs if filters.needs_customer_action else not_(needs))
    if filters.updated_since is not None:
        since = filters.updated_since
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        conditions.append(
            (Customer.updated_at >= since)
            | (BankFeed.updated_at >= since)
            | (counts.c.updated_at >= since)
        )
    return query.where(*conditions) if conditions else query


def _status_filter(query: Select[Any], filters: BankFeedFilters) -> Select[Any]:
    if filters.connection_status == "none":
        return query.where(BankFeed.connection_status.is_(None))
    if filters.connection_status is not None:
        return query.where(BankFeed.connection_status == filters.connection_status)
    return query


async def list_bank_feeds(
    session: AsyncSession, filters: BankFeedFilters, *, limit: int, cursor: str | None
) -> BankFeedPage:
    after = decode_cursor(cursor) if cursor is not None else None
    # The summary covers every matching customer; it is the same on every page, so only the
    # first page carries it.
    summary = await _summary(session, _filtered(filters)) if after is None else None
    only = None
    if not _needs_counts(filters):
        only = select(Customer.id).outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
        only = _status_filter(only, filters)
        if after is not None:
            only = only.where(Customer.id > after)
        only = only.order_by(Customer.id).limit(limit + 1)
    page = _filtered(filters, only).order_by(Customer.id).limit(limit + 1)
    if after is not None:
        page = page.where(Customer.id > after)
    rows = (await session.execute(page)).mappings().all()
    items = [_row(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].customer_id) if len(rows) > limit else None
    return BankFeedPage(items=items, next_cursor=next_cursor, summary=summary)


def _row(r: Any) -> BankFeedRow:
    counts = {s: int(r[s]) for s in ACCOUNT_STATUSES}
    times = [t for t in (r.customer_updated_at, r.feed_updated_at, r.accounts_updated_at) if t]
    return BankFeedRow(
        customer_id=r.customer_id,
        name=r.name,
        country=r.country,
        company_id=r.company_id,
        connection_id=r.connection_id,
        connection_status=r.connection_status,
        connection_status_at=r.connection_status_at,
        account_count=sum(counts.values()),
        connected_count=counts["connected"],
        counts=counts,
        needs_customer_action=bool(r.needs_action),
        updated_at=max(times),
    )


async def _summary(session: AsyncSession, query: Select[Any]) -> BankFeedSummaryCounts:
    rows = query.subquery("rows")
    result = await session.execute(
        select(
            rows.c.connection_status,
            func.count(),
            func.coalesce(func.sum(rows.c.connected), 0),
            func.coalesce(func.sum(rows.c.needs_action), 0),
        ).group_by(rows.c.connection_status)
    )
    by_status: dict[str, int] = {}
    connected = needs = 0
    for status, customers, connected_accounts, needing in result:
        by_status[status or "none"] = by_status.get(status or "none", 0) + customers
        connected += int(connected_accounts)
        needs += int(needing)
    return BankFeedSummaryCounts(
        total_customers=sum(by_status.values()),
        by_connection_status=by_status,
        connected_accounts=connected,
        needs_customer_action=needs,
    )

"""Every customer's bank feed, a page at a time, with counts aggregated in SQL."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy import ColumnElement, Select, case, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.schemas import BankFeedPage, BankFeedRow, BankFeedSummaryCounts
from app.bank_feeds.statuses import (
    ACCOUNT_STATUSES,
    CONNECTED,
    DISCONNECTED,
    NOT_PUSHED,
    PENDING,
    account_status_sql,
    needs_action_sql,
)
from app.models import ID_PATTERN, BankFeed, Customer, SourceAccount

MAX_PAGE = 500
NOT_A_CURSOR = "Value error, is not a cursor this API returned"


@dataclass(frozen=True)
class BankFeedFilters:
    connection_status: str | None = None
    has_disconnected_accounts: bool | None = None
    needs_customer_action: bool | None = None
    updated_since: datetime | None = None


def encode_cursor(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The customer id a page starts after (a validator of the `cursor` query parameter)."""
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not re.fullmatch(ID_PATTERN, value):
        raise PydanticCustomError("value_error", NOT_A_CURSOR)
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
    needs = needs_action_sql(n[NOT_PUSHED], n[PENDING])
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
        has = n[DISCONNECTED] > 0
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
    session: AsyncSession, filters: BankFeedFilters, *, limit: int, after: str | None
) -> BankFeedPage:
    """The page of customers after the customer id `after` (a decoded cursor)."""
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
    totals = {"account_count": sum(counts.values()), "connected_count": counts[CONNECTED]}
    return BankFeedRow.model_validate(  # the row's own columns, then what is summed over it
        {
            **r,
            **totals,
            "counts": counts,
            "needs_customer_action": bool(r.needs_action),
            "updated_at": max(times),
        }
    )


async def _summary(session: AsyncSession, query: Select[Any]) -> BankFeedSummaryCounts:
    rows = query.subquery("rows")
    result = await session.execute(
        select(
            rows.c.connection_status,
            func.count(),
            func.coalesce(func.sum(rows.c[CONNECTED]), 0),
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

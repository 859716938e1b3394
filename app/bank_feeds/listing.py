"""Every customer's bank feed, a page at a time, with counts aggregated in SQL."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy import ColumnElement, Select, case, exists, func, literal, not_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.schemas import BankFeedPage, BankFeedRow, BankFeedSummaryCounts
from app.bank_feeds.statuses import (
    ACCOUNT_STATUSES,
    CONNECTED,
    DISCONNECTED,
    NOT_PUSHED,
    PENDING,
    UNKNOWN,
    account_status_sql,
    account_waiting_sql,
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
    search: str | None = None  # a customer id or its start, or part of a name


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


def _account_counts(only: Select[Any]) -> Any:
    """Each customer's accounts counted by status, for the customers `only` selects."""
    status = account_status_sql()
    return (
        select(
            SourceAccount.customer_id.label("customer_id"),
            func.max(SourceAccount.updated_at).label("updated_at"),
            *(func.sum(case((status == s, 1), else_=0)).label(s) for s in ACCOUNT_STATUSES),
        )
        .where(SourceAccount.customer_id.in_(only))
        .group_by(SourceAccount.customer_id)
        .subquery("account_counts")
    )


def _some_account(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(SourceAccount.customer_id == Customer.id, *conditions)


def needs_action() -> ColumnElement[bool]:
    """Whether the customer (a row of customers joined to their bank feed) must act."""
    return needs_action_sql(_some_account(account_waiting_sql()))


def _conditions(filters: BankFeedFilters) -> list[ColumnElement[bool]]:
    """The filters, over a customer joined to their bank feed. Those on accounts ask whether
    some account exists, so a page stops at its last row instead of counting everyone's."""
    conditions: list[ColumnElement[bool]] = []
    if filters.search:
        text = filters.search
        conditions.append(
            Customer.id.startswith(text, autoescape=True)
            | Customer.name.icontains(text, autoescape=True)
        )
    if filters.connection_status == "none":
        conditions.append(BankFeed.connection_status.is_(None))
    elif filters.connection_status is not None:
        conditions.append(BankFeed.connection_status == filters.connection_status)
    if filters.has_disconnected_accounts is not None:
        has = _some_account(account_status_sql() == DISCONNECTED)
        conditions.append(has if filters.has_disconnected_accounts else not_(has))
    if filters.needs_customer_action is not None:
        needs = needs_action()
        conditions.append(needs if filters.needs_customer_action else not_(needs))
    if filters.updated_since is not None:
        since = filters.updated_since
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        conditions.append(
            (Customer.updated_at >= since)
            | (BankFeed.updated_at >= since)
            | _some_account(SourceAccount.updated_at >= since)
        )
    return conditions


def matching_customers(filters: BankFeedFilters) -> Select[Any]:
    """The ids of the customers the filters match."""
    return (
        select(Customer.id)
        .outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
        .where(*_conditions(filters))
    )


def _rows(only: Select[Any]) -> Select[Any]:
    """One row per customer `only` selects (`BankFeedRow`'s columns), accounts counted in SQL."""
    counts = _account_counts(only)
    n = {s: func.coalesce(counts.c[s], 0) for s in ACCOUNT_STATUSES}
    needs = needs_action_sql(n[NOT_PUSHED] + n[PENDING] > 0)
    return (
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
        .where(Customer.id.in_(only))
    )


async def list_bank_feeds(
    session: AsyncSession,
    filters: BankFeedFilters,
    *,
    limit: int,
    after: str | None,
    summary: bool = True,
) -> BankFeedPage:
    """The page of customers after the customer id `after` (a decoded cursor)."""
    matching = matching_customers(filters)
    # The summary covers every matching customer; it is the same on every page, so only the
    # first page carries it.
    counts = None
    if summary and after is None:
        counts = await summarise(session, matching if _conditions(filters) else None)
    page = matching if after is None else matching.where(Customer.id > after)
    page = page.order_by(Customer.id).limit(limit + 1)
    rows = (await session.execute(_rows(page).order_by(Customer.id))).mappings().all()
    items = [_row(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].customer_id) if len(rows) > limit else None
    return BankFeedPage(items=items, next_cursor=next_cursor, summary=counts)


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


def _waiting_customers() -> Select[Any]:
    """The customers with an account still waiting on them (an index of its own)."""
    return select(SourceAccount.customer_id).where(account_waiting_sql())


def _needs_action_flag() -> Any:
    """1 when a row of customers joined to their bank feed must act, else 0; for aggregates,
    where one pass over the waiting accounts beats a look-up per customer."""
    return case((needs_action_sql(BankFeed.customer_id.in_(_waiting_customers())), 1), else_=0)


def _connected_accounts() -> Select[Any]:
    """`account_status_sql() == CONNECTED`, in a form the status index serves."""
    return select(func.count()).where(
        SourceAccount.closed_at.is_(None),
        SourceAccount.pushed_at.is_not(None),
        SourceAccount.codat_status == CONNECTED,
    )


def _tally(rows: Iterable[Any]) -> tuple[dict[str, int], int]:
    by_status: dict[str, int] = {}
    needs = 0
    for name, customers, needing, *_ in rows:
        by_status[name or "none"] = by_status.get(name or "none", 0) + int(customers)
        needs += int(needing or 0)
    return by_status, needs


async def _fleet(session: AsyncSession) -> tuple[dict[str, int], int, int]:
    """Everyone's counts in one query over the bank feeds: customers by connection status,
    how many must act, and the connected accounts. A customer without a bank feed has no
    connection yet, and must act."""
    one = select(literal(1).label("one")).subquery("one")
    feeds = one.outerjoin(BankFeed, true())  # one row even before the first bank feed
    is_feed = BankFeed.customer_id.is_not(None)
    query = select(
        BankFeed.connection_status,
        func.count(BankFeed.customer_id),
        func.sum(case((is_feed, _needs_action_flag()), else_=0)),
        select(func.count()).select_from(Customer).scalar_subquery(),
        _connected_accounts().scalar_subquery(),
    ).select_from(feeds)
    rows = (await session.execute(query.group_by(BankFeed.connection_status))).all()
    by_status, needs = _tally(rows)
    without_feed = int(rows[0][3]) - sum(by_status.values())
    if without_feed or "none" in by_status:
        by_status["none"] = by_status.get("none", 0) + without_feed
    return by_status, needs + without_feed, int(rows[0][4])


async def connection_status_counts(session: AsyncSession) -> tuple[dict[str, int], int]:
    """Every customer by connection status (`none`: no connection yet), and how many of them
    must act."""
    by_status, needs, _ = await _fleet(session)
    return by_status, needs


async def account_status_counts(
    session: AsyncSession, matching: Select[Any] | None = None
) -> dict[str, int]:
    """The accounts (of the matching customers, or of everyone) by status."""
    status = account_status_sql().label("status")
    query = select(status, func.count()).group_by(status)
    if matching is not None:
        query = query.where(SourceAccount.customer_id.in_(matching))
    counts: dict[str, int] = dict.fromkeys(ACCOUNT_STATUSES, 0)
    for name, count in await session.execute(query):
        counts[name if name in counts else UNKNOWN] += int(count)
    return counts


async def summarise(session: AsyncSession, matching: Select[Any] | None) -> BankFeedSummaryCounts:
    """The counts over the customers `matching` selects, or everyone's, in one query."""
    if matching is None:
        by_status, needs, connected = await _fleet(session)
    else:
        # The matching customers once, each with their connected accounts (read through the
        # customer's own accounts: the matches are usually few), then counted.
        connected_each = _connected_accounts().where(SourceAccount.customer_id == Customer.id)
        found = matching.add_columns(
            BankFeed.connection_status.label("status"),
            _needs_action_flag().label("needs"),
            connected_each.scalar_subquery().label("connected"),
        ).subquery("matching")
        query = select(
            found.c.status, func.count(), func.sum(found.c.needs), func.sum(found.c.connected)
        ).group_by(found.c.status)
        rows = (await session.execute(query)).all()
        by_status, needs = _tally(rows)
        connected = sum(int(row[3] or 0) for row in rows)
    return BankFeedSummaryCounts(
        total_customers=sum(by_status.values()),
        by_connection_status=by_status,
        connected_accounts=connected,
        needs_customer_action=needs,
    )

"""What the overview reads: the fleet's counts in one aggregation (`bank_feeds.listing`'s rows),
the customers who must act, the webhook inbox's health and connections per day."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds.listing import (
    BankFeedFilters,
    account_status_counts,
    connection_status_counts,
    list_bank_feeds,
)
from app.bank_feeds.schemas import BankFeedRow
from app.bank_feeds.statuses import CONNECTION_STATUSES
from app.models import BankFeed, BankFeedConnection, CodatEvent

T = TypeVar("T")
NEEDING_ACTION_SHOWN = 8
CHART_DAYS = 30


@dataclass(frozen=True)
class FleetCounts:
    customers: int
    by_connection_status: dict[str, int]  # "none": no connection yet
    by_account_status: dict[str, int]
    needs_action: int


@dataclass(frozen=True)
class WebhookHealth:
    last_received_at: datetime | None
    backlog: int  # pending: waiting for a first or a further attempt
    oldest_waiting_at: datetime | None
    failed: int


@dataclass(frozen=True)
class DailyCounts:
    days: list[date]
    created: list[int]  # connections created
    linked: list[int]  # bank feeds linked for the first time


async def fleet_counts(session: AsyncSession) -> FleetCounts:
    """Every customer by connection status, every account by status, and how many customers
    must act (the rule of `bank_feeds.statuses`)."""
    counted, needs = await connection_status_counts(session)
    by_connection = dict.fromkeys([*CONNECTION_STATUSES, "none"], 0) | counted
    by_account = await account_status_counts(session)
    return FleetCounts(sum(by_connection.values()), by_connection, by_account, needs)


async def needing_action(session: AsyncSession) -> list[BankFeedRow]:
    """The first customers (by id) who must click Connect; their count is in `fleet_counts`."""
    page = await list_bank_feeds(
        session,
        BankFeedFilters(needs_customer_action=True),
        limit=NEEDING_ACTION_SHOWN,
        after=None,
        summary=False,
    )
    return page.items


async def fleet_and_needing(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[FleetCounts, list[BankFeedRow]]:
    """Both aggregations over every account at once, each on its own connection."""

    async def alone(read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with sessions() as session:
            return await read(session)

    return await asyncio.gather(alone(fleet_counts), alone(needing_action))


async def webhook_health(session: AsyncSession) -> WebhookHealth:
    pending = CodatEvent.status == "pending"
    last = select(func.max(CodatEvent.received_at))
    row = (
        await session.execute(
            select(
                last.scalar_subquery(),
                select(func.count()).where(pending).scalar_subquery(),
                select(func.min(CodatEvent.received_at)).where(pending).scalar_subquery(),
                select(func.count()).where(CodatEvent.status == "failed").scalar_subquery(),
            )
        )
    ).one()
    return WebhookHealth(row[0], int(row[1]), row[2], int(row[3]))


def chart_days(today: date) -> list[date]:
    return [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]


async def per_day(session: AsyncSession, column: Any, days: list[date]) -> list[int]:
    """How many rows have `column` (a UTC time) on each of `days`."""
    start = datetime.combine(days[0], time(), tzinfo=UTC)
    day = _utc_day(session, column)
    result = await session.execute(select(day, func.count()).where(column >= start).group_by(day))
    counts = {date.fromisoformat(str(d)[:10]): int(n) for d, n in result}
    return [counts.get(d, 0) for d in days]


async def connections_per_day(session: AsyncSession, days: list[date]) -> DailyCounts:
    created = await per_day(session, BankFeedConnection.created_at, days)
    linked = await per_day(session, BankFeed.linked_at, days)
    return DailyCounts(days, created, linked)


def _utc_day(session: AsyncSession, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC as naive text

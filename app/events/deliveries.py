"""The delivery queue: which deliveries are due, claiming one, and recording how it went.

A delivery is claimed with a compare-and-set on `attempts` that also sets `locked_until`: one
process wins each attempt, and one that dies mid-way leaves the delivery to be claimed again
when the lock lapses. Per endpoint and customer, a delivery waits while an earlier one has not
been tried yet or is being tried: events go out in order, unless an earlier one is retrying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.events.outbox import DELIVERY_WINDOW
from app.models import EventDelivery, EventEndpoint, OutboundEvent


@dataclass(frozen=True)
class Due:
    id: int
    attempts: int
    endpoint_name: str
    customer_id: str


@dataclass(frozen=True)
class Job:
    """A claimed delivery and what sending it needs."""

    id: int
    attempts: int
    event_id: str
    body: str
    endpoint_name: str
    url: str
    secrets: list[str]
    deliver_until: datetime


@dataclass(frozen=True)
class Result:
    """How one attempt went: delivered, or why not and how long to wait at least."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def _unlocked(now: datetime) -> ColumnElement[bool]:
    return or_(EventDelivery.locked_until.is_(None), EventDelivery.locked_until <= now)


def _waits_for_earlier(now: datetime) -> ColumnElement[bool]:
    earlier = aliased(EventDelivery)
    return exists().where(
        earlier.endpoint_name == EventDelivery.endpoint_name,
        earlier.customer_id == EventDelivery.customer_id,
        earlier.id < EventDelivery.id,
        earlier.status == "pending",
        or_(earlier.attempts == 0, earlier.locked_until > now),
    )


async def due(session: AsyncSession, now: datetime, limit: int) -> list[Due]:
    """Deliveries to attempt now, oldest first."""
    result = await session.execute(
        select(
            EventDelivery.id,
            EventDelivery.attempts,
            EventDelivery.endpoint_name,
            EventDelivery.customer_id,
        )
        .where(
            EventDelivery.status == "pending",
            EventDelivery.next_attempt_at <= now,
            _unlocked(now),
            ~_waits_for_earlier(now),
        )
        .order_by(EventDelivery.id)
        .limit(limit)
    )
    return [Due(*row) for row in result]


async def claim(
    session: AsyncSession, delivery_id: int, seen_attempts: int, now: datetime, lock: timedelta
) -> bool:
    """Take one attempt; exactly one caller wins. Commit right after."""
    result = await session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id == delivery_id,
            EventDelivery.status == "pending",
            EventDelivery.attempts == seen_attempts,
            _unlocked(now),
            ~_waits_for_earlier(now),
        )
        .values(attempts=seen_attempts + 1, locked_until=now + lock, last_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def load(session: AsyncSession, delivery_id: int, now: datetime) -> Job | None:
    """The claimed delivery with its event and endpoint; None if the endpoint was deleted."""
    row = (
        await session.execute(
            select(EventDelivery, OutboundEvent, EventEndpoint)
            .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_id)
            .join(EventEndpoint, EventEndpoint.name == EventDelivery.endpoint_name)
            .where(EventDelivery.id == delivery_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None
    delivery, event, endpoint = row
    return Job(
        id=delivery.id,
        attempts=delivery.attempts,
        event_id=event.event_id,
        body=event.body,
        endpoint_name=endpoint.name,
        url=endpoint.url,
        secrets=signing_secrets(endpoint, now),
        deliver_until=delivery.deliver_until,
    )


def signing_secrets(endpoint: EventEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        found.append(endpoint.previous_secret)
    return found


async def settle(
    session: AsyncSession, job: Job, result: Result, now: datetime, retry_at: datetime | None
) -> bool:
    """Record the attempt if our claim still holds: delivered, retry at `retry_at`, or failed
    for good when it is None."""
    values: dict[str, Any] = {
        "locked_until": None,
        "last_status_code": result.status_code,
        "last_error": result.error,
    }
    if result.delivered:
        values.update(status="delivered", delivered_at=now, next_attempt_at=None)
    elif retry_at is None:
        values.update(status="failed", next_attempt_at=None)
    else:
        values.update(next_attempt_at=retry_at)
    outcome = await session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id == job.id,
            EventDelivery.status == "pending",
            EventDelivery.attempts == job.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount == 1  # type: ignore[attr-defined]


async def redeliver(session: AsyncSession, delivery_id: int, now: datetime) -> bool | None:
    """Queue a delivery again now, with a fresh 24 hours of retries. None if there is no such
    delivery, False while it is being attempted."""
    result = await session.execute(
        update(EventDelivery)
        .where(EventDelivery.id == delivery_id, _unlocked(now))
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            deliver_until=now + DELIVERY_WINDOW,
            delivered_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return True
    return False if await session.get(EventDelivery, delivery_id) is not None else None


async def listed(
    session: AsyncSession,
    *,
    status: str | None,
    endpoint_name: str | None,
    customer_id: str | None,
    event_type: str | None,
    limit: int,
) -> list[tuple[EventDelivery, OutboundEvent]]:
    """Deliveries with their events, newest first."""
    query = (
        select(EventDelivery, OutboundEvent)
        .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_id)
        .order_by(EventDelivery.id.desc())
        .limit(limit)
    )
    filters = [
        column == value
        for column, value in (
            (EventDelivery.status, status),
            (EventDelivery.endpoint_name, endpoint_name),
            (EventDelivery.customer_id, customer_id),
            (OutboundEvent.event_type, event_type),
        )
        if value is not None
    ]
    if filters:
        query = query.where(and_(*filters))
    return [(d, e) for d, e in (await session.execute(query)).all()]


async def get(
    session: AsyncSession, delivery_id: int
) -> tuple[EventDelivery, OutboundEvent] | None:
    row = (
        await session.execute(
            select(EventDelivery, OutboundEvent)
            .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_id)
            .where(EventDelivery.id == delivery_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])

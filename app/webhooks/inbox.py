"""The webhook inbox: store a delivery once, then claim and settle it durably.

A row is claimed with a compare-and-set on `attempts` (UPDATE ... WHERE status='pending' AND
attempts=:seen), which also pushes `next_attempt_at` a lease ahead: only one process wins each
attempt, and a process that dies mid-way leaves the row to be claimed again once the lease ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.codat.webhooks import Envelope
from app.db import insert_ignore
from app.models import CodatEvent

# What a handler makes of an event; an event is settled once it has one, or has `failed`.
Verdict = Literal["handled", "ignored", "unmatched"]
EventStatus = Literal["pending", Verdict, "failed"]


@dataclass(frozen=True)
class InboxEvent:
    """What a handler sees of a stored event (a copy: handlers never touch the inbox row)."""

    id: int
    webhook_id: str
    event_type: str
    generated_date: datetime | None
    received_at: datetime
    payload: dict[str, Any]
    company_id: str | None
    attempts: int

    @property
    def as_of(self) -> datetime:
        """When the fact was true at Codat; arrival time if Codat did not say."""
        return self.generated_date or self.received_at


@dataclass(frozen=True)
class Outcome:
    status: Verdict
    customer_id: str | None = None


async def accept(session: AsyncSession, webhook_id: str, envelope: Envelope, now: datetime) -> bool:
    """Store the delivery once; False when this `webhook-id` is already in the inbox."""
    statement = insert_ignore(
        session.get_bind().dialect.name,
        CodatEvent,
        {
            "webhook_id": webhook_id,
            "event_type": envelope.event_type,
            "generated_date": envelope.generated_date,
            "payload": envelope.payload,
            "company_id": envelope.company_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "received_at": now,
        },
    ).returning(CodatEvent.id)
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def due_events(session: AsyncSession, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(id, attempts) of pending events whose next attempt is due, oldest first."""
    result = await session.execute(
        select(CodatEvent.id, CodatEvent.attempts)
        .where(
            CodatEvent.status == "pending",
            or_(CodatEvent.next_attempt_at.is_(None), CodatEvent.next_attempt_at <= now),
        )
        .order_by(CodatEvent.id)
        .limit(limit)
    )
    return [(row.id, row.attempts) for row in result]


async def claim(
    session: AsyncSession, event_id: int, seen_attempts: int, now: datetime, lease: timedelta
) -> bool:
    """Take one attempt at the event; exactly one caller wins. Commit right after."""
    result = await session.execute(
        update(CodatEvent)
        .where(
            CodatEvent.id == event_id,
            CodatEvent.status == "pending",
            CodatEvent.attempts == seen_attempts,
        )
        .values(attempts=seen_attempts + 1, next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def load(session: AsyncSession, event_id: int) -> InboxEvent | None:
    row = await session.get(CodatEvent, event_id, populate_existing=True)
    if row is None:
        return None
    return InboxEvent(
        id=row.id,
        webhook_id=row.webhook_id,
        event_type=row.event_type,
        generated_date=row.generated_date,
        received_at=row.received_at,
        payload=dict(row.payload or {}),
        company_id=row.company_id,
        attempts=row.attempts,
    )


async def settle(session: AsyncSession, event: InboxEvent, outcome: Outcome, now: datetime) -> bool:
    """Record the outcome if our claim still holds; False means another process took over."""
    values: dict[str, Any] = {
        "status": outcome.status,
        "handled_at": now,
        "next_attempt_at": None,
        "last_error": None,
    }
    if outcome.customer_id is not None:
        values["customer_id"] = outcome.customer_id
    return await _guarded_update(session, event, values)


async def record_failure(
    session: AsyncSession,
    event: InboxEvent,
    error: str,
    retry_at: datetime | None,
) -> bool:
    """Keep the error; retry at `retry_at`, or give up (`failed`) when it is None."""
    values: dict[str, Any] = {"last_error": error, "next_attempt_at": retry_at}
    if retry_at is None:
        values["status"] = "failed"
    return await _guarded_update(session, event, values)


async def _guarded_update(session: AsyncSession, event: InboxEvent, values: dict[str, Any]) -> bool:
    result = await session.execute(
        update(CodatEvent)
        .where(
            CodatEvent.id == event.id,
            CodatEvent.status == "pending",
            CodatEvent.attempts == event.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def requeue(session: AsyncSession, event_id: int, now: datetime) -> bool:
    """Put a settled event back in the queue (ops: after fixing what made it unmatched)."""
    result = await session.execute(
        update(CodatEvent)
        .where(CodatEvent.id == event_id, CodatEvent.status != "pending")
        .values(status="pending", attempts=0, next_attempt_at=now, handled_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def list_events(
    session: AsyncSession, status: str | None, event_type: str | None, limit: int
) -> list[CodatEvent]:
    query = select(CodatEvent).order_by(CodatEvent.id.desc()).limit(limit)
    if status is not None:
        query = query.where(CodatEvent.status == status)
    if event_type is not None:
        query = query.where(CodatEvent.event_type == event_type)
    return list((await session.execute(query)).scalars())

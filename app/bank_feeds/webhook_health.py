"""Whether Codat's webhooks reach us, so the reconciler can stay quiet while they do.

Every click that creates a connection makes Codat send `connection.created` for the company.
Webhooks are healthy when the latest such click, old enough for its event to have arrived, has
an event for its company in the inbox; with no click yet, when any event came in the last day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BankFeed, CodatEvent

DELIVERY_GRACE = timedelta(minutes=5)  # Svix delivers in seconds; retries take longer
QUIET_DAY = timedelta(days=1)


async def note_touched(session: AsyncSession, customer_id: str, at: datetime) -> None:
    """A webhook told us something about this customer's feed."""
    await session.execute(
        update(BankFeed)
        .where(BankFeed.customer_id == customer_id)
        .values(last_webhook_at=at)
        .execution_options(synchronize_session=False)
    )


async def webhooks_healthy(session: AsyncSession, now: datetime) -> bool:
    latest = (
        await session.execute(
            select(BankFeed.company_id, BankFeed.connection_requested_at)
            .where(
                BankFeed.company_id.is_not(None),
                BankFeed.connection_requested_at <= now - DELIVERY_GRACE,
            )
            .order_by(BankFeed.connection_requested_at.desc())
            .limit(1)
        )
    ).first()
    if latest is None:
        newest = await session.scalar(select(func.max(CodatEvent.received_at)))
        return newest is not None and newest >= now - QUIET_DAY
    company_id, requested_at = latest
    heard = await session.scalar(
        select(func.count())
        .select_from(CodatEvent)
        .where(CodatEvent.company_id == company_id, CodatEvent.received_at >= requested_at)
    )
    return bool(heard)

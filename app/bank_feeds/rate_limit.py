"""Codat's daily quota, as every process sees it: a pause stored in `ServiceState`.

`client.rateLimit.reached` and a 429 pause background Codat calls until a time;
`client.rateLimit.reset` lifts the pause. An older fact never overrides a newer one.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_ignore, utcnow
from app.models import ServiceState

RATE_LIMIT_KEY = "codat_rate_limit"


async def paused_until(session: AsyncSession, now: datetime) -> datetime | None:
    """When background Codat calls may resume, or None if they may run now."""
    row = await session.get(ServiceState, RATE_LIMIT_KEY, populate_existing=True)
    if row is None:
        return None
    until = _parse(row.value.get("paused_until"))
    return until if until is not None and until > now else None


async def pause(
    session: AsyncSession,
    until: datetime,
    as_of: datetime,
    reason: str,
    details: dict[str, Any] | None = None,
) -> bool:
    """Pause background Codat calls until `until`; False if a newer fact is already stored."""
    value = {
        "paused_until": until.isoformat(),
        "as_of": as_of.isoformat(),
        "reason": reason,
        **(details or {}),
    }
    return await _store(session, value, as_of)


async def resume(session: AsyncSession, as_of: datetime, reason: str) -> bool:
    value = {"paused_until": None, "as_of": as_of.isoformat(), "reason": reason}
    return await _store(session, value, as_of)


def next_quota_reset(now: datetime) -> datetime:
    """Codat's daily quota resets at 00:00 UTC."""
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


async def _store(session: AsyncSession, value: dict[str, Any], as_of: datetime) -> bool:
    dialect = session.get_bind().dialect.name
    await session.execute(
        insert_ignore(
            dialect,
            ServiceState,
            {"key": RATE_LIMIT_KEY, "value": {"paused_until": None}, "updated_at": utcnow()},
        )
    )
    # Lock the row (Postgres) so two processes compare and write one after the other.
    row = await session.get(
        ServiceState, RATE_LIMIT_KEY, with_for_update=True, populate_existing=True
    )
    assert row is not None
    known = _parse(row.value.get("as_of"))
    if known is not None and as_of < known:
        return False
    row.value = value
    return True


def _parse(value: Any) -> datetime | None:
    with contextlib.suppress(TypeError, ValueError):  # not a time we stored
        return datetime.fromisoformat(value)
    return None

"""Background work's share of Codat's daily quota, counted in the database for every replica.

Codat allows 1000 x (1 + connected companies) requests a day across all our processes, then
answers 429 to everything, clicks included, until 00:00 UTC. Background work (the reconciler)
may spend at most `share` of that, and only while Codat's own count (`X-Rate-Limit-Remaining`,
as last seen by any replica) leaves the clicks their part: clicks always come first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.statuses import LINKED
from app.codat.client import RateLimitSeen
from app.db import insert_ignore
from app.models import BankFeed, CodatQuotaDay

DEFAULT_SHARE = 0.25
REQUESTS_PER_CONNECTED_COMPANY = 1000  # Codat: 1000 x (1 + ACCs) a day
MIN_CLICK_RESERVE = 0.05  # of the day's limit, whatever the share: never spent in background


@dataclass(frozen=True)
class QuotaView:
    day: date
    limit: int
    background_used: int
    remaining: int | None  # Codat's count, when a replica has seen it today

    def background_allowance(self, share: float) -> int:
        return int(self.limit * share)

    def clicks_used(self) -> int:
        """Requests not made in the background today, as far as Codat's count tells."""
        if self.remaining is None:
            return 0
        return max(0, self.limit - self.remaining - self.background_used)

    def grants(self, requests: int, share: float) -> bool:
        if self.background_used + requests > self.background_allowance(share):
            return False
        if self.remaining is None:
            return True
        clicks_part = int(self.limit * (1 - share))
        reserve = int(self.limit * MIN_CLICK_RESERVE)
        if self.clicks_used() + reserve > clicks_part:
            return False  # the clicks need more than their part today: they get ours too
        # What the clicks are still owed today stays untouched.
        return self.remaining - requests >= clicks_part - self.clicks_used()


async def _connected_companies(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(BankFeed).where(BankFeed.connection_status == LINKED)
    )
    return int(count or 0)


async def note_seen(session: AsyncSession, seen: RateLimitSeen | None, now: datetime) -> None:
    """Keep what Codat last said of the day's quota, if it is news for its day (the day before
    `X-Rate-Limit-Reset`; `now`'s day when Codat did not say)."""
    if seen is None:
        return
    day = (seen.reset - timedelta(days=1)).date() if seen.reset else now.date()
    await _ensure_day(session, day)
    await session.execute(
        update(CodatQuotaDay)
        .where(
            CodatQuotaDay.day == day,
            (CodatQuotaDay.remaining_at.is_(None)) | (CodatQuotaDay.remaining_at < seen.at),
        )
        .values(
            remaining=seen.remaining,
            remaining_at=seen.at,
            **({"daily_limit": seen.limit} if seen.limit else {}),
        )
        .execution_options(synchronize_session=False)
    )


async def view(session: AsyncSession, now: datetime) -> QuotaView:
    day = now.date()
    row = await session.get(CodatQuotaDay, day, populate_existing=True)
    limit = row.daily_limit if row and row.daily_limit else None
    if limit is None:
        limit = REQUESTS_PER_CONNECTED_COMPANY * (1 + await _connected_companies(session))
    return QuotaView(
        day=day,
        limit=limit,
        background_used=row.background_used if row else 0,
        remaining=row.remaining if row else None,
    )


async def try_spend(session: AsyncSession, now: datetime, requests: int, share: float) -> bool:
    """Take `requests` from today's background share; False (nothing taken) when the share is
    spent or the clicks need what is left. Commit right after."""
    current = await view(session, now)
    if not current.grants(requests, share):
        return False
    await _ensure_day(session, current.day)
    spent = await session.execute(
        update(CodatQuotaDay)
        .where(
            CodatQuotaDay.day == current.day,
            CodatQuotaDay.background_used + requests <= current.background_allowance(share),
        )
        .values(background_used=CodatQuotaDay.background_used + requests)
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1  # type: ignore[attr-defined]


async def _ensure_day(session: AsyncSession, day: date) -> None:
    dialect = session.get_bind().dialect.name
    await session.execute(insert_ignore(dialect, CodatQuotaDay, {"day": day, "background_used": 0}))

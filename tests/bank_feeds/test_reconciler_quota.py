"""The reconciler's share of Codat's daily quota, counted in the database across replicas;
clicks first; no polling while webhooks are healthy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds import quota
from app.bank_feeds.reconciler import Reconciler
from app.codat.client import CodatClient
from app.db import utcnow
from app.events.outbox import announce
from app.models import CodatEvent, CodatQuotaDay
from tests.bank_feeds.test_reconciler import CADENCE, Clock, FakeCodat, add_pending_feeds


class MeteredCodat(FakeCodat):
    """FakeCodat that counts down Codat's `X-Rate-Limit-Remaining` on every answer."""

    def __init__(self, limit: int, remaining: int) -> None:
        super().__init__(connection_status="PendingAuth", account_status="pending")
        self.limit, self.remaining = limit, remaining

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        self.remaining -= 1
        response.headers["X-Rate-Limit-Limit"] = str(self.limit)
        response.headers["X-Rate-Limit-Remaining"] = str(self.remaining)
        return response


@pytest.fixture
async def metered() -> AsyncIterator[tuple[MeteredCodat, CodatClient]]:
    codat = MeteredCodat(limit=40, remaining=40)
    client = CodatClient("https://api.codat.io", "key", transport=httpx.MockTransport(codat))
    yield codat, client
    await client.aclose()


def _replica(
    sessions: async_sessionmaker[AsyncSession], client: CodatClient, clock: Clock
) -> Reconciler:
    return Reconciler(
        sessions,
        client,
        announce=announce,
        cadence=CADENCE,
        budget_per_minute=1000,
        retry_budget_seconds=0.3,
        quota_share=0.25,
        poll_while_webhooks_healthy=True,
        clock=clock,
    )


async def test_two_replicas_share_one_background_allowance(
    sessions: async_sessionmaker[AsyncSession], metered: tuple[MeteredCodat, CodatClient]
) -> None:
    codat, client = metered
    clock = Clock()
    await add_pending_feeds(sessions, 12, clock.now - timedelta(minutes=5))
    async with sessions() as session:
        session.add(CodatQuotaDay(day=clock.now.date(), background_used=0, daily_limit=40))
        await session.commit()
    first, second = _replica(sessions, client, clock), _replica(sessions, client, clock)

    one = await first.run_once()
    two = await second.run_once()

    # 25% of 40 is 10 requests: 5 refreshes between the two replicas, then no more today.
    assert len(one.refreshed) + len(two.refreshed) == 5 and len(codat.calls) == 10
    assert one.out_of_quota or two.out_of_quota
    async with sessions() as session:
        current = await quota.view(session, clock.now)
    assert current.background_used == 10 and current.remaining == 30
    clock.advance(24 * 3600)  # a new day at Codat: a new allowance
    codat.remaining = 40
    assert (await first.run_once()).refreshed


async def test_clicks_keep_what_codat_says_is_left(
    sessions: async_sessionmaker[AsyncSession], metered: tuple[MeteredCodat, CodatClient]
) -> None:
    codat, client = metered
    clock = Clock()
    await add_pending_feeds(sessions, 3, clock.now - timedelta(minutes=5))
    reconciler = _replica(sessions, client, clock)
    codat.remaining = 31  # clicks made 9 requests today: Codat says so in its headers
    await client.get_connection("company-c00", "conn-c00")  # a click's call, seen by the client
    codat.calls.clear()

    report = await reconciler.run_once()

    # The clicks are owed 75% of 40 = 30 minus the 10 they used: 20. 30 left, so 10 may go,
    # but the share (10) is the tighter bound: then Codat's count is 20, the clicks' part.
    assert report.refreshed and len(codat.calls) == 2 * len(report.refreshed)
    assert codat.remaining >= 20


def test_a_view_never_grants_into_the_clicks_reserve() -> None:
    today = utcnow().date()
    fresh = quota.QuotaView(today, limit=1000, background_used=0, remaining=None)
    assert fresh.grants(250, 0.25) and not fresh.grants(251, 0.25)
    busy_clicks = quota.QuotaView(today, limit=1000, background_used=0, remaining=100)
    assert not busy_clicks.grants(2, 0.25)  # 900 used by clicks: what is left is theirs


async def test_no_polling_while_webhooks_are_healthy(
    sessions: async_sessionmaker[AsyncSession], metered: tuple[MeteredCodat, CodatClient]
) -> None:
    codat, client = metered
    clock = Clock()
    await add_pending_feeds(sessions, 2, clock.now - timedelta(minutes=10))
    reconciler = Reconciler(
        sessions, client, announce=announce, cadence=CADENCE, budget_per_minute=1000, clock=clock
    )
    unheard = await reconciler.run_once()  # no webhook ever came: poll
    async with sessions() as session:
        for n, company_id in enumerate(("company-c00", "company-c01")):
            session.add(
                CodatEvent(
                    webhook_id=f"msg_{n}",
                    event_type="connection.created",
                    payload={},
                    company_id=company_id,
                    received_at=utcnow(),
                )
            )
        await session.commit()
    clock.advance(3600)
    calls = len(codat.calls)
    healthy = await reconciler.run_once()

    assert unheard.refreshed and not unheard.webhooks_healthy
    assert healthy.webhooks_healthy and healthy.refreshed == [] and len(codat.calls) == calls

"""The polling fallback: due feeds refreshed within a request budget, pauses, back-off, lease."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds import rate_limit
from app.bank_feeds.reconciler import Cadence, Reconciler
from app.bank_feeds.repository import try_lease
from app.codat.client import CodatClient
from app.db import utcnow
from app.events.outbox import announce
from app.models import BankFeed
from tests.webhooks.support import accounts, feed, seed_feed, service_state

CADENCE = Cadence(
    pending_interval=timedelta(seconds=15),
    pending_window=timedelta(hours=1),
    linked_interval=timedelta(hours=6),
)


@dataclass
class FakeCodat:
    """Codat's connection and source-account reads, or a failure status for every call."""

    connection_status: str = "Linked"
    account_status: str = "connected"
    fail_with: int | None = None
    retry_after: str | None = None
    calls: list[str] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)  # companies whose answers make no sense

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if self.fail_with is not None:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return httpx.Response(
                self.fail_with,
                headers=headers,
                json={"statusCode": self.fail_with, "error": "no", "correlationId": "c"},
            )
        parts = request.url.path.strip("/").split("/")
        if parts[1] in self.unreadable:
            return httpx.Response(200, json={"unexpected": True})
        if parts[-1] == "bankFeedAccounts":
            customer = parts[1].removeprefix("company-")
            return httpx.Response(
                200,
                json=[
                    {
                        "id": f"{customer}-acc-{n}",
                        "accountName": f"Account {n}",
                        "status": self.account_status,
                        "feedStartDate": "2026-11-18",
                    }
                    for n in range(2)
                ],
            )
        return httpx.Response(
            200,
            json={
                "id": parts[3],
                "status": self.connection_status,
                "platformName": "QBO Bank Feeds",
                "linkUrl": "https://link-api.codat.io/x/start?otp=1",
                "created": "2026-11-20T00:00:00",
            },
        )


@dataclass
class Clock:
    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def codat() -> FakeCodat:
    return FakeCodat()


@pytest.fixture
async def client(codat: FakeCodat) -> AsyncIterator[CodatClient]:
    client = CodatClient("https://api.codat.io", "key", transport=httpx.MockTransport(codat))
    yield client
    await client.aclose()


Make = Callable[..., Reconciler]


@pytest.fixture
def make(sessions: async_sessionmaker[AsyncSession], client: CodatClient) -> Make:
    def build(**options: object) -> Reconciler:
        settings: dict[str, object] = {
            "announce": announce,
            "cadence": CADENCE,
            "budget_per_minute": 60,
            "retry_budget_seconds": 0.3,
            **options,
        }
        return Reconciler(sessions, client, **settings)  # type: ignore[arg-type]

    return build


async def add_pending_feeds(
    sessions: async_sessionmaker[AsyncSession], count: int, created: datetime
) -> None:
    for n in range(count):
        await seed_feed(
            sessions,
            f"c{n:02d}",
            company_id=f"company-c{n:02d}",
            connection_id=f"conn-c{n:02d}",
            status_at=created,
        )


async def test_a_pending_feed_after_a_click_is_scheduled_then_refreshed(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 1, clock.now - timedelta(seconds=5))
    reconciler = make(clock=clock)
    report = await reconciler.run_once()
    assert report.refreshed == [] and codat.calls == []  # scheduled 15 s after the click
    assert (await feed(sessions, "c00")).next_reconcile_at == clock.now + timedelta(seconds=10)

    clock.advance(10)
    report = await reconciler.run_once()
    assert report.refreshed == ["c00"]
    assert sorted(codat.calls) == [
        "GET /companies/company-c00/connections/conn-c00",
        "GET /companies/company-c00/connections/conn-c00/connectionInfo/bankFeedAccounts",
    ]
    row = await feed(sessions, "c00")
    assert row.connection_status == "Linked" and row.last_refreshed_at is not None
    assert row.next_reconcile_at == row.last_refreshed_at + timedelta(hours=6)  # now settled
    assert {a.codat_status for a in (await accounts(sessions, "c00")).values()} == {"connected"}


async def test_pending_feeds_are_polled_with_a_backoff(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    codat.connection_status, codat.account_status = "PendingAuth", "pending"
    clock = Clock()
    clicked = clock.now - timedelta(seconds=15)
    await add_pending_feeds(sessions, 1, clicked)
    reconciler = make(clock=clock, poll_while_webhooks_healthy=True)
    waits = []
    for _ in range(9):
        await reconciler.run_once()
        row = await feed(sessions, "c00")
        assert row.last_refreshed_at is not None and row.next_reconcile_at is not None
        waits.append((row.next_reconcile_at - row.last_refreshed_at).total_seconds())
        clock.now = row.next_reconcile_at
    # As long again as since the click, from 15 s, up to the hour: 18 requests in the first
    # hour and then 2 an hour, where it was 480 in the first hour.
    assert waits == [15, 30, 60, 120, 240, 480, 960, 1920, 3600]
    assert len(codat.calls) == 18


def test_cadence() -> None:
    now = utcnow()
    pending = BankFeed(
        customer_id="x",
        connection_id="c",
        connection_status="PendingAuth",
        created_at=now - timedelta(seconds=5),
        last_refreshed_at=now,
    )
    assert CADENCE.next_reconcile(pending, now) == now + timedelta(seconds=15)
    pending.created_at = now - timedelta(minutes=10)
    assert CADENCE.next_reconcile(pending, now) == now + timedelta(minutes=10)
    pending.created_at = now - timedelta(hours=2)
    assert CADENCE.next_reconcile(pending, now) == now + timedelta(hours=1)  # capped
    pending.last_click_at = now - timedelta(seconds=1)  # a fresh click: often again
    assert CADENCE.next_reconcile(pending, now) == now + timedelta(seconds=15)
    pending.last_click_at = None
    pending.created_at = now - timedelta(days=7)  # nobody touched it for a week: left alone
    assert CADENCE.next_reconcile(pending, now) is None
    pending.last_webhook_at = now - timedelta(days=1)  # a webhook touched it: polled again
    assert CADENCE.next_reconcile(pending, now) == now + timedelta(hours=1)
    linked = BankFeed(
        customer_id="x",
        connection_id="c",
        connection_status="Linked",
        created_at=now,
        last_refreshed_at=now,
    )
    assert CADENCE.next_reconcile(linked, now) == now + timedelta(hours=6)
    linked.created_at = linked.last_refreshed_at = now - timedelta(days=8)
    assert CADENCE.next_reconcile(linked, now) is None
    linked.created_at = linked.last_refreshed_at = now
    for settled in ("Unlinked", "Deauthorized"):
        linked.connection_status = settled
        assert CADENCE.next_reconcile(linked, now) is None
    assert CADENCE.next_reconcile(BankFeed(customer_id="x", created_at=now), now) is None


async def test_stays_within_the_request_budget(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 5, clock.now - timedelta(minutes=5))
    reconciler = make(clock=clock, budget_per_minute=4)
    report = await reconciler.run_once()
    assert len(report.refreshed) == 2 and len(codat.calls) == 4
    assert report.out_of_budget
    clock.advance(30)
    assert (await reconciler.run_once()).refreshed == [] and len(codat.calls) == 4
    # It sleeps until the budget frees up, not in a loop.
    assert await reconciler.seconds_until_next(report) == pytest.approx(30, abs=1)
    clock.advance(31)
    assert len((await reconciler.run_once()).refreshed) == 2 and len(codat.calls) == 8


async def test_waits_while_the_rate_limit_pause_is_in_force(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 2, clock.now - timedelta(minutes=5))
    async with sessions() as session:  # as `client.rateLimit.reached` leaves it
        await rate_limit.pause(session, clock.now + timedelta(minutes=10), clock.now, "test")
        await session.commit()
    reconciler = make(clock=clock)
    report = await reconciler.run_once()
    assert report.refreshed == [] and codat.calls == []
    assert report.paused_until == clock.now + timedelta(minutes=10)
    async with sessions() as session:  # `client.rateLimit.reset`
        await rate_limit.resume(session, clock.now + timedelta(seconds=1), "test")
        await session.commit()
    assert len((await reconciler.run_once()).refreshed) == 2


async def test_a_429_pauses_every_process(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 3, clock.now - timedelta(minutes=5))
    codat.fail_with, codat.retry_after = 429, "120"
    report = await make(clock=clock).run_once()
    assert report.refreshed == [] and len(report.failed) == 1
    state = await service_state(sessions, "codat_rate_limit")
    assert state is not None
    assert state["paused_until"] == (clock.now + timedelta(seconds=120)).isoformat()
    calls = len(codat.calls)
    codat.fail_with = None
    other_process = make(clock=clock)
    assert (await other_process.run_once()).refreshed == [] and len(codat.calls) == calls
    clock.advance(121)
    assert len((await other_process.run_once()).refreshed) == 3


async def test_backs_off_when_codat_fails_instead_of_looping(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 3, clock.now - timedelta(minutes=5))
    codat.fail_with = 503
    reconciler = make(clock=clock, interval_seconds=30)
    report = await reconciler.run_once()
    assert report.refreshed == [] and len(report.failed) == 1  # stops at the first failure
    calls = len(codat.calls)
    report = await reconciler.run_once()
    assert len(codat.calls) == calls  # backing off: no call
    assert await reconciler.seconds_until_next(report) == pytest.approx(30, abs=1)
    clock.advance(31)
    await reconciler.run_once()  # fails again: the back-off doubles
    assert reconciler.resume_at == clock.now + timedelta(seconds=60)
    codat.fail_with = None
    clock.advance(61)
    assert len((await reconciler.run_once()).refreshed) == 3


async def test_skips_a_feed_whose_lease_is_held(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 2, clock.now - timedelta(minutes=5))
    async with sessions() as session:  # a click is connecting c00 right now
        assert await try_lease(session, "c00", "connect-click", timedelta(seconds=30))
        await session.commit()
    report = await make(clock=clock).run_once()
    assert report.refreshed == ["c01"] and report.busy == ["c00"]
    assert all("c00" not in call for call in codat.calls)
    row = await feed(sessions, "c00")
    assert row.lock_owner == "connect-click"  # untouched
    assert row.next_reconcile_at == clock.now + timedelta(seconds=15)


async def unlink(sessions: async_sessionmaker[AsyncSession], customer_id: str) -> None:
    async with sessions() as session:
        await session.execute(
            update(BankFeed)
            .where(BankFeed.customer_id == customer_id)
            .values(connection_status="Unlinked")
        )
        await session.commit()


async def test_settled_feeds_are_not_polled(
    sessions: async_sessionmaker[AsyncSession],
    make: Make,
    codat: FakeCodat,
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 2, clock.now - timedelta(minutes=5))
    await unlink(sessions, "c00")
    reconciler = make(clock=clock)
    assert (await reconciler.run_once()).refreshed == ["c01"]
    # A webhook later unlinks c01: the next sweep drops it from the schedule.
    await unlink(sessions, "c01")
    clock.advance(7 * 3600)
    assert (await reconciler.run_once()).refreshed == []
    async with sessions() as session:
        scheduled = (await session.execute(select(BankFeed.next_reconcile_at))).scalars().all()
    assert scheduled == [None, None]
    assert json.dumps(codat.calls).count("company-c00") == 0


async def test_one_unreadable_feed_does_not_stop_the_others(
    sessions: async_sessionmaker[AsyncSession], make: Make, codat: FakeCodat
) -> None:
    clock = Clock()
    await add_pending_feeds(sessions, 3, clock.now - timedelta(minutes=5))
    codat.unreadable.add("company-c00")
    report = await make(clock=clock).run_once()
    assert (report.failed, sorted(report.refreshed)) == (["c00"], ["c01", "c02"])
    assert (await feed(sessions, "c00")).next_reconcile_at == clock.now + timedelta(minutes=10)

"""Provisioning ahead of the click: the company, connection and accounts made in the background,
within the quota share, under the click's lease; a provisioned customer's click costs 1 call."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.bank_feeds import quota
from app.bank_feeds import repository as feeds
from app.bank_feeds.rate_limit import next_quota_reset
from app.connect.provision import Provisioner
from app.db import utcnow
from app.models import BankFeed, SourceAccount
from app.sandbox.faults import FaultConfig
from app.settings import Settings
from tests.conftest import Service, _truncate, start_service
from tests.connect.test_connect_flow import click
from tests.factories import add_customer
from tests.ops_api import put_account, put_customer
from tests.transports import WatchedCodat

WAIT_SECONDS = 15.0


@pytest.fixture
async def watched(database_url: str) -> AsyncIterator[tuple[Service, WatchedCodat]]:
    await _truncate(database_url)
    codat = WatchedCodat()
    async for svc in start_service(database_url, codat_transport=codat, provision_ahead=True):
        codat.sandbox = svc.app.state.sandbox_app
        yield svc, codat


def provisioner(service: Service, **overrides: Any) -> Provisioner:
    return service.services.provisioner(clock=service.sandbox.clock.now, **overrides)


def creates(service: Service) -> Counter[str]:
    """Codat's create calls by kind, from the sandbox's call log."""
    kinds: Counter[str] = Counter()
    for call in service.codat_calls("POST"):
        if call.path == "/companies":
            kinds["company"] += 1
        elif call.path.endswith("/connections"):
            kinds["connection"] += 1
        elif call.path.endswith("/bankFeedAccounts/batch"):
            kinds["accounts"] += 1
    return kinds


async def provisioned(service: Service, customer_id: str) -> bool:
    async with service.sessions() as session:
        feed = await session.get(BankFeed, customer_id, populate_existing=True)
        accounts = await feeds.list_source_accounts(session, customer_id)
    return (
        feed is not None
        and feed.company_id is not None
        and feed.connection_id is not None
        and bool(accounts)
        and all(a.is_pushed for a in accounts)
    )


async def test_a_created_customer_is_provisioned_and_its_first_click_costs_one_call(
    database_url: str,
) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, run_background=True, provision_ahead=True):
        assert (await put_customer(service)).status_code == 201
        assert (await put_account(service)).status_code == 201  # wakes the job
        deadline = time.monotonic() + WAIT_SECONDS
        while not await provisioned(service, "cus-1"):
            assert time.monotonic() < deadline, "the customer was not provisioned in time"
            await asyncio.sleep(0.05)
        assert creates(service) == {"company": 1, "connection": 1, "accounts": 1}
        async with service.sessions() as session:
            feed = await session.get(BankFeed, "cus-1")
        assert feed is not None and feed.last_click_at is None and feed.lock_owner is None
        company = service.sandbox.store.companies[feed.company_id]
        assert company.tags == {"bankfeedsCustomerId": "cus-1"}

        service.sandbox.calls.clear()
        response = await click(service)
        assert response.status_code == 302
        assert [(c.method, c.path) for c in service.sandbox.calls] == [
            ("GET", f"/companies/{feed.company_id}/connections/{feed.connection_id}")
        ]


async def test_gb_customers_and_customers_without_open_accounts_are_left_alone(
    watched: tuple[Service, WatchedCodat],
) -> None:
    service, _ = watched
    await add_customer(service.sessions, "cus-gb", country="GB", currency="GBP")
    await add_customer(service.sessions, "cus-none", accounts=0)
    await add_customer(service.sessions, "cus-closed", accounts=1)
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-closed", "cus-closed-acc-0"))
        assert account is not None
        account.closed_at = service.sandbox.clock.now()
        await session.commit()

    report = await provisioner(service).run_once()

    assert report.provisioned == [] and report.failed == []
    assert service.sandbox.calls == []


async def test_the_quota_share_stops_it_for_the_day(watched: tuple[Service, WatchedCodat]) -> None:
    service, _ = watched
    # Codat allows 40 requests today; the background share is a quarter: 10, so 3 customers'
    # worth at most, and fewer once Codat's own count says the clicks need theirs.
    service.app.state.sandbox_app.state.faults.configure(FaultConfig(daily_quota=40))
    for n in range(5):
        await add_customer(service.sessions, f"cus-{n}", accounts=1)
    job = provisioner(service, quota_share=0.25)

    first = await job.run_once()

    assert first.out_of_quota and 1 <= len(first.provisioned) <= 3
    assert len(service.sandbox.calls) == 3 * len(first.provisioned) <= 10
    assert first.paused_until == next_quota_reset(service.sandbox.clock.now())
    service.sandbox.calls.clear()
    assert (await job.run_once()).provisioned == [] and service.sandbox.calls == []

    service.sandbox.clock.advance(first.paused_until - service.sandbox.clock.now())
    second = await job.run_once()  # a new day at Codat: a new share
    assert second.provisioned and set(second.provisioned).isdisjoint(first.provisioned)


async def test_a_click_during_provisioning_waits_and_nothing_is_duplicated(
    watched: tuple[Service, WatchedCodat], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, codat = watched
    await add_customer(service.sessions, accounts=3)
    click_waiting = asyncio.Event()
    try_lease = feeds.try_lease

    async def watched_lease(*args: Any, click: bool = False, **kwargs: Any) -> bool:
        won = await try_lease(*args, click=click, **kwargs)
        if click and not won:
            click_waiting.set()
        return won

    monkeypatch.setattr(feeds, "try_lease", watched_lease)
    clicked: list[asyncio.Task[httpx.Response]] = []

    async def click_meanwhile(request: httpx.Request) -> None:
        assert request.url.path == "/companies"  # the job's first write, under its lease
        clicked.append(asyncio.create_task(click(service)))
        await asyncio.wait_for(click_waiting.wait(), WAIT_SECONDS)

    codat.during_write = click_meanwhile
    report = await provisioner(service).run_once()
    response = await asyncio.wait_for(clicked[0], WAIT_SECONDS)

    assert report.provisioned == ["cus-1"]
    assert response.status_code == 302
    assert creates(service) == {"company": 1, "connection": 1, "accounts": 1}
    assert len(service.sandbox.calls) == 4  # the job's 3, then the click's one GET
    assert await provisioned(service, "cus-1")


async def test_replicas_provision_each_customer_once(
    watched: tuple[Service, WatchedCodat],
) -> None:
    service, _ = watched
    for n in range(4):
        await add_customer(service.sessions, f"cus-{n}", accounts=2)

    first, second = provisioner(service), provisioner(service)
    reports = await asyncio.gather(first.run_once(), second.run_once())
    for _ in range(2):  # what one replica found busy, a later round takes
        for job in (first, second):
            job.later.clear()
            await job.run_once()

    done = [c for r in reports for c in r.provisioned]
    assert len(done) == len(set(done))
    assert creates(service) == {"company": 4, "connection": 4, "accounts": 4}
    for n in range(4):
        assert await provisioned(service, f"cus-{n}")
    async with service.sessions() as session:
        spent = await quota.view(session, service.sandbox.clock.now())
    assert spent.background_used == 3 * 4  # paid only by the replica that did the work


async def test_a_crash_mid_provisioning_is_finished_by_a_later_round_without_duplicates(
    watched: tuple[Service, WatchedCodat],
) -> None:
    service, codat = watched
    await add_customer(service.sessions, accounts=2)
    job = provisioner(service, retry_budget_seconds=0.3)
    codat.lose_response_for = lambda request: request.url.path == "/companies"
    assert (await job.run_once()).failed == ["cus-1"]  # Codat made the company; no answer
    # What a process killed at that moment leaves: its lease, until the lease expires.
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None and feed.company_request_key and feed.company_id is None
        feed.lock_owner, feed.locked_until = "killed", utcnow() + timedelta(minutes=1)
        await session.commit()
    codat.lose_response_for = None
    job = provisioner(service)  # a new process
    assert await job.candidates() == []  # the dead process's lease still holds the customer

    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None
        feed.locked_until = utcnow() - timedelta(seconds=1)
        await session.commit()
    assert (await job.run_once()).provisioned == ["cus-1"]

    assert len(service.sandbox.store.companies) == 1  # the lost one, not a second
    assert await provisioned(service, "cus-1")


async def test_codat_failing_backs_off_and_a_later_round_resumes_without_duplicates(
    watched: tuple[Service, WatchedCodat],
) -> None:
    service, codat = watched
    await add_customer(service.sessions, "cus-1", accounts=2)
    await add_customer(service.sessions, "cus-2", accounts=1)
    job = provisioner(service, retry_budget_seconds=0.4)
    codat.lose_response_for = lambda request: request.url.path.endswith("/connections")
    codat.down_status = None

    lost = await job.run_once()  # the company is made; the connection's answer is lost

    assert lost.failed == ["cus-1"] and lost.paused_until is not None
    seen = len(codat.seen)
    assert (await job.run_once()).paused_until == lost.paused_until
    assert len(codat.seen) == seen  # backing off: no call until then

    codat.lose_response_for = None
    service.sandbox.clock.advance(lost.paused_until - service.sandbox.clock.now())
    resumed = await job.run_once()

    assert resumed.provisioned == ["cus-1", "cus-2"]
    assert len(service.sandbox.store.companies) == 2
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
    assert feed is not None
    company = service.sandbox.store.companies[feed.company_id]
    assert list(company.connections) == [feed.connection_id]  # the lost one adopted, not doubled


async def test_off_by_default_no_codat_call(database_url: str) -> None:
    assert Settings.model_fields["provision_ahead"].default is False
    await _truncate(database_url)
    async for service in start_service(database_url, run_background=True):
        jobs = service.services.background_jobs()
        assert not any(isinstance(getattr(j, "__self__", None), Provisioner) for j in jobs)
        assert (await put_customer(service)).status_code == 201
        assert (await put_account(service)).status_code == 201
        async with service.sessions() as session:
            feeds_made = (await session.execute(select(BankFeed))).scalars().all()
        assert feeds_made == [] and service.sandbox.calls == []

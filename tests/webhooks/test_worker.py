"""The inbox worker: retries with backoff, one claim per attempt across processes, restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, session_factory, utcnow
from app.webhooks import inbox
from app.webhooks.handlers import HANDLERS
from app.webhooks.inbox import InboxEvent, Outcome
from app.webhooks.worker import InboxWorker
from tests.conftest import WEBHOOK_SECRET, Service
from tests.webhooks.support import (
    at,
    connection_payload,
    deliver,
    envelope,
    events,
    feed,
    running,
    seed_feed,
)

CONNECTED = envelope("connection.connected", connection_payload("Linked"), at(10))


class Flaky:
    """Fails the first `failures` calls, then hands over to the real handler."""

    def __init__(self, failures: int, message: str = "database went away") -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    async def __call__(self, session: AsyncSession, event: InboxEvent) -> Outcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(self.message)
        return await HANDLERS[event.event_type](session, event)


class WorkerClock:
    """The worker's clock: stopped at its first reading, then moved only by the test."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        if self.now is None:
            self.now = utcnow()
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> WorkerClock:
    moved = WorkerClock()
    monkeypatch.setattr("app.webhooks.worker.utcnow", moved)
    return moved


async def wait_until_due(service: Service, clock: WorkerClock) -> None:
    """Move the worker's clock to the event's next attempt."""
    [row] = await events(service.sessions)
    assert row.next_attempt_at is not None
    clock.now = max(clock(), row.next_attempt_at)


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Poll `check` until it holds; fail if it does not within `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.02)


async def test_a_failure_is_retried_with_backoff_and_then_succeeds(
    service: Service, clock: WorkerClock
) -> None:
    await seed_feed(service.sessions)
    await deliver(service.client, CONNECTED)
    flaky = Flaky(2, message=f"cannot reach db with {WEBHOOK_SECRET}")
    base = timedelta(seconds=0.5)
    worker = service.services.inbox_worker(
        handlers={"connection.connected": flaky}, retry_base_seconds=base.total_seconds()
    )
    before = clock()
    await worker.run_once()
    [row] = await events(service.sessions)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith("RuntimeError: cannot reach")
    assert WEBHOOK_SECRET not in row.last_error  # secrets are redacted from stored errors
    assert row.next_attempt_at is not None
    first_delay = row.next_attempt_at - before
    assert base <= first_delay < 2 * base
    assert (await feed(service.sessions)).connection_status == "PendingAuth"  # rolled back

    await worker.run_once()  # not due yet: nothing happens
    assert flaky.calls == 1

    await wait_until_due(service, clock)
    before = clock()
    await worker.run_once()
    [row] = await events(service.sessions)
    assert (row.status, row.attempts) == ("pending", 2)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at - before >= 2 * base  # doubled

    await wait_until_due(service, clock)
    await worker.run_once()
    [row] = await events(service.sessions)
    assert (row.status, row.attempts, row.last_error) == ("handled", 3, None)
    assert (await feed(service.sessions)).connection_status == "Linked"
    assert flaky.calls == 3


async def test_gives_up_after_the_last_attempt(service: Service, clock: WorkerClock) -> None:
    await seed_feed(service.sessions)
    await deliver(service.client, CONNECTED)
    flaky = Flaky(99)
    worker = service.services.inbox_worker(
        handlers={"connection.connected": flaky},
        retry_base_seconds=0.01,
        max_attempts=3,
    )
    for _ in range(3):
        await worker.run_once()
        [row] = await events(service.sessions)
        if row.status == "pending":
            await wait_until_due(service, clock)
    [row] = await events(service.sessions)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert row.last_error == "RuntimeError: database went away"
    await worker.run_once()
    assert flaky.calls == 3


async def test_two_processes_handle_each_event_exactly_once(
    service: Service,
    database_url: str,
) -> None:
    for n in range(30):
        body = envelope(f"test.event.{n % 3}", {"n": n})
        assert (await deliver(service.client, body)).status_code == 202
    seen: Counter[int] = Counter()

    async def count(session: AsyncSession, event: InboxEvent) -> Outcome:
        seen[event.id] += 1
        await asyncio.sleep(0)  # let the other worker run in between
        return Outcome("handled")

    handlers = {f"test.event.{n}": count for n in range(3)}
    engines = [create_engine(database_url) for _ in range(2)]  # two "processes"
    try:
        workers = [InboxWorker(session_factory(e), handlers=handlers) for e in engines]
        made = await asyncio.gather(*(w.run_once() for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()
    rows = await events(service.sessions)
    assert len(rows) == 30 and {r.status for r in rows} == {"handled"}
    assert {r.attempts for r in rows} == {1}
    assert sorted(seen) == sorted(r.id for r in rows) and set(seen.values()) == {1}
    assert sum(made) >= 30


async def test_an_abandoned_claim_is_taken_over_after_its_lease(
    service: Service, clock: WorkerClock
) -> None:
    await seed_feed(service.sessions)
    await deliver(service.client, CONNECTED)
    [row] = await events(service.sessions)
    async with service.sessions() as session:  # a process claims it, then dies
        assert await inbox.claim(session, row.id, 0, utcnow(), timedelta(seconds=0.3))
        await session.commit()
    async with service.sessions() as session:  # and nobody else can claim that attempt
        assert not await inbox.claim(session, row.id, 0, utcnow(), timedelta(seconds=0.3))
    worker = service.services.inbox_worker()
    assert await worker.run_once() == 0
    await wait_until_due(service, clock)
    assert await worker.run_once() == 1
    [row] = await events(service.sessions)
    assert (row.status, row.attempts) == ("handled", 2)
    assert (await feed(service.sessions)).connection_status == "Linked"


async def test_a_restart_between_acceptance_and_handling_loses_nothing(database_url: str) -> None:
    async with running(database_url) as first:  # no background work: nothing is handled
        await seed_feed(first.sessions)
        assert (await deliver(first.client, CONNECTED)).status_code == 202
    async with running(
        database_url, fresh=False, run_background=True, webhook_poll_seconds=0.05
    ) as second:

        async def handled() -> bool:
            return [e.status for e in await events(second.sessions)] == ["handled"]

        await wait_for(handled)
        assert (await feed(second.sessions)).connection_status == "Linked"


async def test_a_new_event_wakes_the_worker_without_waiting_for_the_poll(
    database_url: str,
) -> None:
    async with running(database_url, run_background=True, webhook_poll_seconds=60.0) as service:
        await seed_feed(service.sessions)
        # A first event handled: the worker has looked, and now waits up to a minute.
        pending = envelope("connection.connected", connection_payload("PendingAuth"), at(5))
        assert (await deliver(service.client, pending)).status_code == 202

        async def settled() -> bool:
            return [e.status for e in await events(service.sessions)] == ["handled"]

        await wait_for(settled)
        await deliver(service.client, CONNECTED)

        async def linked() -> bool:
            return (await feed(service.sessions)).connection_status == "Linked"

        await wait_for(linked)  # well within the minute the poll would have taken


async def test_a_settled_write_wakes_the_push_job_once_it_is_committed(service: Service) -> None:
    """Codat's word that a push failed leaves the push job work to do at once (reading the
    failure back), so the worker wakes it; other events do not."""
    await seed_feed(service.sessions)
    written = envelope(
        "bankTransactions.write.unsuccessful",
        {"id": "00000000-0000-4000-8000-000000000001", "type": "Create", "status": "Failed"},
        at(11),
    )
    woken: list[str] = []

    async def handled(session: AsyncSession, event: InboxEvent) -> Outcome:
        woken.append(f"handled {event.event_type}")
        return Outcome("handled")

    worker = service.services.inbox_worker(
        handlers=dict.fromkeys(HANDLERS, handled),
        wakes={"bankTransactions.write.unsuccessful": lambda: woken.append("push job")},
    )
    await deliver(service.client, CONNECTED)
    await worker.run_once()
    await deliver(service.client, written)
    await worker.run_once()

    assert woken == [
        "handled connection.connected",
        "handled bankTransactions.write.unsuccessful",
        "push job",
    ]
    default = service.services.inbox_worker()
    assert set(default.wakes) == {
        "bankTransactions.write.successful",
        "bankTransactions.write.unsuccessful",
    }
    default.wakes["bankTransactions.write.unsuccessful"]()
    assert service.services.push_signal.is_set()

"""Proof 6: Codat answers 503 for a long time. The service stays up, reads answer from the
database, background work backs off instead of spinning, and it recovers by itself."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from app.codat.client import MAX_ATTEMPTS
from app.db import utcnow
from app.sandbox.faults import FaultConfig, FaultInjector
from app.sandbox.state import ConnectionStatus
from tests.conftest import Service, _truncate, start_service
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import click, link_ids

CUSTOMERS = 4
WINDOW = 12.0  # seconds of outage watched
RECONCILER_INTERVAL = 0.5  # seconds: the first backoff; it doubles on each failed round
# Codat requests while one click or refresh runs: its own bounded attempts, plus the odd
# reconciler round; a retry loop without a budget makes hundreds.
RETRIES_BOUND = 3 * MAX_ATTEMPTS
BUSY_LOOP_BOUND = 80  # requests in the window; a retry loop without backoff makes thousands


@pytest.mark.slow
async def test_codat_down_the_service_stays_up_backs_off_and_recovers(
    database_url: str, record: Record
) -> None:
    await _truncate(database_url)
    async for service in start_service(
        database_url,
        run_background=True,
        reconciler_enabled=True,
        reconciler_poll_while_webhooks_healthy=True,  # this proof is about polling Codat
        reconciler_interval_seconds=RECONCILER_INTERVAL,
        reconciler_pending_interval_seconds=RECONCILER_INTERVAL,
        background_retry_budget_seconds=1.0,
        connect_retry_budget_seconds=1.0,
        webhook_poll_seconds=0.5,
    ):
        await _outage(service, record)
    await _truncate(database_url)


async def _outage(service: Service, record: Record) -> None:
    customers = [f"cus-down-{n}" for n in range(CUSTOMERS)]
    for customer_id in customers:
        await add_customer(service.sessions, customer_id, accounts=2)
        assert (await click(service.client, customer_id)).status_code == 302
    polled = await _wait_for(
        lambda: _reconciler_calls(service, utcnow() - timedelta(seconds=5)) > 0, 10
    )
    assert polled, "the reconciler never read Codat before the outage"
    faults: FaultInjector = service.app.state.sandbox_app.state.faults
    ops = service.ops_headers

    faults.configure(FaultConfig(status_rates={503: 1.0}))
    down_at = utcnow()
    health: list[tuple[int, int, int, float]] = []
    started = time.monotonic()
    while time.monotonic() - started < WINDOW:  # only requests that must not touch Codat
        began = time.monotonic()
        live = await service.client.get("/healthz")
        ready = await service.client.get("/readyz")
        status = await service.client.get(f"/ops/customers/{customers[0]}/bank-feed", headers=ops)
        health.append(
            (live.status_code, ready.status_code, status.status_code, time.monotonic() - began)
        )
        await asyncio.sleep(0.5)
    window_calls = [c for c in service.sandbox.calls if c.at >= down_at]
    half = down_at + timedelta(seconds=WINDOW / 2)
    first_half = sum(c.at < half for c in window_calls)
    second_half = len(window_calls) - first_half

    began, before = time.monotonic(), len(service.sandbox.calls)
    page = await click(service.client, customers[1])
    click_seconds, click_calls = time.monotonic() - began, len(service.sandbox.calls) - before
    began, before = time.monotonic(), len(service.sandbox.calls)
    refreshed = await service.client.get(
        f"/ops/customers/{customers[1]}/bank-feed?refresh=true", headers=ops
    )
    refresh_seconds = time.monotonic() - began
    refresh_calls = len(service.sandbox.calls) - before

    # Codat comes back, and meanwhile the customer connected in QuickBooks (no webhook sent).
    faults.configure(FaultConfig())
    back_at = time.monotonic()
    connection_id = link_ids((await click(service.client, customers[2])).headers["location"])[1]
    for company in service.sandbox.store.companies.values():
        if connection_id in company.connections:
            company.connections[connection_id].status = ConnectionStatus.LINKED
    recovered = await _wait_for(lambda: _linked(service, customers[2]), 40)
    recovery = time.monotonic() - back_at
    status = await service.client.get(f"/ops/customers/{customers[2]}/bank-feed", headers=ops)

    record(
        "outage",
        {
            "outage watched (s)": WINDOW,
            "Codat requests during it": len(window_calls),
            "- in the first half / second half": f"{first_half} / {second_half}",
            "requests per second": round(len(window_calls) / WINDOW, 2),
            "health and status rounds": len(health),
            "- /healthz, /readyz, ops status all 200": sum(
                h[:3] == (200, 200, 200) for h in health
            ),
            "- slowest round (ms)": round(max(h[3] for h in health) * 1000),
            "a click during the outage": (
                f"{page.status_code} in {click_seconds:.2f} s, {click_calls} Codat requests"
            ),
            "ops refresh=true during it": (
                f"{refreshed.status_code} in {refresh_seconds:.2f} s, {refresh_calls} requests"
            ),
            "recovered by itself (no click, no webhook)": recovered,
            "- seconds until the change was read": round(recovery, 1),
        },
    )

    assert all(h[:3] == (200, 200, 200) for h in health), health
    assert len(window_calls) <= BUSY_LOOP_BOUND, len(window_calls)
    assert second_half <= first_half  # the reconciler backs off: fewer calls as it lasts
    assert all(c.status == 503 for c in window_calls)
    # Each gives up within its retry budget: a few requests to Codat, not a retry loop.
    assert page.status_code == 503 and 0 < click_calls <= RETRIES_BOUND, click_calls
    assert refreshed.status_code == 503 and 0 < refresh_calls <= RETRIES_BOUND, refresh_calls
    assert recovered, "the reconciler did not read Codat again after it came back"
    assert status.json()["connection_status"] == "Linked"


def _reconciler_calls(service: Service, since: object) -> int:
    return sum(1 for c in service.sandbox.calls if c.method == "GET" and c.at >= since)


async def _linked(service: Service, customer_id: str) -> bool:
    from app.models import BankFeed

    async with service.sessions() as session:
        feed = await session.get(BankFeed, customer_id, populate_existing=True)
    return feed is not None and feed.connection_status == "Linked"


async def _wait_for(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome = check()  # type: ignore[operator]
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return True
        await asyncio.sleep(0.2)
    return False

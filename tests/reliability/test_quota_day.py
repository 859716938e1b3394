"""Proof: one simulated day of 1,000 customers on Codat's daily quota.

Every customer clicks Connect; 30% abandon the Link page (their feed stays PendingAuth), the
rest link in QuickBooks. Webhooks do not reach the service, so the reconciler polls. The day
runs on the sandbox's movable clock, shared with the reconciler, on a daily quota tight enough
(6,000) that polling alone would spend it. Background requests stay in their share, no click is
refused for quota, and every abandoned customer can still connect.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.bank_feeds.reconciler import Reconciler
from app.events.outbox import announce
from app.models import BankFeed, CodatQuotaDay
from app.sandbox.faults import FaultConfig
from tests.conftest import _truncate, start_service
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import click

CUSTOMERS = 1000
ABANDON_EVERY = 10  # customers n % 10 < 3: 30%
SHARE = 0.25
DAILY_QUOTA = 6000  # clicks need about 3,300; polling every feed would want far more
STEP = timedelta(minutes=5)


@pytest.mark.slow
async def test_a_day_of_1000_customers_stays_within_codats_quota(
    database_url: str, record: Record
) -> None:
    await _truncate(database_url)
    async for service in start_service(
        database_url, codat_webhook_secret=None, connect_retry_budget_seconds=5.0
    ):
        sandbox = service.sandbox
        faults = service.app.state.sandbox_app.state.faults
        faults.configure(FaultConfig(daily_quota=DAILY_QUOTA))
        # Start the day at 00:00 UTC on the sandbox's clock: one quota day, start to end.
        now = sandbox.clock.now()
        sandbox.clock.advance(
            (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0) - now
        )
        reconciler = Reconciler(
            service.sessions,
            service.services.codat,
            announce=announce,
            quota_share=SHARE,
            budget_per_minute=10_000,
            retry_budget_seconds=5.0,
            clock=sandbox.clock.now,
        )
        ids = [f"day-{n:04d}" for n in range(CUSTOMERS)]
        for customer_id in ids:
            await add_customer(service.sessions, customer_id, accounts=1)
        abandoned = [c for n, c in enumerate(ids) if n % ABANDON_EVERY < 3]

        refused: list[int] = []
        out_of_quota = False
        for start in range(0, CUSTOMERS, 50):  # customers arrive through the morning
            batch = ids[start : start + 50]
            responses = await asyncio.gather(*(_connect(service.client, c) for c in batch))
            refused += [r.status_code for r in responses if r.status_code != 302]
            for customer_id in batch:
                if customer_id not in abandoned:
                    _link(sandbox, customer_id)
            sandbox.clock.advance(timedelta(minutes=1))
            out_of_quota |= (await reconciler.run_once()).out_of_quota

        end = sandbox.clock.now().replace(hour=23, minute=55)
        rounds = 0
        while sandbox.clock.now() < end and rounds < 400:
            out_of_quota |= (await reconciler.run_once()).out_of_quota
            sandbox.clock.advance(STEP)
            rounds += 1
        day_calls = [c for c in sandbox.calls if c.at.date() == end.date()]
        quota_refusals = [c for c in day_calls if c.fault == "quota"]
        limit = faults.daily_limit
        async with service.sessions() as session:
            [quota_row] = (await session.scalars(select(CodatQuotaDay))).all()
        retries = await asyncio.gather(*(_connect(service.client, c) for c in abandoned))
        async with service.sessions() as session:
            feeds = {f.customer_id: f for f in await session.scalars(select(BankFeed))}

    record(
        "quota",
        {
            "customers": CUSTOMERS,
            "abandoned the Link page": len(abandoned),
            "Codat requests that day": len(day_calls),
            "daily quota at the end": limit,
            "background requests": reconciler.background_requests,
            "background share": int(limit * SHARE),
            "clicks refused": len(refused),
            "429 for quota": len(quota_refusals),
        },
        variant="one simulated day",
    )
    assert refused == [] and quota_refusals == []
    assert limit == DAILY_QUOTA == quota_row.daily_limit  # read from X-Rate-Limit-Limit
    assert quota_row.background_used == reconciler.background_requests
    assert reconciler.background_requests <= DAILY_QUOTA * SHARE
    assert out_of_quota  # polling wanted more than its share and was held to it
    assert all(r.status_code == 302 for r in retries)  # every abandoned customer reconnects
    assert all(feeds[c].connection_status == "PendingAuth" for c in abandoned)


async def _connect(client: httpx.AsyncClient, customer_id: str) -> httpx.Response:
    """A click; a customer shown "try again in a moment" (a slow machine) clicks again."""
    for _ in range(3):
        response = await click(client, customer_id)
        if response.status_code != 503:
            break
    return response


def _link(sandbox: object, customer_id: str) -> None:
    """The customer finishes in QuickBooks: every source account connected."""
    store = sandbox.store  # type: ignore[attr-defined]
    for company in store.companies.values():
        if company.tags.get("bankfeedsCustomerId") == customer_id:
            for connection in company.connections.values():
                today = sandbox.clock.today()  # type: ignore[attr-defined]
                sandbox.bank_feeds.connect_accounts(  # type: ignore[attr-defined]
                    connection, list(connection.source_accounts), today
                )

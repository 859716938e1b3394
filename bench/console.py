"""Operations staff in the console: every page, signed in as a browser is, over the database the
ops scenario populated, with a webhook inbox of realistic size."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.load import Request, closed_loop
from bench.stack import BenchFailure, Stack
from bench.stats import summarize

FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')
EVENT_COLUMNS = (
    "webhook_id",
    "event_type",
    "generated_date",
    "payload",
    "company_id",
    "customer_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "received_at",
    "handled_at",
)
# How the seeded inbox is spread over the handling statuses.
EVENT_STATUSES = (("handled", 0.9), ("ignored", 0.04), ("unmatched", 0.03), ("failed", 0.03))
EVENT_TYPES = (
    "connection.connected",
    "bankFeeds.sourceAccount.connected",
    "bankFeeds.sourceAccount.disconnected",
)


async def seed_events(dsn: str, customer_ids: list[str], count: int, seed: int = 13) -> None:
    """`count` settled webhook events over the last 30 days, written with COPY."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    statuses = [s for s, _ in EVENT_STATUSES]
    weights = [w for _, w in EVENT_STATUSES]
    rows = []
    for n in range(count):
        status = rng.choices(statuses, weights)[0]
        received = now - timedelta(seconds=rng.randint(60, 30 * 86400))
        customer = None if status == "unmatched" else rng.choice(customer_ids)
        rows.append(
            (
                f"msg_bench_{n:07d}",
                rng.choice(EVENT_TYPES),
                received,
                json.dumps({"connectionId": f"bench-{n}"}),
                None,
                customer,
                status,
                8 if status == "failed" else 1,
                None,
                "handler failed: timed out" if status == "failed" else None,
                received,
                received + timedelta(seconds=1),
            )
        )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("codat_events", records=rows, columns=EVENT_COLUMNS)
        await conn.execute("VACUUM ANALYZE codat_events")
    finally:
        await conn.close()


async def sign_in(client: httpx.AsyncClient, token: str) -> None:
    """As a browser: the form (its CSRF cookie and token), then the ops token."""
    form = await client.get("/console/sign-in")
    found = FORM_TOKEN.search(form.text)
    if form.status_code != 200 or found is None:
        raise BenchFailure(f"console sign-in form answered {form.status_code}")
    answer = await client.post(
        "/console/sign-in", data={"token": token, "csrf": found.group(1), "next": "/console/"}
    )
    if answer.status_code != 303 or "console_session" not in client.cookies:
        raise BenchFailure(f"console sign-in answered {answer.status_code}: {answer.text[:300]}")


def _pages(customer_ids: list[str], client: httpx.AsyncClient) -> dict[str, Request]:
    """Each page the console has, as a request; the list pages walk their keyset cursor."""
    rng = random.Random(17)
    picks = [rng.choice(customer_ids) for _ in range(1000)]
    next_page: list[str | None] = [None]

    async def get(path: str, **params: Any) -> str:
        response = await client.get(path, params=params)
        if response.status_code != 200:
            return f"http {response.status_code}"
        if 'id="sign-out"' not in response.text:
            return "signed out"
        return "ok"

    async def overview(_worker: int, _index: int) -> str:
        return await get("/console/")

    async def customers_walk(_worker: int, _index: int) -> str:
        response = await client.get(next_page[0] or "/console/customers")
        found = re.search(r'href="([^"]+)" id="next-page"', response.text)
        next_page[0] = found.group(1).replace("&amp;", "&") if found else None
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    async def customers_search(_worker: int, index: int) -> str:
        return await get("/console/customers", q=picks[index % len(picks)][:8])

    async def customers_needing(_worker: int, _index: int) -> str:
        return await get("/console/customers", needs_customer_action="true")

    async def customer(_worker: int, index: int) -> str:
        return await get(f"/console/customers/{picks[index % len(picks)]}")

    async def offboard(_worker: int, index: int) -> str:
        return await get(f"/console/customers/{picks[index % len(picks)]}/offboard")

    async def events(_worker: int, _index: int) -> str:
        return await get("/console/events")

    async def events_failed(_worker: int, _index: int) -> str:
        return await get("/console/events", status="failed")

    async def audit(_worker: int, _index: int) -> str:
        return await get("/console/audit")

    return {
        "overview": overview,
        "customers, page after page": customers_walk,
        "customers, search": customers_search,
        "customers, needing action": customers_needing,
        "customer": customer,
        "offboard confirmation": offboard,
        "events": events,
        "events, failed": events_failed,
        "audit log": audit,
    }


async def customer_ids(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["id"] for r in await conn.fetch("select id from customers order by id")]
    finally:
        await conn.close()


async def console_pages(stack: Stack) -> dict[str, Any]:
    """Every console page, one request at a time (a person at a desk), p50/p95/p99 each."""
    config = stack.config
    ids = await customer_ids(stack.db_dsn)
    await seed_events(stack.db_dsn, ids, config.console_events)
    results: dict[str, Any] = {"events_seeded": config.console_events, "pages": {}}
    async with httpx.AsyncClient(
        base_url=stack.service_url, follow_redirects=False, timeout=httpx.Timeout(30.0)
    ) as client:
        await sign_in(client, stack.secrets.ops_api_token)
        async with stack.rss.track("console"):
            for name, request in _pages(ids, client).items():
                await closed_loop(request, 1, duration_s=5.0, max_requests=5)  # warm-up
                measured, cpu = await stack.measure(
                    request, 1, config.console_seconds, config.console_requests
                )
                results["pages"][name] = {
                    "latency_ms": summarize(measured.latencies_ms),
                    "errors": dict(measured.errors),
                    "cpu": cpu,
                }
    stack.check_alive()
    return results

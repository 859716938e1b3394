"""Proof 3: many simultaneous clicks by one customer, on one process and on two processes
sharing Postgres: one of everything in Codat, and every click a working Link page."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _truncate, start_service
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import (
    audit,
    calls_json,
    calls_summary,
    click,
    db_name,
    link_ids,
    sandbox_admin,
    service_process,
)
from tests.servers import against_sandbox, run_sandbox_process

ACCOUNTS = 5


async def test_fifty_clicks_at_once_on_one_process(database_url: str, record: Record) -> None:
    clicks = 50
    await _truncate(database_url)
    async for service in start_service(database_url, connect_retry_budget_seconds=4.0):
        await add_customer(service.sessions, "cus-busy", accounts=ACCOUNTS)
        started = time.monotonic()
        responses = await asyncio.gather(
            *(click(service.client, "cus-busy") for _ in range(clicks))
        )
        elapsed = time.monotonic() - started
        redirects = [r for r in responses if r.status_code == 302]
        pages = await asyncio.gather(
            *(service.client.get(r.headers["location"]) for r in redirects)
        )
        result = await audit(service.sessions, service.sandbox.store.snapshot(), ["cus-busy"])
        calls = calls_json(service.sandbox)
        figures = _figures(clicks, responses, pages, calls, elapsed)
        record(
            "concurrency",
            {**figures, **result.figures()},
            variant=f"one process, {db_name(database_url)}",
        )

        _check(clicks, responses, pages, calls, result.problems)
        assert (result.companies, result.connections, result.accounts) == (1, 1, ACCOUNTS)
    await _truncate(database_url)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_hundred_clicks_across_two_processes(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    clicks = 100
    await add_customer(sessions, "cus-replicas", accounts=ACCOUNTS)
    with run_sandbox_process(tmp_path) as sandbox:
        env = against_sandbox(sandbox)
        with (
            service_process(database_url, tmp_path, env) as one,
            service_process(database_url, tmp_path, env) as two,
        ):
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                started = time.monotonic()
                responses = await asyncio.gather(
                    *(
                        click(client, "cus-replicas", (one if n % 2 else two).url)
                        for n in range(clicks)
                    )
                )
                elapsed = time.monotonic() - started
                redirects = [r for r in responses if r.status_code == 302]
                pages = await asyncio.gather(
                    *(client.get(r.headers["location"]) for r in redirects)
                )
                state = await sandbox_admin(client, sandbox, "state")
                calls = await sandbox_admin(client, sandbox, "calls")
    result = await audit(sessions, state, ["cus-replicas"])
    figures = _figures(clicks, responses, pages, calls, elapsed)
    record("concurrency", {**figures, **result.figures()}, variant="two processes, postgres")

    _check(clicks, responses, pages, calls, result.problems)
    assert (result.companies, result.connections, result.accounts) == (1, 1, ACCOUNTS)
    await _truncate(database_url)


def _figures(
    clicks: int,
    responses: list[httpx.Response],
    pages: list[httpx.Response],
    calls: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    creates = Counter(c["route"] for c in calls if c["method"] == "POST")
    return {
        "simultaneous clicks": clicks,
        "answers": {
            str(k): v for k, v in sorted(Counter(r.status_code for r in responses).items())
        },
        "distinct one-time passwords": len({r.headers.get("location") for r in responses}),
        "Link pages loading (200)": sum(p.status_code == 200 for p in pages),
        "Codat creates per route (max)": max(creates.values(), default=0),
        "wall time (s)": round(elapsed, 2),
        **calls_summary(calls),
    }


def _check(
    clicks: int,
    responses: list[httpx.Response],
    pages: list[httpx.Response],
    calls: list[dict[str, Any]],
    problems: dict[str, list[str]],
) -> None:
    assert [r.status_code for r in responses] == [302] * clicks
    assert len({r.headers["location"] for r in responses}) == clicks  # a fresh OTP each
    assert len({link_ids(r.headers["location"]) for r in responses}) == 1
    assert [p.status_code for p in pages] == [200] * clicks
    creates = Counter(c["route"] for c in calls if c["method"] == "POST")
    assert creates and all(n == 1 for n in creates.values()), creates
    assert problems == {}

"""Proof 2: SIGKILL the service anywhere in the connect flow, restart it, click again: one
company, one connection, each account once, nothing orphaned in Codat."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import BankFeed, SourceAccount
from tests.conftest import _truncate
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import (
    CUSTOMER_TAG,
    audit,
    calls_summary,
    click,
    link_ids,
    sandbox_admin,
    sandbox_process,
    service_process,
)
from tests.servers import Process, against_sandbox

ROUNDS = 4
CUSTOMERS_PER_ROUND = 6  # each customer is one trial: its flow is cut at its own random point
MAX_CLICKS = 5
SEED = 4242
STAGES = (
    "before the company",
    "company in Codat, id not stored",
    "company stored, no connection",
    "connection in Codat, id not stored",
    "connection stored, accounts not all in Codat",
    "accounts in Codat, not all marked pushed",
    "complete",
)


@pytest.mark.slow
async def test_sigkill_anywhere_then_click_again(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    rng = random.Random(SEED)
    rounds = [[f"crash-{r}-{n}" for n in range(CUSTOMERS_PER_ROUND)] for r in range(ROUNDS + 1)]
    for n, customer_id in enumerate(c for group in rounds for c in group):
        await add_customer(sessions, customer_id, accounts=1 + n % 3)
    warm_up, trials = rounds[0], [c for group in rounds[1:] for c in group]
    stages: Counter[str] = Counter()
    cut_clicks = 0
    kill_points: list[int] = []
    recoveries: list[float] = []
    recovery_pages: Counter[int] = Counter()
    finals: dict[str, httpx.Response] = {}

    processes: list[Process] = []
    with sandbox_process(tmp_path, "--latency-ms", "30", "--jitter-ms", "10") as sandbox:
        env = against_sandbox(sandbox)
        running = ExitStack()

        def start() -> Process:
            process = running.enter_context(service_process(database_url, tmp_path, env))
            processes.append(process)
            return process

        async with httpx.AsyncClient(timeout=60) as client:
            try:
                process = start()
                started = time.monotonic()
                warm = await asyncio.gather(*(click(client, c, process.url) for c in warm_up))
                assert [r.status_code for r in warm] == [302] * len(warm_up)
                for group in rounds[1:]:
                    # Kill after a random number of this round's Codat writes (3 per customer),
                    # plus a random few ms, so the cut falls between any two steps of a flow.
                    before = len(await sandbox_admin(client, sandbox, "calls"))
                    target = rng.randrange(0, 3 * len(group))
                    clicks = [
                        asyncio.create_task(_click_after(client, process, c, rng.uniform(0, 0.1)))
                        for c in group
                    ]
                    seen = await _wait_for_calls(client, sandbox, before + target)
                    await asyncio.sleep(rng.uniform(0, 0.04))
                    process.kill()  # SIGKILL: no shutdown, no finally, no lease released
                    kill_points.append(seen - before)
                    cut_clicks += sum(r is None for r in await asyncio.gather(*clicks))
                    state = await sandbox_admin(client, sandbox, "state")
                    for customer_id in group:
                        stages[await _stage(sessions, state, customer_id)] += 1
                    running.close()
                    process = start()
                    outcomes = await asyncio.gather(
                        *(_until_redirect(client, process, c) for c in group)
                    )
                    for customer_id, (statuses, final, seconds) in zip(
                        group, outcomes, strict=True
                    ):
                        recovery_pages.update(statuses)
                        recoveries.append(seconds)
                        finals[customer_id] = final
                pages = await asyncio.gather(
                    *(client.get(r.headers["location"]) for r in finals.values() if r.is_redirect)
                )
                state = await sandbox_admin(client, sandbox, "state")
                calls = await sandbox_admin(client, sandbox, "calls")
                elapsed = time.monotonic() - started
            finally:
                running.close()
    logs = "".join(p.log() for p in processes)

    everyone = warm_up + trials
    result = await audit(sessions, state, everyone)
    feeds = await _feed_ids(sessions)
    wrong_link = [
        c
        for c, r in finals.items()
        if r.is_redirect and link_ids(r.headers["location"]) != feeds[c]
    ]
    record(
        "crash",
        {
            "trials (customers whose flow was cut)": len(trials),
            "SIGKILLs (each followed by a restart)": len(kill_points),
            "service processes": len(processes),
            "Codat writes of the round seen before each kill": kill_points,
            "clicks cut off by the kill": cut_clicks,
            "where the kill found each trial": {s: stages[s] for s in STAGES if stages[s]},
            "pages on the click after restart": {
                str(k): v for k, v in sorted(recovery_pages.items())
            },
            "time to a 302 after restart, s (median / max)": (
                f"{statistics.median(recoveries):.2f} / {max(recoveries):.2f}"
            ),
            "302 to another customer's link": len(wrong_link),
            "Link pages loading (200)": sum(p.status_code == 200 for p in pages),
            "wall time (s)": round(elapsed, 1),
            **calls_summary(calls),
            **result.figures(),
        },
    )

    assert all(r.status_code == 302 for r in finals.values()), recovery_pages
    assert len(finals) == len(trials)
    assert [p.status_code for p in pages] == [200] * len(trials)
    assert wrong_link == []
    assert result.problems == {}
    assert result.companies == result.connections == len(everyone)
    assert "Traceback" not in logs
    # The kills really landed inside flows, not only before or after them.
    assert cut_clicks >= len(trials) // 3
    assert sum(stages[s] for s in STAGES[1:-1]) >= len(trials) // 4, stages
    await _truncate(database_url)


async def _wait_for_calls(client: httpx.AsyncClient, sandbox: Process, count: int) -> int:
    """Poll the sandbox's call log until it holds `count` calls (or 10 s pass)."""
    deadline = time.monotonic() + 10
    while True:
        seen = len(await sandbox_admin(client, sandbox, "calls"))
        if seen >= count or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.003)


async def _click_after(
    client: httpx.AsyncClient, process: Process, customer_id: str, delay: float
) -> int | None:
    await asyncio.sleep(delay)
    try:
        return (await click(client, customer_id, process.url)).status_code
    except httpx.TransportError:
        return None  # the process died under this click


async def _until_redirect(
    client: httpx.AsyncClient, process: Process, customer_id: str
) -> tuple[list[int], httpx.Response, float]:
    started = time.monotonic()
    statuses: list[int] = []
    for _ in range(MAX_CLICKS):
        response = await click(client, customer_id, process.url)
        statuses.append(response.status_code)
        if response.status_code != 503:
            break
    return statuses, response, time.monotonic() - started


async def _stage(sessions: Any, state: dict[str, Any], customer_id: str) -> str:
    """How far the customer's flow got before the kill, from Codat's side and ours."""
    async with sessions() as session:
        feed = await session.get(BankFeed, customer_id)
        accounts = (
            (
                await session.execute(
                    select(SourceAccount).where(SourceAccount.customer_id == customer_id)
                )
            )
            .scalars()
            .all()
        )
    owned = [c for c in state["companies"] if c["tags"].get(CUSTOMER_TAG) == customer_id]
    if not owned:
        return STAGES[0]
    if feed is None or feed.company_id is None:
        return STAGES[1]
    connections = [x for c in owned for x in c["connections"]]
    if not connections:
        return STAGES[2]
    if feed.connection_id is None:
        return STAGES[3]
    in_codat = {a["id"] for x in connections for a in x["sourceAccounts"]}
    if not all(a.id in in_codat for a in accounts):
        return STAGES[4]
    if not all(a.is_pushed for a in accounts):
        return STAGES[5]
    return STAGES[6]


async def _feed_ids(sessions: Any) -> dict[str, tuple[str | None, str | None]]:
    async with sessions() as session:
        feeds = (await session.execute(select(BankFeed))).scalars().all()
    return {f.customer_id: (f.company_id, f.connection_id) for f in feeds}

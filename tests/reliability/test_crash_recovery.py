"""Proof 2: SIGKILL the service at each stage of the connect flow (a kill point armed in the
service process), restart it, click again: one company, one connection, each account once,
nothing orphaned in Codat."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.kill_points import CLICK_STAGES, ENV
from app.models import BankFeed, SourceAccount
from tests.conftest import _truncate
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import (
    CUSTOMER_TAG,
    audit,
    calls_summary,
    click,
    creates,
    link_ids,
    sandbox_admin,
    sandbox_process,
    service_process,
)
from tests.servers import Process, against_sandbox

KILLS_PER_STAGE = 3
MAX_CLICKS = 5
# Where the kill left each trial, read back from Codat's side and ours.
STAGES = (
    "before the company",
    "company in Codat, id not stored",
    "company stored, no connection",
    "connection in Codat, id not stored",
    "connection stored, accounts not all in Codat",
    "accounts in Codat, not all marked pushed",
    "complete",
)
# The stage the kill must leave each armed point in (the read-back above agrees with the point).
EXPECTED = {
    "company requested": STAGES[0],
    "company created": STAGES[1],
    "company stored": STAGES[2],
    "connection requested": STAGES[2],
    "connection created": STAGES[3],
    "connection stored": STAGES[4],
    "accounts created": STAGES[5],
    "committed": STAGES[6],
}


@pytest.mark.slow
async def test_sigkill_at_every_stage_of_a_click_then_click_again(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    """Each stage of the click is killed `KILLS_PER_STAGE` times, by a kill point armed in the
    service process: the flow dies exactly there, then a restarted service finishes it."""
    trials = {
        f"crash-{n}-{k}": stage
        for n, stage in enumerate(CLICK_STAGES)
        for k in range(KILLS_PER_STAGE)
    }
    for n, customer_id in enumerate(trials):
        await add_customer(sessions, customer_id, accounts=1 + n % 3)
    killed: Counter[str] = Counter()
    found: dict[str, str] = {}
    recoveries: list[float] = []
    recovery_pages: Counter[int] = Counter()
    finals: dict[str, httpx.Response] = {}
    logs: list[str] = []

    with sandbox_process(tmp_path, "--latency-ms", "5") as sandbox:
        env = against_sandbox(sandbox)
        async with httpx.AsyncClient(timeout=60) as client:
            started = time.monotonic()
            for customer_id, stage in trials.items():  # one armed service process each
                with service_process(database_url, tmp_path, {**env, ENV: stage}) as armed:
                    await _click_once(client, customer_id, armed)
                    if _died_by_sigkill(armed):
                        killed[stage] += 1
                    logs.append(armed.log())
                state = await sandbox_admin(client, sandbox, "state")
                found[customer_id] = await _stage(sessions, state, customer_id)
            with service_process(database_url, tmp_path, env) as process:
                outcomes = await asyncio.gather(
                    *(_until_redirect(client, process, c) for c in trials)
                )
                for customer_id, (statuses, final, seconds) in zip(trials, outcomes, strict=True):
                    recovery_pages.update(statuses)
                    recoveries.append(seconds)
                    finals[customer_id] = final
                pages = await asyncio.gather(
                    *(client.get(r.headers["location"]) for r in finals.values() if r.is_redirect)
                )
                logs.append(process.log())
            state = await sandbox_admin(client, sandbox, "state")
            calls = await sandbox_admin(client, sandbox, "calls")
            elapsed = time.monotonic() - started

    result = await audit(sessions, state, list(trials))
    created = creates(calls)
    feeds = await _feed_ids(sessions)
    wrong_link = [
        c
        for c, r in finals.items()
        if r.is_redirect and link_ids(r.headers["location"]) != feeds[c]
    ]
    misplaced = {c: (trials[c], found[c]) for c in trials if found[c] != EXPECTED[trials[c]]}
    record(
        "crash",
        {
            "trials (one SIGKILL each, then a restart)": len(trials),
            "SIGKILLs by stage": {s: killed[s] for s in CLICK_STAGES},
            "where Codat and the database showed the kill had left each trial": dict(
                sorted(Counter(found.values()).items(), key=lambda kv: STAGES.index(kv[0]))
            ),
            "kills not where they were armed": len(misplaced),
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
            "companies created (Codat's call log)": created["company"],
            "connections created (Codat's call log)": created["connection"],
            **result.figures(),
        },
    )

    assert killed == dict.fromkeys(CLICK_STAGES, KILLS_PER_STAGE), killed
    assert misplaced == {}
    assert all(r.status_code == 302 for r in finals.values()), recovery_pages
    assert [p.status_code for p in pages] == [200] * len(trials)
    assert wrong_link == []
    assert result.problems == {}
    assert result.companies == result.connections == len(trials)
    assert created == {"company": len(trials), "connection": len(trials)}, created
    assert "Traceback" not in "".join(logs)
    await _truncate(database_url)


async def _click_once(client: httpx.AsyncClient, customer_id: str, process: Process) -> None:
    with contextlib.suppress(httpx.TransportError):  # the process dies under it, as armed
        await click(client, customer_id, process.url)


def _died_by_sigkill(process: Process) -> bool:
    """Whether the service process ended by SIGKILL (waits up to 10 s for it to end)."""
    try:
        return process.proc.wait(timeout=10) == -signal.SIGKILL
    except subprocess.TimeoutExpired:
        return False


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

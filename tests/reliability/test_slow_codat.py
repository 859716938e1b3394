"""Proof 8: Codat answers later than the client's timeout, over real sockets. A click gives up
within its retry budget and a background job gives up and backs off: neither waits for the
late answer, and the service keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import click, sandbox_admin, sandbox_process, service_process
from tests.servers import Process, against_sandbox, sandbox_headers

CLIENT_TIMEOUT = 1.0  # CODAT_TIMEOUT_SECONDS
BUDGET = 2.0  # the click's and the background jobs' retry budgets
LATENCY = 8.0  # seconds Codat takes to answer: well past both
SLOW = {
    "CODAT_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT),
    "CONNECT_RETRY_BUDGET_SECONDS": str(BUDGET),
    "BACKGROUND_RETRY_BUDGET_SECONDS": str(BUDGET),
}


async def _slow_down(client: httpx.AsyncClient, sandbox: Process) -> None:
    answer = await client.put(
        f"{sandbox.url}/_sandbox/faults",
        json={"latency_ms": LATENCY * 1000},
        headers=sandbox_headers(),
    )
    answer.raise_for_status()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_click_gives_up_on_a_slow_codat_within_its_budget(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    await add_customer(sessions, "cus-slow", accounts=2)
    with sandbox_process(tmp_path) as sandbox:
        with service_process(database_url, tmp_path, {**against_sandbox(sandbox), **SLOW}) as app:
            async with httpx.AsyncClient(timeout=LATENCY * 3) as client:
                first = await click(client, "cus-slow", app.url)  # Codat answers at once
                await _slow_down(client, sandbox)
                started = time.monotonic()
                slow = await click(client, "cus-slow", app.url)
                took = time.monotonic() - started
                health = await client.get(f"{app.url}/healthz")
                faults = await sandbox_admin(client, sandbox, "faults")
    record(
        "timeouts",
        {
            "Codat answers after (s)": LATENCY,
            "client timeout / retry budget (s)": f"{CLIENT_TIMEOUT} / {BUDGET}",
            "a click before Codat slowed down": first.status_code,
            "a click while it is slow": slow.status_code,
            "- answered after (s)": round(took, 2),
            "/healthz meanwhile": health.status_code,
        },
        variant="a click (service and sandbox processes)",
    )
    assert faults["latency_ms"] == LATENCY * 1000
    assert first.status_code == 302
    assert slow.status_code == 503 and "location" not in slow.headers
    # The click waited for its own timeout, and not for the answer, which cannot come sooner.
    assert CLIENT_TIMEOUT <= took < LATENCY
    assert health.status_code == 200


_GAVE_UP = re.compile(r"reconciler: refreshing '([^']+)' failed \((\w+)\); backing off")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_background_job_gives_up_on_a_slow_codat_and_backs_off(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    await add_customer(sessions, "cus-slow-job", accounts=1)
    with sandbox_process(tmp_path) as sandbox:
        env = {
            **against_sandbox(sandbox),
            **SLOW,
            "RECONCILER_ENABLED": "true",
            "RECONCILER_POLL_WHILE_WEBHOOKS_HEALTHY": "true",
            "RECONCILER_INTERVAL_SECONDS": "0.5",
            "RECONCILER_PENDING_INTERVAL_SECONDS": "0.5",
        }
        with service_process(database_url, tmp_path, env) as app:
            async with httpx.AsyncClient(timeout=LATENCY * 3) as client:
                first = await click(client, "cus-slow-job", app.url)
                await _slow_down(client, sandbox)
                started = time.monotonic()
                gave_up = await _log_line(app, _GAVE_UP, LATENCY)
                took = time.monotonic() - started
                health = await client.get(f"{app.url}/healthz")
    record(
        "timeouts",
        {
            "Codat answers after (s)": LATENCY,
            "client timeout / retry budget (s)": f"{CLIENT_TIMEOUT} / {BUDGET}",
            "the reconciler's refresh ended with": gave_up[1] if gave_up else "nothing logged",
            "- logged after (s)": round(took, 2),
            "/healthz meanwhile": health.status_code,
        },
        variant="a background job (the reconciler)",
    )
    assert first.status_code == 302
    assert gave_up is not None, "the reconciler never gave up before Codat's late answer"
    assert gave_up == ("cus-slow-job", "CodatTimeout")
    assert health.status_code == 200


async def _log_line(
    process: Process, pattern: re.Pattern[str], seconds: float
) -> tuple[str, ...] | None:
    """The groups of the first line of the process's log matching `pattern`, polled until
    `seconds` pass (None then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = pattern.search(process.log())
        if found:
            return found.groups()
        await asyncio.sleep(0.2)
    return None

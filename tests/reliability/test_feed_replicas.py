"""Proof: the service and two `bankfeeds worker` processes push one Postgres's transaction feed
at once. Codat never has two pushes of one account open together, and holds every transaction
the bank sent exactly once, in order: the sum in Codat is the sum ingested."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import BankFeed, TransactionPush
from app.sandbox.push import CREATE
from tests.conftest import OPS_TOKEN, _truncate
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.support import (
    Sent,
    feed_audit,
    feed_env,
    feed_sandbox_flags,
    feed_settled,
    linked_feeds,
    sandbox_admin,
    sandbox_ledger,
    sandbox_process,
    worker_process,
)
from tests.servers import Process, free_port, run_service, sandbox_headers

CUSTOMERS = [f"feed-replica-{n}" for n in range(8)]
ACCOUNTS_EACH = 2
WAVES = 3  # the bank sends each account's transactions in this many requests, days apart
SIZES = (2300, 400, 1100, 150)  # per request, by account: some take several pushes
START_DAYS_BACK = 4
CREATE_LATENCY_MS = 50  # each write held a moment, so two pushers at once would overlap
SETTLE_SECONDS = 120.0
_PUSH_LINE = re.compile(r"codat POST \S+/bankTransactions -> 200")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_service_and_two_workers_push_each_account_once_at_a_time(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    for customer_id in CUSTOMERS:
        await add_customer(sessions, customer_id, accounts=ACCOUNTS_EACH)
    accounts = [(c, f"{c}-acc-{n}") for c in CUSTOMERS for n in range(ACCOUNTS_EACH)]
    service_port = free_port()
    flags = [
        *feed_sandbox_flags(f"http://127.0.0.1:{service_port}"),
        *("--latency-ms", str(CREATE_LATENCY_MS), "--fault-method", "POST"),
        *("--fault-route", CREATE),
    ]
    sent: dict[str, Sent] = defaultdict(Sent)
    with sandbox_process(tmp_path, *flags) as sandbox:
        env = feed_env(sandbox)
        limits = httpx.Limits(max_connections=len(accounts))
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            with (
                run_service(database_url, tmp_path, port=service_port, **env) as service,
                worker_process(database_url, tmp_path, env) as one,
                worker_process(database_url, tmp_path, env) as two,
            ):
                start = await linked_feeds(sessions, client, service, CUSTOMERS, START_DAYS_BACK)
                started = time.monotonic()
                for wave in range(WAVES):
                    day = start + timedelta(days=wave * START_DAYS_BACK // (WAVES - 1))
                    await asyncio.gather(
                        *(
                            _post(client, service, c, a, n, wave, day, sent[a])
                            for n, (c, a) in enumerate(accounts)
                        )
                    )
                settled = await feed_settled(sessions, SETTLE_SECONDS)
                elapsed = time.monotonic() - started
                alive = [p.proc.poll() is None for p in (service, one, two)]
                ledger = await sandbox_ledger(client, sandbox)
                codat_pushes = await _codat_pushes(client, sandbox, sessions)
                calls = await sandbox_admin(client, sandbox, "calls")
            logs = {"service": service.log(), "worker 1": one.log(), "worker 2": two.log()}

    result = await feed_audit(sessions, ledger, sent)
    # The sandbox counts, per account, the most writes it held Pending at once; and one push
    # sent by two pushers at once comes back replayed, or refused while the first is running.
    overlapping = [a["accountId"] for a in ledger if a["mostOpenWrites"] > 1]
    creates = [c for c in calls if c["method"] == "POST" and c["route"] == CREATE]
    again = Counter(c["idempotency"] for c in creates if c["idempotency"])
    async with sessions() as session:
        pushes = await session.scalar(select(func.count()).select_from(TransactionPush))
    sent_by = {name: len(_PUSH_LINE.findall(text)) for name, text in logs.items()}
    record(
        "feed replicas",
        {
            "processes pushing (the service and two workers)": len(logs),
            "pushes sent by each process (Codat's answers in its log)": sent_by,
            "pushes in Codat": codat_pushes,
            "pushes in our database": pushes,
            "accounts with two pushes open at once in Codat": len(overlapping),
            "creates Codat saw again under the same key (replayed, 409 in progress)": (
                f"{again['replayed']}, {again['in_progress']}"
            ),
            "time from the first request to all settled, s": round(elapsed, 1),
            "time to settle after the last request, s": round(settled, 1),
            **result.figures(),
        },
        variant="service and two workers, postgres",
    )

    assert alive == [True, True, True]
    assert overlapping == []
    assert len(creates) == codat_pushes and again == {}, again
    assert result.problems == {}
    assert result.written == result.transactions == sum(len(s.ids) for s in sent.values())
    assert codat_pushes == pushes
    assert sum(sent_by.values()) >= pushes and all(sent_by.values()), sent_by
    assert "Traceback" not in "".join(logs.values())
    await _truncate(database_url)


async def _post(
    client: httpx.AsyncClient,
    service: Process,
    customer_id: str,
    account_id: str,
    n: int,
    wave: int,
    day: date,
    sent: Sent,
) -> None:
    """One request from the bank: the account's transactions cleared on `day`, through the
    service's ops API."""
    count = SIZES[n % len(SIZES)]
    balance = Decimal("2500.00") + sum(sent.amounts.values(), Decimal(0))
    body = []
    for k in range(count):
        amount = Decimal(f"-{(k % 89) + 1}.{k % 100:02d}") if k % 4 else Decimal(f"{k + 7}.50")
        balance += amount
        body.append(
            {
                "id": f"{account_id}-w{wave}-{k:04d}",
                "date": day.isoformat(),
                "description": f"Card payment {wave}/{k}",
                "amount": str(amount),
                "balance": str(balance),
                "transactionType": "Debit" if amount < 0 else "Credit",
            }
        )
    response = await client.post(
        f"{service.url}/ops/customers/{customer_id}/accounts/{account_id}/transactions",
        json={"transactions": body},
        headers={"Authorization": f"Bearer {OPS_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    for item in body:
        sent.ids.append(item["id"])
        sent.dates.append(day)
        sent.amounts[item["id"]] = Decimal(item["amount"])


async def _codat_pushes(
    client: httpx.AsyncClient, sandbox: Process, sessions: async_sessionmaker[AsyncSession]
) -> int:
    """How many push operations Codat holds for the customers' companies."""
    async with sessions() as session:
        companies = list((await session.execute(select(BankFeed.company_id))).scalars())
    total = 0
    for company_id in companies:
        response = await client.get(
            f"{sandbox.url}/companies/{company_id}/push", headers=sandbox_headers()
        )
        response.raise_for_status()
        total += int(response.json()["totalResults"])
    return total

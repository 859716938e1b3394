"""Proof: SIGKILL the transaction push at each of its stages (a kill point armed in a `bankfeeds
worker` process), again and again, each restart armed at the next stage; then one worker runs
unarmed. Codat's ledger holds every transaction the bank sent, each exactly once, in order, and
our database agrees."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.kill_points import PUSH_STAGES
from app.models import TransactionFeed, TransactionPush
from app.sandbox.push import CREATE
from app.transactions import repository as repo
from app.transactions.schemas import TransactionIn
from app.transactions.service import FeedRules, TransactionService
from tests.conftest import _truncate
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.preloaded import Workers, preloaded_workers
from tests.reliability.support import (
    Sent,
    db_name,
    expire_leases,
    feed_audit,
    feed_env,
    feed_sandbox_flags,
    feed_settled,
    linked_feeds,
    sandbox_ledger,
    sandbox_process,
)
from tests.servers import Process, free_port, run_service, sandbox_headers, service_env

CUSTOMERS = ["feed-crash-0", "feed-crash-1", "feed-crash-2"]
ACCOUNTS_EACH = 2
KILLS_PER_STAGE = 6
BIG, SMALL = 1200, 150  # a big batch takes two pushes (at most 1,000 each)
START_DAYS_BACK = 5  # the feed starts 5 days before Codat's today; the trials walk up to today
TRIAL_SECONDS = 30.0
SETTLE_SECONDS = 90.0
IN_FLIGHT_LATENCY_MS = 150  # Codat holds each create this long; the armed point kills at 50 ms
# Where each kill leaves the account it was pushing (its lease still held), read back from
# our database: the kill landed where it was armed. A worker pushes several accounts at once, so
# the others it held may be anywhere.
LEFT = {
    "push recording": "no push outstanding",
    "push recorded": "sending, no key stored",
    "push in flight": "sending, no key stored",
    "push answered": "sending, no key stored",
    "push settling": "pending, key stored",
}


@dataclass
class Tally:
    """What the trials saw, stage by stage."""

    killed: Counter[str] = field(default_factory=Counter)
    left: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    leases: Counter[str] = field(default_factory=Counter)
    in_flight_made: int = 0
    seconds: list[float] = field(default_factory=list)
    recovered: float = 0.0


@pytest.mark.slow
async def test_sigkill_anywhere_in_the_push_then_every_transaction_lands_once(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    """`KILLS_PER_STAGE` SIGKILLs at each push stage; each restarted worker first recovers what
    the last one left, then dies at its own stage; a last, unarmed one finishes."""
    for customer_id in CUSTOMERS:
        await add_customer(sessions, customer_id, accounts=ACCOUNTS_EACH)
    trials = [stage for _ in range(KILLS_PER_STAGE) for stage in PUSH_STAGES]
    service_port = free_port()
    flags = [
        *feed_sandbox_flags(f"http://127.0.0.1:{service_port}"),
        *("--latency-ms", str(IN_FLIGHT_LATENCY_MS), "--fault-method", "POST"),
        *("--fault-route", CREATE),
    ]
    sent: dict[str, Sent] = defaultdict(Sent)
    logs: list[str] = []

    with sandbox_process(tmp_path, *flags) as sandbox:
        env = feed_env(sandbox)
        async with httpx.AsyncClient(timeout=60) as client:
            quiet = {**env, "TRANSACTIONS_PUSH_ENABLED": "false"}
            with run_service(database_url, tmp_path, port=service_port, **quiet) as service:
                start = await linked_feeds(sessions, client, service, CUSTOMERS, START_DAYS_BACK)
                logs.append(service.log())
            started = time.monotonic()
            worker_env = service_env(database_url, free_port(), **env)
            with preloaded_workers(tmp_path / "workers", worker_env) as workers:
                tally = await _run(sessions, client, sandbox, workers, trials, start, sent)
                logs.append(workers.logs())
            elapsed = time.monotonic() - started
            ledger = await sandbox_ledger(client, sandbox)

    result = await feed_audit(sessions, ledger, sent)
    async with sessions() as session:
        pushes = await session.scalar(select(func.count()).select_from(TransactionPush))
    seconds = sorted(tally.seconds)
    record(
        "feed crash",
        {
            "SIGKILL trials (each restart armed at the next stage)": len(trials),
            "SIGKILLs by stage": {s: tally.killed[s] for s in PUSH_STAGES},
            "kills that left the push where armed": sum(
                tally.left[s][LEFT[s]] for s in PUSH_STAGES
            ),
            "in-flight kills whose write Codat made all the same": tally.in_flight_made,
            "leases a killed worker held (aged past their TTL)": sum(tally.leases.values()),
            "pushes": pushes,
            "worker start to SIGKILL, s (median / max)": (
                f"{seconds[len(seconds) // 2]:.2f} / {seconds[-1]:.2f}"
            ),
            "time for the last worker to settle everything, s": round(tally.recovered, 1),
            "wall time (s)": round(elapsed, 1),
            **result.figures(),
        },
        variant=db_name(database_url),
    )

    assert tally.killed == dict.fromkeys(PUSH_STAGES, KILLS_PER_STAGE), tally.killed
    assert {s: dict(c) for s, c in tally.left.items()} == {
        s: {LEFT[s]: KILLS_PER_STAGE} for s in PUSH_STAGES
    }
    assert tally.in_flight_made == KILLS_PER_STAGE  # Codat had the whole request
    # Each killed worker held at least the lease of the account it died pushing.
    assert all(tally.leases[s] >= KILLS_PER_STAGE for s in PUSH_STAGES), tally.leases
    assert result.problems == {}
    assert result.written == result.transactions == sum(len(s.ids) for s in sent.values())
    assert "Traceback" not in "".join(logs)
    await _truncate(database_url)


async def _run(
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    sandbox: Process,
    workers: Workers,
    trials: list[str],
    start: date,
    sent: dict[str, Sent],
) -> Tally:
    """Per trial: new transactions for one account (dated on, day by day, towards Codat's
    today), a worker armed at the trial's stage, its death, where it left the push; then an
    unarmed worker until everything is settled."""
    accounts = [(c, f"{c}-acc-{n}") for c in CUSTOMERS for n in range(ACCOUNTS_EACH)]
    ingest = TransactionService(sessions, FeedRules(push_delay=timedelta(0)))
    tally = Tally()
    for n, stage in enumerate(trials):
        customer_id, account_id = accounts[n % len(accounts)]
        day = start + timedelta(days=n * (START_DAYS_BACK + 1) // len(trials))
        items = _batch(account_id, n, BIG if n % 4 == 0 else SMALL, day, sent[account_id])
        await ingest.ingest(customer_id, account_id, items)
        sent[account_id].add(items)
        began = time.monotonic()
        pid = workers.start(stage)
        ended = await asyncio.to_thread(workers.ended, pid, TRIAL_SECONDS)
        if ended is None:
            workers.stop(pid)
        elif ended == -signal.SIGKILL:
            tally.killed[stage] += 1
        tally.seconds.append(time.monotonic() - began)
        where, first_id, account = await _left_behind(sessions, stage)
        tally.left[stage][where] += 1
        if stage == "push in flight" and first_id is not None:
            tally.in_flight_made += await _codat_made(client, sandbox, account, first_id)
        tally.leases[stage] += await expire_leases(sessions, utcnow())
    pid = workers.start()
    tally.recovered = await feed_settled(sessions, SETTLE_SECONDS)
    workers.stop(pid)
    return tally


def _batch(account_id: str, n: int, count: int, day: date, sent: Sent) -> list[TransactionIn]:
    """`count` transactions cleared on `day`, debits and credits, with a running balance."""
    balance = Decimal("5000.00") + sum(sent.amounts.values(), Decimal(0))
    items = []
    for k in range(count):
        amount = Decimal(f"-{(k % 97) + 1}.{k % 100:02d}") if k % 3 else Decimal(f"{k + 10}.05")
        balance += amount
        items.append(
            TransactionIn.model_validate(
                {
                    "id": f"{account_id}-t{n:02d}-{k:04d}",
                    "date": day.isoformat(),
                    "description": f"Card payment {n}/{k}",
                    "amount": amount,
                    "balance": balance,
                    "transactionType": "Debit" if amount < 0 else "Credit",
                }
            )
        )
    return items


async def _left_behind(
    sessions: async_sessionmaker[AsyncSession], stage: str
) -> tuple[str, str | None, str | None]:
    """Where the killed worker left the accounts it held (it pushes several at once): the
    armed stage's state when one of them is in it, with that push's first transaction id when
    it was sent, for a look in Codat's ledger; else every held account's state."""
    async with sessions() as session:
        held = list(
            (
                await session.execute(
                    select(TransactionFeed).where(TransactionFeed.locked_until > utcnow())
                )
            ).scalars()
        )
        found = []
        for feed in held:
            push = await session.scalar(
                select(TransactionPush)
                .where(
                    TransactionPush.customer_id == feed.customer_id,
                    TransactionPush.account_id == feed.account_id,
                    TransactionPush.status.in_(repo.OUTSTANDING),
                )
                .order_by(TransactionPush.id.desc())
                .limit(1)
            )
            if push is None:
                found.append(("no push outstanding", None, feed.account_id))
            else:
                key = "key stored" if push.push_operation_key else "no key stored"
                first = json.loads(push.body)["transactions"][0]["id"]
                found.append((f"{push.status}, {key}", first, feed.account_id))
    for where in found:
        if where[0] == LEFT[stage]:
            return where
    return f"no lease in {LEFT[stage]!r}: {sorted(w[0] for w in found)}", None, None


async def _codat_made(
    client: httpx.AsyncClient, sandbox: Process, account_id: str | None, transaction_id: str
) -> int:
    """1 when Codat received the write of a push whose sender died waiting (it settles after
    the sandbox's latency and push delay)."""
    for _ in range(20):
        response = await client.get(
            f"{sandbox.url}/_sandbox/ledger",
            params={"accountId": account_id or ""},
            headers=sandbox_headers(),
        )
        response.raise_for_status()
        received = {
            r["id"] for a in response.json()["accounts"] for r in a["received"] if r["received"]
        }
        if transaction_id in received:
            return 1
        await asyncio.sleep(0.1)
    return 0

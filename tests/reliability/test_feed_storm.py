"""Proof 9: the transaction feed through a storm of Codat failures. 200 accounts send 50,000
transactions over several days on the sandbox's movable clock while Codat answers 429s and
503s, holds requests past the client's patience, loses answers to work it did, and ends some
writes TimedOut (some of which never land). Operations decide each TimedOut push as they would,
from QuickBooks. Every transaction is written once, in the bank's order, and each account's
balance in Codat is its last transaction's."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app.sandbox.faults import FaultConfig, FaultInjector
from tests.conftest import Service, _truncate, start_service
from tests.reliability.conftest import Record
from tests.reliability.feeds import (
    Operations,
    audit_feed,
    connected_accounts,
    next_day_at,
    not_pushed,
    post_transactions,
    push_count,
    push_round,
)
from tests.reliability.support import calls_json, calls_summary

CUSTOMERS = 25
ACCOUNTS_EACH = 8  # 200 accounts, 8 to a Codat connection
DAYS = 2  # each account is pushed at least once a day, in order
PER_ACCOUNT_PER_DAY = 125  # 200 x 2 x 125 = 50,000 transactions
STEP = timedelta(minutes=5)  # the movable clock between two rounds of the push job
MAX_ROUNDS_PER_DAY = 60
STORM = FaultConfig(
    status_rates={429: 0.15, 503: 0.15},
    timeout_rate=0.05,
    timeout_seconds=0.05,  # held this long, then unanswered; the work goes on after it
    still_running_seconds=0.05,
    lost_response_rate=0.05,
    push_timeout_rate=0.05,
    push_timeout_lost_rate=0.5,
    retry_after_seconds=1,
    seed=20261202,
)


@pytest.mark.slow
async def test_a_storm_of_codat_failures_writes_every_transaction_once_in_order(
    database_url: str, record: Record
) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, background_retry_budget_seconds=0.2):
        await _storm(service, record)
    await _truncate(database_url)


async def _storm(service: Service, record: Record) -> None:
    next_day_at(service, 8)
    customers = [f"feed-{n:03d}" for n in range(CUSTOMERS)]
    accounts = await connected_accounts(service, customers, ACCOUNTS_EACH)
    faults: FaultInjector = service.app.state.sandbox_app.state.faults
    job = service.services.push_job()
    operations = Operations()
    rounds: list[int] = []
    started = time.monotonic()
    service.sandbox.reset_calls()
    faults.configure(STORM)
    for day in range(DAYS):
        if day:
            next_day_at(service, 8)
        today = service.sandbox.clock.today()
        for account in accounts:
            items = account.day_of(today, PER_ACCOUNT_PER_DAY, f"d{day}")
            await post_transactions(service, account, items)
        for n in range(1, MAX_ROUNDS_PER_DAY + 1):
            await push_round(service, job, STEP)
            await operations.decide(service)
            if await not_pushed(service) == 0:
                rounds.append(n)
                break
        else:
            rounds.append(MAX_ROUNDS_PER_DAY)
            break  # the day did not drain: the audit says what is missing
    elapsed = time.monotonic() - started
    faults.configure(FaultConfig())
    calls = calls_json(service.sandbox)
    result = await audit_feed(service, accounts, operations.resent)
    pushes = await push_count(service)
    record(
        "feed storm",
        {
            "accounts": len(accounts),
            "transactions sent by the bank": result.transactions,
            "days on the movable clock": DAYS,
            "faults asked for": _described(STORM),
            "rounds of the push job per day": rounds,
            **calls_summary(calls),
            "pushes": dict(sorted(pushes.items())),
            "TimedOut pushes found in QuickBooks (landed)": operations.landed,
            "TimedOut pushes not in QuickBooks (sent again)": operations.not_landed,
            **result.figures(),
            "storm wall time (s)": round(elapsed, 1),
        },
    )
    assert result.problems == {}, result.problems
    assert (
        result.written
        == result.transactions
        == CUSTOMERS * ACCOUNTS_EACH * DAYS * PER_ACCOUNT_PER_DAY
    )
    summary = calls_summary(calls)
    for kind in ("429", "503", "timeout", "lost_response"):  # the storm really blew
        assert summary.get(f"injected {kind}", 0) > 10, summary
    assert operations.landed > 0 and operations.not_landed > 0
    assert set(pushes) <= {"success", "timed_out"}, pushes


def _described(config: FaultConfig) -> str:
    parts = [f"{rate:.0%} {status}" for status, rate in sorted(config.status_rates.items())]
    parts += [
        f"{config.timeout_rate:.0%} held past the client's patience",
        f"{config.lost_response_rate:.0%} lost responses",
        f"{config.push_timeout_rate:.0%} TimedOut writes "
        f"({config.push_timeout_lost_rate:.0%} of them never landing)",
    ]
    return ", ".join(parts)

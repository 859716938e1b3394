"""Proof 10: Codat is down for an hour on the sandbox's movable clock (half its answers 503, half
no answer at all) while the bank's transactions keep arriving, some accounts more than one push
holds, one late. When Codat is back the backlog drains, oldest first, within the background's
share of Codat's daily quota, and no QuickBooks rule is broken on the way."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.bank_feeds.quota import DEFAULT_SHARE
from app.models import BankTransaction, CodatQuotaDay
from app.sandbox.faults import FaultConfig, FaultInjector
from app.sandbox.state import PushStatus
from app.transactions.push import PushJob
from tests.conftest import Service, _truncate, start_service
from tests.reliability.conftest import Record
from tests.reliability.feeds import (
    Account,
    audit_feed,
    connected_accounts,
    next_day_at,
    not_pushed,
    post_transactions,
    push_round,
    unsettled,
)

CUSTOMERS = 10
ACCOUNTS_EACH = 2
OUTAGE = timedelta(hours=1)
ARRIVALS = 12  # batches of transactions during the outage, one every 5 minutes
PER_BATCH = 10
BIG_ACCOUNTS = 3  # these get 1,500 more during the outage: two pushes to drain
BIG_BATCH = 1500
STEP = timedelta(minutes=1)
MAX_ROUNDS = 240
DAILY_QUOTA = 2000  # a tight day: the background's share is 500 requests
DOWN = FaultConfig(status_rates={503: 0.5}, drop_rate=0.5, seed=20261203)
HISTORY_DAYS = 7


@pytest.mark.slow
async def test_codat_down_for_an_hour_the_backlog_drains_oldest_first_within_the_rules(
    database_url: str, record: Record
) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, background_retry_budget_seconds=0.2):
        await _outage(service, record)
    await _truncate(database_url)


async def _outage(service: Service, record: Record) -> None:
    sandbox = service.sandbox
    faults: FaultInjector = service.app.state.sandbox_app.state.faults
    faults.configure(FaultConfig(daily_quota=DAILY_QUOTA))
    next_day_at(service, 7)
    accounts = await connected_accounts(
        service, [f"down-{n:02d}" for n in range(CUSTOMERS)], ACCOUNTS_EACH
    )
    job = service.services.push_job()
    first_call = len(sandbox.calls)  # from here on every Codat request is the background's
    yesterday = sandbox.clock.today() - timedelta(days=1)
    for account in accounts:  # a first push each: QuickBooks has the account's newest date
        await post_transactions(service, account, account.day_of(sandbox.clock.today(), 5, "a"))
    await _drain(service, job)
    assert await not_pushed(service) == 0

    down_at = sandbox.clock.now()
    faults.configure(DOWN)
    late = [  # dated before what QuickBooks already has: held, never sent
        {
            "id": "late-1",
            "date": yesterday.isoformat(),
            "description": "Card payment cleared late",
            "amount": "-3.00",
            "balance": "997.00",
            "transactionType": "Debit",
        }
    ]
    for batch in range(ARRIVALS):
        for n, account in enumerate(accounts):
            count = BIG_BATCH if batch == 1 and n < BIG_ACCOUNTS else PER_BATCH
            await post_transactions(
                service, account, account.day_of(sandbox.clock.today(), count, f"o{batch}")
            )
        if batch == ARRIVALS // 2:
            await post_transactions(service, accounts[0], late)
        for _ in range(5):
            await push_round(service, job, STEP)
    assert sandbox.clock.now() - down_at >= OUTAGE
    outage_calls = [c for c in sandbox.calls if c.at >= down_at]
    half = down_at + OUTAGE / 2
    first_half = sum(c.at < half for c in outage_calls)
    backlog = await not_pushed(service)

    faults.configure(FaultConfig(daily_quota=DAILY_QUOTA))
    back_at = sandbox.clock.now()
    rounds = await _drain(service, job)
    drained_in = sandbox.clock.now() - back_at
    day = back_at.date()
    day_calls = sandbox.calls[first_call:]
    assert {c.at.date() for c in day_calls} == {day}
    async with service.sessions() as session:
        quota_row = await session.get(CodatQuotaDay, day)
        held = {
            t.id: t.reason
            for t in await session.scalars(
                select(BankTransaction).where(BankTransaction.status == "held")
            )
        }
    share = int(DAILY_QUOTA * DEFAULT_SHARE)
    broken = _rules_broken(service, accounts)
    result = await audit_feed(service, accounts)
    record(
        "feed outage",
        {
            "accounts": len(accounts),
            "Codat down (simulated minutes)": int(OUTAGE.total_seconds() // 60),
            "faults while down": "50% 503, 50% no answer",
            "Codat requests while down": len(outage_calls),
            "- in the first half / second half": (
                f"{first_half} / {len(outage_calls) - first_half}"
            ),
            "backlog when Codat came back": backlog,
            "rounds of the push job to drain it": rounds,
            "drained in (simulated minutes)": int(drained_in.total_seconds() // 60),
            "background Codat requests that day": len(day_calls),
            "background share of the day's quota": share,
            "polls and look-ups counted against it": quota_row.background_used if quota_row else 0,
            "writes asked of Codat": sum(len(c) for c in _pushes(service)),
            "QuickBooks rules broken": len(broken),
            "late transaction held, not sent": len(held),
            **result.figures(),
        },
    )
    assert result.problems == {}, result.problems
    assert broken == [], broken[:10]
    assert list(held) == [late[0]["id"]] and "most recent transaction" in str(held[late[0]["id"]])
    assert backlog > BIG_ACCOUNTS * BIG_BATCH  # the outage left a backlog
    # Backed off, no busy loop: fewer requests as the outage lasts, and far fewer than one per
    # account per round.
    assert len(outage_calls) - first_half < first_half
    assert len(outage_calls) < len(accounts) * OUTAGE / STEP / 3, len(outage_calls)
    assert len(day_calls) <= share, (len(day_calls), share)
    assert quota_row is not None and quota_row.background_used <= share
    assert all(c.fault is None for c in sandbox.calls if c.at >= back_at)


async def _drain(service: Service, job: PushJob) -> int:
    for n in range(1, MAX_ROUNDS + 1):
        await push_round(service, job, STEP)
        if await unsettled(service) == 0:
            return n
    return MAX_ROUNDS


def _pushes(service: Service) -> list[list[Any]]:
    return [list(company.pushes.values()) for company in service.sandbox.store.companies.values()]


def _rules_broken(service: Service, accounts: list[Account]) -> list[str]:
    """Every write Codat was asked for, checked against QuickBooks' rules as they stood when it
    was asked: one account, at most 1,000, nothing in the future, nothing older than the 7 days
    of history or than the newest transaction already written, earliest first."""
    owner = {i: a.account_id for a in accounts for i in a.sent}
    broken: list[str] = []
    newest: dict[str, date] = {}
    writes = sorted((p for company in _pushes(service) for p in company), key=lambda p: p.requested)
    for push in writes:
        day = push.requested.date()
        dates = [t.date.date() for t in push.transactions if t.date is not None]
        where = f"write {push.key} to {push.account_id}"
        if len(push.transactions) > 1000:
            broken.append(f"{where}: {len(push.transactions)} transactions")
        if {owner.get(t.id or "") for t in push.transactions} != {push.account_id}:
            broken.append(f"{where}: transactions of another account")
        if any(d > day for d in dates):
            broken.append(f"{where}: a future date")
        if any(d < day - timedelta(days=HISTORY_DAYS - 1) for d in dates):
            broken.append(f"{where}: older than the history window")
        if dates != sorted(dates):
            broken.append(f"{where}: not earliest first")
        floor = newest.get(push.account_id)
        if floor is not None and dates and min(dates) < floor:
            broken.append(f"{where}: older than the newest already written")
        if push.status is PushStatus.FAILED:
            broken.append(f"{where}: refused by QuickBooks ({push.error_message})")
        if push.status is PushStatus.SUCCESS and dates:
            newest[push.account_id] = max(floor or dates[-1], dates[-1])
    return broken

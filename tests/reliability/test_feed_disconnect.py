"""Proof 11: the customer disconnects an account in QuickBooks. Codat would take 10 days to say
so; QuickBooks refuses writes at once. The service flags the account from its first refused
push, sends nothing more to it (the sandbox's call log shows it), keeps its transactions
pending with the reason shown to operations, goes on with the customer's other account, and
when the customer connects the account again its transactions flow, once and in order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import SourceAccount, TransactionFeed
from app.sandbox.state import Connection
from app.transactions.push import PushJob
from tests.conftest import Service, _truncate, start_service
from tests.reliability.conftest import Record
from tests.reliability.feeds import (
    Account,
    audit_feed,
    connected_accounts,
    next_day_at,
    post_transactions,
    push_round,
    unsettled,
)
from tests.reliability.support import CUSTOMER_TAG

CUSTOMER = "qbo-gone"
STEP = timedelta(minutes=2)
# Codat takes 10 days to say the account is disconnected; the sandbox compresses it to an hour.
CODAT_NOTICES = timedelta(hours=1)
ROUNDS_DISCONNECTED = 60  # two simulated hours of rounds while the account is disconnected


@pytest.mark.slow
async def test_an_account_disconnected_in_quickbooks_is_flagged_at_once_and_not_written_to(
    database_url: str, record: Record
) -> None:
    await _truncate(database_url)
    async for service in start_service(
        database_url,
        background_retry_budget_seconds=0.2,
        sandbox_disconnect_delay_seconds=CODAT_NOTICES.total_seconds(),
    ):
        await _disconnect(service, record)
    await _truncate(database_url)


async def _disconnect(service: Service, record: Record) -> None:
    sandbox = service.sandbox
    next_day_at(service, 8)
    gone, kept = await connected_accounts(service, [CUSTOMER], 2)
    job = service.services.push_job()
    for account in (gone, kept):  # a first push each, written
        await _arrive(service, account, "a")
    await _rounds(service, job, 10)
    assert await unsettled(service) == 0

    connection = _connection(service)
    sandbox.bank_feeds.request_disconnect(connection, gone.account_id)
    disconnected_at = len(sandbox.calls)
    for account in (gone, kept):
        await _arrive(service, account, "b")
    rounds_to_flag = 0
    while rounds_to_flag < 10 and await _blocked(service, gone) is None:
        await push_round(service, job, STEP)
        rounds_to_flag += 1
    flagged = await _blocked(service, gone)
    status_when_flagged = await _codat_status(service, gone)
    writes_when_flagged = len(_writes(service, gone, disconnected_at))
    for n in range(ROUNDS_DISCONNECTED):  # the day goes on; the bank sends more
        if n % 20 == 0:
            for account in (gone, kept):
                await _arrive(service, account, f"c{n}")
        await push_round(service, job, STEP)
    writes_while_gone = _writes(service, gone, disconnected_at)
    kept_writes = _writes(service, kept, disconnected_at)
    pending = await _listed(service, gone, "pending")
    view = await service.client.get(
        f"/ops/customers/{CUSTOMER}/bank-feed", headers=service.ops_headers
    )
    shown = {f["account_id"]: f for f in view.json()["transaction_feeds"]}
    needs = {r["code"]: r["message"] for r in shown[gone.account_id]["needs_action"]}
    codat_status = await _codat_status(service, gone)

    sandbox.bank_feeds.connect_accounts(connection, [gone.account_id], sandbox.clock.today())
    await _rounds(service, job, 20)
    result = await audit_feed(service, [gone, kept])
    record(
        "feed disconnect",
        {
            "rounds until the account was flagged": rounds_to_flag,
            "writes to it until then": writes_when_flagged,
            "writes to it in the next simulated hours": len(writes_while_gone)
            - writes_when_flagged,
            "writes to the customer's other account meanwhile": len(kept_writes),
            "its transactions left pending": len(pending),
            "Codat's status for it when flagged": status_when_flagged,
            "Codat's status for it two hours on": codat_status,
            "shown to operations": sorted(needs),
            **result.figures(),
        },
    )
    assert flagged is not None and "disconnected in QuickBooks" in flagged
    assert writes_when_flagged == 1  # flagged by its first refused push
    assert status_when_flagged == "connected"  # Codat itself did not know yet
    assert codat_status == "disconnected"
    assert len(writes_while_gone) == writes_when_flagged, "written to after it was flagged"
    assert len(kept_writes) >= 3  # the other account went on
    assert len(pending) == len(gone.sent) - 10  # all but the first ten, written before
    assert "writes_refused" in needs and "disconnected in QuickBooks" in needs["writes_refused"]
    assert result.problems == {}, result.problems
    assert await _blocked(service, gone) is None  # connected again: no longer flagged


async def _arrive(service: Service, account: Account, label: str) -> None:
    items = account.day_of(service.sandbox.clock.today(), 10, label)
    await post_transactions(service, account, items)


async def _rounds(service: Service, job: PushJob, count: int) -> None:
    for _ in range(count):
        await push_round(service, job, STEP)
        if await unsettled(service) == 0:
            return


def _connection(service: Service) -> Connection:
    for company in service.sandbox.store.companies.values():
        if company.tags.get(CUSTOMER_TAG) == CUSTOMER:
            return next(iter(company.connections.values()))
    raise AssertionError("no Codat company for the customer")


def _writes(service: Service, account: Account, since: int) -> list[object]:
    """Create-bank-transactions requests for the account in the call log since `since`."""
    path = f"/bankAccounts/{account.account_id}/bankTransactions"
    return [
        c for c in service.sandbox.calls[since:] if c.method == "POST" and c.path.endswith(path)
    ]


async def _blocked(service: Service, account: Account) -> str | None:
    async with service.sessions() as session:
        state = await session.get(
            TransactionFeed, (account.customer_id, account.account_id), populate_existing=True
        )
    return state.write_blocked_reason if state is not None else None


async def _codat_status(service: Service, account: Account) -> str | None:
    async with service.sessions() as session:
        row = await session.scalar(
            select(SourceAccount).where(SourceAccount.id == account.account_id)
        )
    return row.codat_status if row else None


async def _listed(service: Service, account: Account, status: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    cursor = None
    for _ in range(50):
        params = {"status": status, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await service.client.get(
            f"/ops/customers/{account.customer_id}/accounts/{account.account_id}/transactions",
            params=params,
            headers=service.ops_headers,
        )
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    return found

"""End to end against the sandbox: transactions posted, pushed, written in QuickBooks, settled
by Codat's write webhook; a write refused for an account disconnected in QuickBooks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.models import BankTransaction, SourceAccount, TransactionFeed, TransactionPush
from tests.conftest import Service
from tests.ops_api import codat_connection, ops_get, with_bank_feed

PATH = "/ops/customers/cus-1/accounts/acc-0/transactions"


async def connected(service: Service) -> None:
    """cus-1's accounts linked in QuickBooks, with Codat's webhooks handled."""
    await with_bank_feed(service)
    sandbox = service.sandbox
    connection = codat_connection(service)
    start = sandbox.clock.today() - timedelta(days=3)
    sandbox.bank_feeds.connect_accounts(connection, ["acc-0", "acc-1"], start)
    await settle_webhooks(service)


async def settle_webhooks(service: Service) -> None:
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()


def txn(n: int, days_ago: int, amount: str, balance: str) -> dict[str, Any]:
    return {
        "id": f"bank-{n}",
        "date": (None, days_ago),
        "description": f"Card payment {n}",
        "amount": amount,
        "balance": balance,
        "transactionType": "Debit" if amount.startswith("-") else "Credit",
    }


async def post(service: Service, *items: dict[str, Any]) -> None:
    today = service.sandbox.clock.today()
    body = [{**i, "date": (today - timedelta(days=i["date"][1])).isoformat()} for i in items]
    answer = await service.client.post(
        PATH, json={"transactions": body}, headers=service.ops_headers
    )
    assert answer.status_code == 200, answer.text


async def rows(service: Service) -> dict[str, str]:
    async with service.sessions() as session:
        found = await session.execute(select(BankTransaction).order_by(BankTransaction.seq))
        return {t.id: t.status for t in found.scalars()}


async def test_posted_transactions_reach_quickbooks_once_and_the_webhook_settles_them(
    service: Service,
) -> None:
    await connected(service)
    await post(
        service,
        txn(2, 0, "1500.75", "2488.25"),
        txn(1, 1, "-12.50", "987.50"),
    )
    job = service.services.push_job()
    assert (await job.run_once()).pushed == []  # coalesced: a minute after arrival
    service.sandbox.clock.advance(timedelta(seconds=61))
    report = await job.run_once()
    assert report.pushed and report.settled == []
    assert await rows(service) == {"bank-2": "pushing", "bank-1": "pushing"}
    service.sandbox.settle(all_writes=True)
    await settle_webhooks(service)
    assert await rows(service) == {"bank-2": "pushed", "bank-1": "pushed"}

    account = codat_connection(service).source_accounts["acc-0"]
    assert [w.transaction.id for w in account.written] == ["bank-1", "bank-2"]
    assert account.balance == Decimal("2488.25")
    async with service.sessions() as session:
        state = await session.get(TransactionFeed, ("cus-1", "acc-0"))
        assert state is not None and state.last_pushed_balance == Decimal("2488.25")
        mine = await session.get(SourceAccount, ("cus-1", "acc-0"))
        assert mine is not None and mine.balance == Decimal("2488.25")
    await job.run_once()  # nothing more to send
    creates = [
        c for c in service.sandbox.calls if c.method == "POST" and "bankTransactions" in c.path
    ]
    assert len(creates) == 1

    listed = await ops_get(service, PATH, status="pushed")
    assert [t["id"] for t in listed.json()["items"]] == ["bank-1", "bank-2"]
    pushes = await ops_get(service, "/ops/pushes", customer_id="cus-1", status="success")
    assert [p["transaction_count"] for p in pushes.json()["items"]] == [2]
    view = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    (shown,) = view["transaction_feeds"]
    assert shown["account_id"] == "acc-0" and shown["last_pushed_balance"] == "2488.25"
    assert shown["last_pushed_date"] == service.sandbox.clock.today().isoformat()
    assert shown["counts"]["pushed"] == 2 and shown["counts"]["pending"] == 0
    assert shown["last_push"]["status"] == "success" and shown["needs_action"] == []


async def test_a_write_for_an_account_disconnected_in_quickbooks_flags_it_at_once(
    service: Service,
) -> None:
    await connected(service)
    await post(service, txn(1, 0, "-5.00", "995.00"))
    job = service.services.push_job()
    service.sandbox.clock.advance(timedelta(seconds=61))
    # Codat will say so days later (20 s in the sandbox); QuickBooks refuses writes at once.
    service.sandbox.bank_feeds.request_disconnect(codat_connection(service), "acc-0")
    await job.run_once()
    service.sandbox.settle(all_writes=True)
    await settle_webhooks(service)  # unsuccessful: the job reads the operation now
    await job.run_once()
    async with service.sessions() as session:
        state = await session.get(TransactionFeed, ("cus-1", "acc-0"))
        assert state is not None and state.write_blocked_at is not None
        assert "disconnected in QuickBooks" in str(state.write_blocked_reason)
        (push,) = (await session.execute(select(TransactionPush))).scalars()
        assert push.status == "failed"
    assert await rows(service) == {"bank-1": "pending"}
    view = await ops_get(service, "/ops/pushes", status="failed")
    assert view.json()["items"][0]["validation_errors"][0]["validatorName"] == (
        "TargetAccountConnected"
    )
    feed = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    codes = [r["code"] for r in feed["transaction_feeds"][0]["needs_action"]]
    assert codes == ["writes_refused", "push_failed"]

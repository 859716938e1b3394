"""What the transaction-feed proofs share: accounts connected in QuickBooks through the service,
the bank's transactions day by day, a round of the push job on the sandbox's movable clock,
operations deciding TimedOut pushes as they would from QuickBooks, and the audit that reads
the sandbox's ledger (every id each account was sent, and what was written) against the bank's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from app.models import BankTransaction, SourceAccount, TransactionPush
from app.sandbox.state import PushStatus
from app.sandbox.state import SourceAccount as LedgerAccount
from app.transactions.push import PushJob
from tests.conftest import Service
from tests.factories import add_customer
from tests.reliability.support import CUSTOMER_TAG, click

OPENING_BALANCE = Decimal("1000.00")
MAX_POST = 5000  # transactions per ingest request


def next_day_at(service: Service, hour: int) -> datetime:
    """Move the sandbox's clock (the service's too) to `hour`:00 UTC of the next day."""
    clock = service.sandbox.clock
    now = clock.now()
    target = (now + timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return clock.advance(target - now)


async def connected_accounts(service: Service, customers: list[str], each: int) -> list[Account]:
    """Customers whose accounts the customer connected in QuickBooks, as the service knows."""
    for customer_id in customers:
        await add_customer(service.sessions, customer_id, accounts=each)
        response = await click(service.client, customer_id)
        assert response.status_code == 302, response.text
    today = service.sandbox.clock.today()
    for connection in _connections(service, customers).values():
        service.sandbox.bank_feeds.connect_accounts(
            connection, list(connection.source_accounts), today
        )
    await settle_webhooks(service)
    for customer_id in customers:  # as operations would, should no webhook have come
        refreshed = await service.client.get(
            f"/ops/customers/{customer_id}/bank-feed",
            params={"refresh": "true"},
            headers=service.ops_headers,
        )
        assert refreshed.status_code == 200, refreshed.text
    async with service.sessions() as session:
        rows = (await session.execute(select(SourceAccount))).scalars().all()
    mine = [a for a in rows if a.customer_id in customers]
    assert all(a.codat_status == "connected" for a in mine), "an account is not connected"
    accounts = [Account(a.customer_id, a.id) for a in mine]
    assert len(accounts) == len(customers) * each
    return sorted(accounts, key=lambda a: (a.customer_id, a.account_id))


def _connections(service: Service, customers: list[str]) -> dict[str, Any]:
    wanted = set(customers)
    return {
        company.tags[CUSTOMER_TAG]: connection
        for company in service.sandbox.store.companies.values()
        if company.tags.get(CUSTOMER_TAG) in wanted
        for connection in company.connections.values()
    }


async def settle_webhooks(service: Service) -> None:
    """Codat's webhooks delivered, and the service's inbox handled."""
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()


@dataclass
class Account:
    """One bank account and every transaction the bank sent for it, in the bank's order."""

    customer_id: str
    account_id: str
    sent: list[str] = field(default_factory=list)
    dates: dict[str, date] = field(default_factory=dict)
    balance: Decimal = OPENING_BALANCE

    def day_of(self, day: date, count: int, label: str) -> list[dict[str, str]]:
        """`count` cleared transactions dated `day`, each moving the running balance."""
        items = []
        for _ in range(count):
            number = len(self.sent)
            credit = number % 5 == 4
            amount = Decimal("100.50") if credit else -(Decimal(number % 7 + 1) + Decimal("0.25"))
            self.balance += amount
            transaction_id = f"{self.account_id}-{label}-{number:05d}"
            self.sent.append(transaction_id)
            self.dates[transaction_id] = day
            items.append(
                {
                    "id": transaction_id,
                    "date": day.isoformat(),
                    "description": f"Card payment {number}",
                    "amount": str(amount),
                    "balance": str(self.balance),
                    "transactionType": "Credit" if credit else "Debit",
                }
            )
        return items


async def post_transactions(
    service: Service, account: Account, items: list[dict[str, str]]
) -> None:
    """The bank sends them through the ops API."""
    path = f"/ops/customers/{account.customer_id}/accounts/{account.account_id}/transactions"
    for start in range(0, len(items), MAX_POST):
        answer = await service.client.post(
            path,
            json={"transactions": items[start : start + MAX_POST]},
            headers=service.ops_headers,
        )
        assert answer.status_code == 200, answer.text


async def push_round(service: Service, job: PushJob, step: timedelta) -> None:
    """The clock moves on, the job runs a round, Codat's webhooks arrive and are handled."""
    service.sandbox.clock.advance(step)
    await job.run_once()
    await settle_webhooks(service)


async def not_pushed(service: Service) -> int:
    async with service.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(BankTransaction)
            .where(BankTransaction.status != "pushed")
        )
    return int(count or 0)


async def unsettled(service: Service) -> int:
    """Transactions still to push: pending, or in a push not yet settled (not held)."""
    async with service.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(BankTransaction)
            .where(BankTransaction.status.in_(("pending", "pushing")))
        )
    return int(count or 0)


def ledger_accounts(service: Service) -> dict[str, LedgerAccount]:
    """The sandbox's source accounts by id: what Codat received and wrote for each."""
    return {
        account.id: account
        for company in service.sandbox.store.companies.values()
        for connection in company.connections.values()
        for account in connection.source_accounts.values()
    }


@dataclass
class Operations:
    """What an operator does with a TimedOut push the service gave up reading: look for its
    transactions in QuickBooks, then say it landed, or send it again."""

    landed: int = 0
    not_landed: int = 0
    resent: Counter[str] = field(default_factory=Counter)  # id: times sent again

    async def decide(self, service: Service) -> int:
        waiting = [
            p
            for p in await _timed_out_pushes(service)
            if p["next_attempt_at"] is None and not p["retried_at"]
        ]
        ledger = ledger_accounts(service)
        for push in waiting:
            ids = await _ids_of(service, push["id"])
            account = ledger[push["account_id"]]
            written = [account.ledger[i].written_by is not None for i in ids if i in account.ledger]
            in_quickbooks = len(written) == len(ids) and all(written)
            assert in_quickbooks or not any(written), f"push {push['id']} landed in part"
            if in_quickbooks:
                answer = await service.client.post(
                    f"/ops/pushes/{push['id']}:landed", headers=service.ops_headers
                )
                self.landed += 1
            else:
                answer = await service.client.post(
                    f"/ops/pushes/{push['id']}:retry",
                    json={"not_landed": True},
                    headers=service.ops_headers,
                )
                self.not_landed += 1
                self.resent.update(ids)
            assert answer.status_code == 200, answer.text
        return len(waiting)


async def _timed_out_pushes(service: Service) -> list[dict[str, Any]]:
    """Every TimedOut push, as `GET /ops/pushes` lists them, page by page."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"status": "timed_out", "limit": 100}
    for _ in range(100):
        listed = await service.client.get("/ops/pushes", params=params, headers=service.ops_headers)
        assert listed.status_code == 200, listed.text
        found += listed.json()["items"]
        if listed.json()["next_cursor"] is None:
            return found
        params["cursor"] = listed.json()["next_cursor"]
    raise AssertionError("more TimedOut pushes than 100 pages")


async def _ids_of(service: Service, push_id: int) -> list[str]:
    async with service.sessions() as session:
        rows = await session.execute(
            select(BankTransaction.id)
            .where(BankTransaction.push_id == push_id)
            .order_by(BankTransaction.seq)
        )
        return list(rows.scalars())


@dataclass
class FeedAudit:
    """The bank's transactions against the sandbox's ledger and our database. Every list is a
    problem; a good run has them all empty."""

    accounts: int = 0
    transactions: int = 0
    written: int = 0
    duplicates: list[str] = field(default_factory=list)  # written more than once
    lost: list[str] = field(default_factory=list)  # sent by the bank, never written
    strangers: list[str] = field(default_factory=list)  # written, never sent by the bank
    resent_blindly: list[str] = field(default_factory=list)  # sent again, nobody asking
    out_of_order: list[str] = field(default_factory=list)  # accounts written in another order
    wrong_balance: list[str] = field(default_factory=list)  # Codat's balance is not the last one
    not_pushed: list[str] = field(default_factory=list)  # our database does not say pushed

    @property
    def problems(self) -> dict[str, list[str]]:
        names = (
            "duplicates",
            "lost",
            "strangers",
            "resent_blindly",
            "out_of_order",
            "wrong_balance",
            "not_pushed",
        )
        return {n: getattr(self, n)[:10] for n in names if getattr(self, n)}

    def figures(self) -> dict[str, int]:
        return {
            "transactions written in QuickBooks": self.written,
            "written twice": len(self.duplicates),
            "never written": len(self.lost),
            "sent to Codat again without operations": len(self.resent_blindly),
            "accounts written out of order": len(self.out_of_order),
            "accounts whose balance is not the last transaction's": len(self.wrong_balance),
            "transactions our database does not call pushed": len(self.not_pushed),
        }


async def audit_feed(
    service: Service, accounts: list[Account], resent: Counter[str] | None = None
) -> FeedAudit:
    """Each transaction written once, in the bank's order, the last balance Codat's; each one
    received by Codat once, plus once for each write Codat refused with it, and each time
    operations sent it again."""
    resent = Counter(resent or {})
    for company in service.sandbox.store.companies.values():  # refused: nothing was written
        for push in company.pushes.values():
            if push.status is PushStatus.FAILED:
                resent.update(t.id for t in push.transactions if t.id)
    ledger = ledger_accounts(service)
    result = FeedAudit(accounts=len(accounts))
    async with service.sessions() as session:
        statuses = dict(
            (await session.execute(select(BankTransaction.id, BankTransaction.status))).all()
        )
    for account in accounts:
        result.transactions += len(account.sent)
        held = ledger[account.account_id]
        written = [w.transaction.id or "" for w in held.written]
        result.written += len(written)
        counts = Counter(written)
        result.duplicates += [i for i, n in counts.items() if n > 1]
        expected = set(account.sent)
        result.lost += [i for i in account.sent if i not in counts]
        result.strangers += [i for i in counts if i not in expected]
        result.resent_blindly += [
            i for i, entry in held.ledger.items() if entry.received > 1 + resent[i]
        ]
        if written != account.sent:
            result.out_of_order.append(account.account_id)
        if written and held.balance != _last_balance(held):
            result.wrong_balance.append(account.account_id)
        if account.sent and held.balance != account.balance:
            result.wrong_balance.append(account.account_id)
        result.not_pushed += [i for i in account.sent if statuses.get(i) != "pushed"]
    return result


def _last_balance(account: LedgerAccount) -> Decimal | None:
    return account.written[-1].transaction.balance


async def push_count(service: Service) -> Counter[str]:
    async with service.sessions() as session:
        rows = await session.execute(
            select(TransactionPush.status, func.count()).group_by(TransactionPush.status)
        )
        return Counter({status: int(n) for status, n in rows.all()})

"""A customer with a linked bank feed and a connected account, and a Codat that answers the
transaction writes as scripted, recording each call and what the database held at that moment."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.codat.client import CodatClient
from app.models import BankFeed, SourceAccount, TransactionPush
from app.transactions.push import PushJob
from app.transactions.schemas import TransactionIn
from app.transactions.service import FeedRules, TransactionService
from tests.factories import add_customer

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
COMPANY = "0498e921-9b53-4396-a412-4f2f5983b0a2"
CONNECTION = "2e9d2c44-f675-40ba-8049-353bfcb5e171"
CUSTOMER = "cus-1"
ACCOUNT = "cus-1-acc-0"
_PUSH = re.compile(
    r"^/companies/([^/]+)/connections/([^/]+)/push/bankAccounts/([^/]+)/bankTransactions$"
)
_GET = re.compile(r"^/companies/([^/]+)/push/([^/]+)$")
_LIST = re.compile(r"^/companies/([^/]+)/push$")


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Call:
    method: str
    path: str
    key: str | None
    body: str
    recorded: bool  # the push row with this key was committed before the call


@dataclass
class FakeCodat:
    """Codat's push endpoints, replaying an answer per Idempotency-Key. `answer` gives each new
    create its status ("down": a 500, nothing made); `lose_answers` drops that many answers."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    answer: Callable[[dict[str, Any]], str] = lambda body: "Pending"
    validation: dict[str, Any] | None = None
    error_message: str | None = None
    lose_answers: int = 0
    calls: list[Call] = field(default_factory=list)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Idempotency-Key
    created: list[dict[str, Any]] = field(default_factory=list)  # bodies Codat wrote

    def client(self) -> CodatClient:
        return CodatClient(
            "http://codat.test", "test-key", transport=httpx.MockTransport(self.handle)
        )

    def operation(self, status: str, **extra: Any) -> dict[str, Any]:
        key = str(uuid.uuid4())
        op = {
            "companyId": COMPANY,
            "pushOperationKey": key,
            "dataConnectionKey": CONNECTION,
            "dataType": "bankTransactions",
            "requestedOnUtc": self.clock().isoformat().replace("+00:00", "Z"),
            "completedOnUtc": None
            if status == "Pending"
            else self.clock().isoformat().replace("+00:00", "Z"),
            "status": status,
            "statusCode": 200 if status != "Failed" else 400,
            "errorMessage": self.error_message if status == "Failed" else None,
            "validation": self.validation if status == "Failed" else None,
            **extra,
        }
        self.operations[key] = op
        return op

    def settle(self, key: str, status: str) -> None:
        self.operations[key].update(status=status, completedOnUtc=self.clock().isoformat())

    async def _recorded(self, key: str | None) -> bool:
        if key is None:
            return False
        async with self.sessions() as session:
            found = await session.scalar(
                select(TransactionPush.id).where(TransactionPush.idempotency_key == key)
            )
        return found is not None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        key = request.headers.get("idempotency-key")
        body = request.content.decode()
        self.calls.append(Call(request.method, path, key, body, await self._recorded(key)))
        if request.method == "POST" and _PUSH.match(path):
            op = self.replies.get(key or "")
            if op is None:
                parsed = json.loads(body, parse_float=Decimal)
                outcome = self.answer(parsed)
                if outcome == "down":
                    return httpx.Response(500, json={"statusCode": 500, "error": "down"})
                self.created.append(parsed)
                op = self.replies[key or ""] = self.operation(outcome)
            if self.lose_answers > 0:  # made, but the answer never reaches us
                self.lose_answers -= 1
                raise httpx.ReadTimeout("lost", request=request)
            return httpx.Response(200, json=op)
        if request.method == "GET" and (m := _GET.match(path)):
            op = self.operations.get(m.group(2))
            return httpx.Response(200, json=op) if op else httpx.Response(404, json={})
        if request.method == "GET" and _LIST.match(path):
            ops = sorted(self.operations.values(), key=lambda o: o["requestedOnUtc"], reverse=True)
            return httpx.Response(
                200,
                json={
                    "results": ops,
                    "pageNumber": 1,
                    "pageSize": 100,
                    "totalResults": len(ops),
                    "_links": {"self": {"href": path}, "current": {"href": path}},
                },
            )
        return httpx.Response(404, json={"statusCode": 404, "error": "not here"})


async def linked_customer(
    sessions: async_sessionmaker[AsyncSession],
    *,
    feed_start: date | None = None,
    account_status: str = "connected",
) -> None:
    """cus-1 with two accounts; account 0 connected in a linked QuickBooks feed."""
    await add_customer(sessions, CUSTOMER, accounts=2)
    async with sessions() as session:
        session.add(
            BankFeed(
                customer_id=CUSTOMER,
                company_id=COMPANY,
                connection_id=CONNECTION,
                connection_status="Linked",
                connection_status_at=NOW - timedelta(days=1),
            )
        )
        account = await session.get(SourceAccount, (CUSTOMER, ACCOUNT))
        assert account is not None
        account.codat_status = account_status
        account.pushed_at = NOW - timedelta(days=1)
        account.status_changed_at = NOW - timedelta(days=1)
        account.feed_start_date = feed_start
        await session.commit()


def item(n: int, day: date = TODAY, amount: str = "-12.50", **extra: Any) -> TransactionIn:
    return TransactionIn.model_validate(
        {
            "id": f"txn-{n}",
            "date": day.isoformat(),
            "description": f"Card payment {n}",
            "amount": Decimal(amount),
            "balance": Decimal("1000.00") + n,
            "transactionType": "Debit" if Decimal(amount) < 0 else "Credit",
            **extra,
        }
    )


@dataclass
class Feed:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    codat: FakeCodat
    service: TransactionService
    job: PushJob

    async def add(self, *items: TransactionIn, account: str = ACCOUNT) -> None:
        await self.service.ingest(CUSTOMER, account, list(items))

    async def pushes(self) -> list[TransactionPush]:
        async with self.sessions() as session:
            rows = await session.execute(select(TransactionPush).order_by(TransactionPush.id))
            return list(rows.scalars())


def build_feed(
    sessions: async_sessionmaker[AsyncSession], *, history_days: int = 7, **job: Any
) -> Feed:
    clock = Clock()
    codat = FakeCodat(sessions, clock)
    rules = FeedRules(history_days=history_days, push_delay=timedelta(0))
    service = TransactionService(sessions, rules, clock=clock)
    push_job = PushJob(
        sessions, codat.client(), rules=rules, clock=clock, retry_budget_seconds=2.0, **job
    )
    return Feed(sessions, clock, codat, service, push_job)

"""No answer before its commit: for every route that writes, a commit that fails gives the client
a 5xx, and nothing is stored. (A commit after the response would tell the caller "saved".)"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.catalog import EVENT_TYPES
from app.events.outbox import emit_transactions
from app.events.schemas import EndpointIn
from app.main import create_app
from app.models import (
    BankFeed,
    BankTransaction,
    CodatEvent,
    ConsoleAuditEntry,
    Customer,
    EventDelivery,
    EventEndpoint,
    SourceAccount,
    TransactionPush,
    UsedConnectToken,
)
from tests.conftest import PUBLIC_BASE, Service, make_settings
from tests.console.support import csrf_of, sign_in
from tests.factories import add_account, add_customer
from tests.ops_api import account_body, customer_with_accounts, with_bank_feed
from tests.reliability.support import connect_token
from tests.webhooks.support import connection_payload, envelope, seed_feed, signed_headers

Request = Callable[[httpx.AsyncClient, Service], Awaitable[httpx.Response]]
Setup = Callable[[Service], Awaitable[None]]
Stored = Callable[[AsyncSession], Awaitable[bool]]


@dataclass(frozen=True)
class WriteRoute:
    method: str
    path: str  # the route's template, as the app declares it
    setup: Setup
    send: Request
    stored: Stored  # True when the write reached the database


async def nothing(service: Service) -> None:
    return None


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def customer_stored(session: AsyncSession) -> bool:
    return await session.get(Customer, "cus-1") is not None


async def customer_deleted(session: AsyncSession) -> bool:
    return not await customer_stored(session)


async def account_stored(session: AsyncSession) -> bool:
    return await session.get(SourceAccount, ("cus-1", "acc-new")) is not None


async def account_deleted(session: AsyncSession) -> bool:
    return await session.get(SourceAccount, ("cus-1", "acc-0")) is None


async def account_closed(session: AsyncSession) -> bool:
    account = await session.get(SourceAccount, ("cus-1", "acc-0"))
    return account is not None and account.closed_at is not None


async def event_stored(session: AsyncSession) -> bool:
    return await count(session, CodatEvent) > 0


def ops(method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Request:
    async def send(client: httpx.AsyncClient, service: Service) -> httpx.Response:
        everything = {**service.ops_headers, **(headers or {})}
        return await client.request(method, path, headers=everything, **kwargs)

    return send


async def linked_feed_with_a_new_account(service: Service) -> None:
    await with_bank_feed(service)
    await add_account(service.sessions, "cus-1", "acc-new")


async def a_handled_event(service: Service) -> None:
    await seed_feed(service.sessions)
    body = json.dumps(envelope("connection.connected", connection_payload("Linked"))).encode()
    response = await service.client.post(
        "/webhooks/codat", content=body, headers=signed_headers(body)
    )
    assert response.status_code == 202
    assert await service.services.inbox_worker().run_once() == 1


async def retry_the_event(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    async with service.sessions() as session:
        event_id = await session.scalar(select(CodatEvent.id))
    return await ops("POST", f"/ops/webhook-events/{event_id}/retry")(client, service)


async def deliver(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    body = json.dumps(envelope("connection.connected", connection_payload("Linked"))).encode()
    return await client.post("/webhooks/codat", content=body, headers=signed_headers(body))


async def click_link(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    return await client.get("/connect-bank-feeds", params={"token": connect_token("cus-1")})


async def click_form(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    return await client.post("/connect-bank-feeds", data={"token": connect_token("cus-1")})


async def a_customer(service: Service) -> None:
    await add_customer(service.sessions)


async def post_demo_transactions(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    return await client.post("/demo/customers/cus-1/transactions")


async def transactions_stored(session: AsyncSession) -> bool:
    return await count(session, BankTransaction) > 0


async def click_stored(session: AsyncSession) -> bool:
    return await count(session, UsedConnectToken) > 0 or await count(session, BankFeed) > 0


async def refreshed(session: AsyncSession) -> bool:
    feed = await session.get(BankFeed, "cus-1")
    return feed is not None and feed.last_refreshed_at is not None


async def new_account_pushed(session: AsyncSession) -> bool:
    account = await session.get(SourceAccount, ("cus-1", "acc-new"))
    return account is not None and account.pushed_at is not None


async def requeued(session: AsyncSession) -> bool:
    [status] = (await session.execute(select(CodatEvent.status))).scalars()
    return bool(status == "pending")


async def an_endpoint(service: Service) -> None:
    body = EndpointIn.model_validate(
        {"url": "https://bank.test/hooks", "event_types": list(EVENT_TYPES)}
    )
    await service.services.events.put_endpoint("host-app", body)


async def a_failed_delivery(service: Service) -> None:
    await an_endpoint(service)
    await add_customer(service.sessions, accounts=0)
    async with service.sessions() as session:
        await emit_transactions(session, "pushed", "cus-1", "acc-0", ["txn-1"])
        await session.execute(update(EventDelivery).values(status="failed", attempts=9))
        await session.commit()


async def redeliver(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    async with service.sessions() as session:
        delivery_id = await session.scalar(select(EventDelivery.id))
    return await ops("POST", f"/ops/event-deliveries/{delivery_id}/redeliver")(client, service)


async def endpoint_stored(session: AsyncSession) -> bool:
    return await session.get(EventEndpoint, "host-app") is not None


async def endpoint_deleted(session: AsyncSession) -> bool:
    return not await endpoint_stored(session)


async def secret_rotated(session: AsyncSession) -> bool:
    endpoint = await session.get(EventEndpoint, "host-app")
    return endpoint is not None and endpoint.previous_secret is not None


async def redelivery_queued(session: AsyncSession) -> bool:
    [status] = (await session.execute(select(EventDelivery.status))).scalars()
    return bool(status == "pending")


async def audited(session: AsyncSession, action: str) -> bool:
    entry = select(ConsoleAuditEntry.id).where(ConsoleAuditEntry.action == action).limit(1)
    return await session.scalar(entry) is not None


def console(path: str, **data: str) -> Request:
    """A console form, posted by the browser that signed in during the setup; `{event_id}` and
    `{push_id}` are the stored event's and push's."""

    async def send(client: httpx.AsyncClient, service: Service) -> httpx.Response:
        client.cookies = service.client.cookies
        page = await client.get("/console/")  # reading commits nothing
        async with service.sessions() as session:
            event_id = await session.scalar(select(CodatEvent.id))
            push_id = await session.scalar(select(TransactionPush.id))
        target = path.format(event_id=event_id, push_id=push_id)
        return await client.post(target, data={"csrf": csrf_of(page.text), **data})

    return send


def signed_in(setup: Setup) -> Setup:
    async def both(service: Service) -> None:
        await setup(service)
        assert (await sign_in(service.client)).status_code == 303

    return both


async def console_sign_in(client: httpx.AsyncClient, service: Service) -> httpx.Response:
    return await sign_in(client)


async def signed_in_stored(session: AsyncSession) -> bool:
    return await audited(session, "sign_in")


async def signed_out(session: AsyncSession) -> bool:
    return await audited(session, "sign_out")


async def link_audited(session: AsyncSession) -> bool:
    return await audited(session, "connect_link")


async def refresh_stored(session: AsyncSession) -> bool:
    return await refreshed(session) or await audited(session, "refresh")


async def a_held_transaction(service: Service) -> None:
    """cus-1's acc-0 with bank-1 held ten days back and bank-2 rejected in failed push 1."""
    await customer_with_accounts(service)
    today = service.sandbox.clock.today()
    async with service.sessions() as session:
        push = TransactionPush(
            customer_id="cus-1", account_id="acc-0", company_id="c", connection_id="k",
            idempotency_key="key-1", body="{}", status="failed", transaction_count=1,
            last_date=today, last_balance=Decimal("1"), requested_at=service.sandbox.clock.now(),
            attempts=1,
        )  # fmt: skip
        session.add(push)
        await session.flush()
        for n, status, day in ((1, "held", today - timedelta(days=10)), (2, "rejected", today)):
            session.add(
                BankTransaction(
                    customer_id="cus-1",
                    account_id="acc-0",
                    id=f"bank-{n}",
                    cleared_on=day,
                    description="Card",
                    amount=Decimal("-1"),
                    balance=Decimal("1"),
                    transaction_type="Debit",
                    status=status,
                    reason="why",
                    push_id=push.id if status == "rejected" else None,
                )
            )
        await session.commit()


def transaction_status(transaction_id: str, status: str) -> Stored:
    async def check(session: AsyncSession) -> bool:
        found = await session.scalar(
            select(BankTransaction.status).where(BankTransaction.id == transaction_id)
        )
        return found == status

    return check


async def push_retried(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(TransactionPush.retried_at)))


def release(client: httpx.AsyncClient, service: Service) -> Awaitable[httpx.Response]:
    body = {"date": service.sandbox.clock.today().isoformat(), "reason": "late posting"}
    path = "/ops/customers/cus-1/accounts/acc-0/transactions/bank-1:release"
    return ops("POST", path, json=body)(client, service)


def on_the_push(action: str) -> Request:
    async def send(client: httpx.AsyncClient, service: Service) -> httpx.Response:
        async with service.sessions() as session:
            push_id = await session.scalar(select(TransactionPush.id))
        return await ops("POST", f"/ops/pushes/{push_id}:{action}")(client, service)

    return send


async def a_timed_out_push(service: Service) -> None:
    await a_held_transaction(service)
    async with service.sessions() as session:
        await session.execute(update(TransactionPush).values(status="timed_out"))
        await session.execute(
            update(BankTransaction).where(BankTransaction.id == "bank-2").values(status="pushing")
        )
        await session.commit()


CSV = "customer_id,name,country\ncus-1,Acme Plumbing LLC,US\n"
TRANSACTION = {
    "id": "bank-9", "date": "2020-01-02", "description": "Card", "amount": -1, "balance": 1,
    "transactionType": "Debit",
}  # fmt: skip
ENDPOINT = {"url": "https://bank.test/hooks", "event_types": ["customer.connected"]}

WRITE_ROUTES = [
    WriteRoute(
        "PUT",
        "/ops/customers/{customer_id}",
        nothing,
        ops("PUT", "/ops/customers/cus-1", json={"name": "Acme", "country": "US"}),
        customer_stored,
    ),
    WriteRoute(
        "DELETE",
        "/ops/customers/{customer_id}",
        with_bank_feed,
        ops("DELETE", "/ops/customers/cus-1", params={"purge": "true"}),
        customer_deleted,
    ),
    WriteRoute(
        "PUT",
        "/ops/customers/{customer_id}/accounts/{account_id}",
        with_bank_feed,
        ops("PUT", "/ops/customers/cus-1/accounts/acc-new", json=account_body()),
        account_stored,
    ),
    WriteRoute(
        "DELETE",
        "/ops/customers/{customer_id}/accounts/{account_id}",
        customer_with_accounts,
        ops("DELETE", "/ops/customers/cus-1/accounts/acc-0"),
        account_deleted,
    ),
    WriteRoute(
        "POST",
        "/ops/customers/{customer_id}/accounts/{account_id}:close",
        with_bank_feed,
        ops("POST", "/ops/customers/cus-1/accounts/acc-0:close"),
        account_closed,
    ),
    WriteRoute(
        "GET",
        "/ops/customers/{customer_id}/bank-feed",
        with_bank_feed,
        ops("GET", "/ops/customers/cus-1/bank-feed", params={"refresh": "true"}),
        refreshed,
    ),
    WriteRoute(
        "POST",
        "/ops/customers/{customer_id}/bank-feed/sync",
        linked_feed_with_a_new_account,
        ops("POST", "/ops/customers/cus-1/bank-feed/sync"),
        new_account_pushed,
    ),
    WriteRoute(
        "POST",
        "/ops/customers:import",
        nothing,
        ops("POST", "/ops/customers:import", {"content-type": "text/csv"}, content=CSV),
        customer_stored,
    ),
    WriteRoute(
        "POST",
        "/ops/webhook-events/{event_id}/retry",
        a_handled_event,
        retry_the_event,
        requeued,
    ),
    WriteRoute(
        "PUT",
        "/ops/event-endpoints/{name}",
        nothing,
        ops("PUT", "/ops/event-endpoints/host-app", json=ENDPOINT),
        endpoint_stored,
    ),
    WriteRoute(
        "DELETE",
        "/ops/event-endpoints/{name}",
        an_endpoint,
        ops("DELETE", "/ops/event-endpoints/host-app"),
        endpoint_deleted,
    ),
    WriteRoute(
        "POST",
        "/ops/event-endpoints/{name}/rotate-secret",
        an_endpoint,
        ops("POST", "/ops/event-endpoints/host-app/rotate-secret"),
        secret_rotated,
    ),
    WriteRoute(
        "POST",
        "/ops/event-deliveries/{delivery_id}/redeliver",
        a_failed_delivery,
        redeliver,
        redelivery_queued,
    ),
    WriteRoute(
        "POST",
        "/ops/customers/{customer_id}/accounts/{account_id}/transactions",
        customer_with_accounts,
        ops(
            "POST",
            "/ops/customers/cus-1/accounts/acc-0/transactions",
            json={"transactions": [TRANSACTION]},
        ),
        transaction_status("bank-9", "pending"),
    ),
    WriteRoute(
        "POST",
        "/ops/customers/{customer_id}/accounts/{account_id}/transactions:requeue",
        a_held_transaction,
        ops(
            "POST",
            "/ops/customers/cus-1/accounts/acc-0/transactions:requeue",
            json={"ids": ["bank-1"]},
        ),
        transaction_status("bank-1", "pending"),
    ),
    WriteRoute(
        "POST",
        "/ops/customers/{customer_id}/accounts/{account_id}/transactions/{transaction_id}:release",
        a_held_transaction,
        release,
        transaction_status("bank-1", "pending"),
    ),
    WriteRoute(
        "POST",
        "/ops/pushes/{push_id}:retry",
        a_held_transaction,
        on_the_push("retry"),
        push_retried,
    ),
    WriteRoute(
        "POST",
        "/ops/pushes/{push_id}:landed",
        a_timed_out_push,
        on_the_push("landed"),
        transaction_status("bank-2", "pushed"),
    ),
    WriteRoute("POST", "/webhooks/codat", nothing, deliver, event_stored),
    WriteRoute("POST", "/console/sign-in", nothing, console_sign_in, signed_in_stored),
    WriteRoute(
        "POST", "/console/sign-out", signed_in(nothing), console("/console/sign-out"), signed_out
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/refresh",
        signed_in(with_bank_feed),
        console("/console/customers/cus-1/refresh"),
        refresh_stored,
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/connect-link",
        signed_in(a_customer),
        console("/console/customers/cus-1/connect-link"),
        link_audited,
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/offboard",
        signed_in(with_bank_feed),
        console("/console/customers/cus-1/offboard", mode="purge", confirm="cus-1"),
        customer_deleted,
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/accounts/{account_id}/close",
        signed_in(with_bank_feed),
        console("/console/customers/cus-1/accounts/acc-0/close", confirm="yes"),
        account_closed,
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/pushes/{push_id}/retry",
        signed_in(a_held_transaction),
        console("/console/customers/cus-1/pushes/{push_id}/retry"),
        push_retried,
    ),
    WriteRoute(
        "POST",
        "/console/customers/{customer_id}/accounts/{account_id}/requeue",
        signed_in(a_held_transaction),
        console("/console/customers/cus-1/accounts/acc-0/requeue"),
        transaction_status("bank-1", "pending"),
    ),
    WriteRoute(
        "POST",
        "/console/events/{event_id}/retry",
        signed_in(a_handled_event),
        console("/console/events/{event_id}/retry"),
        requeued,
    ),
    WriteRoute("GET", "/connect-bank-feeds", a_customer, click_link, click_stored),
    WriteRoute("POST", "/connect-bank-feeds", a_customer, click_form, click_stored),
    WriteRoute(
        "POST",
        "/demo/customers/{customer_id}/transactions",
        a_customer,
        post_demo_transactions,
        transactions_stored,
    ),
]
# Routes that write nothing, though their method could. (The demo host app keeps the events it
# receives in memory, as a page of its own would.)
READ_ONLY = {
    ("POST", "/ops/customers/{customer_id}/connect-url"),
    ("POST", "/demo/events"),
}


class FailingCommits:
    """While `failing`, every commit raises as a database that went away would."""

    def __init__(self) -> None:
        self.failing = False
        self.refused = 0

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        self.failing = True
        try:
            yield
        finally:
            self.failing = False


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> FailingCommits:
    switch = FailingCommits()
    real = AsyncSession.commit

    async def commit(self: AsyncSession) -> None:
        if switch.failing:
            switch.refused += 1
            raise OperationalError("COMMIT", None, RuntimeError("the database went away"))
        await real(self)

    monkeypatch.setattr(AsyncSession, "commit", commit)
    return switch


@pytest.fixture
async def raw_client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sees the 500 the server sends, as a browser or Codat would."""
    transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE) as client:
        yield client


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_a_failed_commit_is_a_5xx_and_stores_nothing(
    service: Service, commits: FailingCommits, raw_client: httpx.AsyncClient, route: WriteRoute
) -> None:
    await route.setup(service)
    with commits.on():
        response = await route.send(raw_client, service)
    assert 500 <= response.status_code < 600, (response.status_code, response.text)
    assert commits.refused >= 1
    async with service.sessions() as session:
        assert not await route.stored(session)


def test_every_route_that_writes_is_covered() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"), run_background=False)
    writing = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method in ("POST", "PUT", "PATCH", "DELETE")
    }
    covered = {(r.method, r.path) for r in WRITE_ROUTES}
    assert writing - covered == READ_ONLY
    assert covered - writing == {
        ("GET", "/ops/customers/{customer_id}/bank-feed"),  # with refresh=true
        ("GET", "/connect-bank-feeds"),  # a click
    }

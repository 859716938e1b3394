"""The connect flow against Codat's own rules: deleted companies, kept 5xx answers, requests
still in progress, "already exists" that must be compared, names Codat accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import BankFeed, BankFeedConnection, CodatEvent
from app.sandbox.faults import FaultConfig
from tests.conftest import Service, _truncate, start_service
from tests.connect.test_connect_flow import click, connections, text
from tests.factories import add_customer


class KeptServerError(httpx.AsyncBaseTransport):
    """Codat doing the work and answering 500, and replaying that 500 to the same key."""

    def __init__(self, fail: Callable[[httpx.Request], bool]) -> None:
        self.sandbox: Any = None
        self.fail = fail
        self.failed_keys: set[str] = set()
        self.keys: list[tuple[str, str, str]] = []
        self.work_done = True  # the 5xx came after the work; False: before it

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key", "")
        self.keys.append((request.method, request.url.path, key))
        error = {"statusCode": 500, "error": "Internal error", "correlationId": "c-500"}
        if key and key in self.failed_keys:
            return httpx.Response(500, json=error)  # Codat's replay of the kept answer
        if key and self.fail(request):
            self.fail = lambda _: False  # once
            self.failed_keys.add(key)
            if self.work_done:
                done = await httpx.ASGITransport(app=self.sandbox).handle_async_request(request)
                await done.aread()
            return httpx.Response(500, json=error)
        return await httpx.ASGITransport(app=self.sandbox).handle_async_request(request)


@pytest.fixture
async def kept_500(database_url: str) -> AsyncIterator[tuple[Service, KeptServerError]]:
    await _truncate(database_url)
    transport = KeptServerError(lambda r: False)
    async for service in start_service(database_url, codat_transport=transport):
        transport.sandbox = service.app.state.sandbox_app
        yield service, transport


async def _events_handled(service: Service) -> None:
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()


@pytest.mark.parametrize(
    "path_end", ["/companies", "/connections", "/bankFeedAccounts/batch"], ids=str
)
async def test_a_kept_5xx_is_read_back_and_only_the_missing_is_redone(
    kept_500: tuple[Service, KeptServerError], path_end: str
) -> None:
    service, transport = kept_500
    await add_customer(service.sessions, accounts=2)
    transport.fail = lambda r: r.method == "POST" and r.url.path.endswith(path_end)

    response = await click(service)

    assert response.status_code == 302
    store = service.sandbox.store
    assert len(store.companies) == 1 and len(connections(service)) == 1
    [connection] = connections(service)
    assert sorted(connection.source_accounts) == ["cus-1-acc-0", "cus-1-acc-1"]
    posts = [(p, k) for m, p, k in transport.keys if m == "POST" and p.endswith(path_end)]
    keys = [k for _, k in posts]
    assert len(keys) == len(set(keys))  # never the same key after a 500


@pytest.mark.parametrize("path_end", ["/companies", "/connections"], ids=str)
async def test_a_kept_5xx_that_did_nothing_is_sent_again_under_a_new_key(
    kept_500: tuple[Service, KeptServerError], path_end: str
) -> None:
    service, transport = kept_500
    transport.work_done = False
    await add_customer(service.sessions, accounts=2)
    transport.fail = lambda r: r.method == "POST" and r.url.path.endswith(path_end)

    response = await click(service)

    assert response.status_code == 302
    assert len(service.sandbox.store.companies) == 1 and len(connections(service)) == 1
    keys = [k for m, p, k in transport.keys if m == "POST" and p.endswith(path_end)]
    assert len(keys) == 2 and len(set(keys)) == 2  # the kept 500 is not asked for again


async def test_deleted_company_webhook_forgets_it_and_the_next_click_makes_three_calls(
    service: Service,
) -> None:
    await add_customer(service.sessions, accounts=2)
    assert (await click(service)).status_code == 302
    [company_id] = service.sandbox.store.companies
    service.sandbox.store.delete_company(company_id)
    await _events_handled(service)
    service.sandbox.reset_calls()

    response = await click(service)

    assert response.status_code == 302
    assert [(c.method, c.route) for c in service.sandbox.calls] == [
        ("POST", "/companies"),
        ("POST", "/companies/{companyId}/connections"),
        (
            "POST",
            "/companies/{companyId}/connections/{connectionId}/connectionInfo/bankFeedAccounts/batch",
        ),
    ]
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        history = list(await session.scalars(select(BankFeedConnection)))
        event = await session.scalar(
            select(CodatEvent).where(CodatEvent.event_type == "company.deleted")
        )
    assert feed is not None and feed.company_id != company_id
    dead = [h for h in history if h.company_id == company_id]
    assert dead and all(h.status == "CompanyDeleted" and h.replaced_at for h in dead)
    assert event is not None and event.customer_id == "cus-1" and event.status == "handled"
    feed_page = await service.client.get(
        "/ops/customers/cus-1/bank-feed", headers=service.ops_headers
    )
    assert [h["status"] for h in feed_page.json()["history"]] == ["CompanyDeleted"]


async def test_deleted_company_found_by_a_404_is_recreated_on_the_same_click(
    service: Service,
) -> None:
    await add_customer(service.sessions, accounts=2)
    assert (await click(service)).status_code == 302
    [company_id] = service.sandbox.store.companies
    company = service.sandbox.store.companies.pop(company_id)  # gone, and no webhook
    assert company.connections

    response = await click(service)

    assert response.status_code == 302
    [new_company] = service.sandbox.store.companies
    assert new_company != company_id
    [connection] = connections(service)
    assert len(connection.source_accounts) == 2


@pytest.mark.parametrize(
    "route", ["/companies", "/companies/{companyId}/connections"], ids=["company", "connection"]
)
async def test_a_request_still_in_progress_is_waited_on_then_try_again_in_a_moment(
    database_url: str, route: str
) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, connect_retry_budget_seconds=1.5):
        await add_customer(service.sessions, accounts=1)
        faults = service.app.state.sandbox_app.state.faults
        faults.configure(
            FaultConfig(
                timeout_rate=1.0,
                timeout_seconds=0.3,
                still_running_seconds=3.0,
                methods=("POST",),
                routes=(route,),
            )
        )
        first = await click(service)
        statuses = [c.idempotency for c in service.sandbox.calls]
        faults.configure(FaultConfig())
        again = await click(service)  # Codat is still working: the same key, not a new one
        await asyncio.gather(*faults.background)
        second = await click(service)

        assert first.status_code == 503
        assert "try again" in text(first).lower()
        assert "in_progress" in statuses  # the same key, answered 409 while Codat worked
        assert again.status_code in (302, 503)
        assert second.status_code == 302
        # The held request's company (or connection), once.
        assert len(service.sandbox.store.companies) == 1 and len(connections(service)) == 1


async def test_already_exists_is_compared_and_a_rename_reaches_codat(service: Service) -> None:
    await add_customer(service.sessions, accounts=1)
    assert (await click(service)).status_code == 302
    [connection] = connections(service)
    account = connection.source_accounts["cus-1-acc-0"]
    async with service.sessions() as session:
        row = await session.get(BankFeed, "cus-1")
        assert row is not None
        from app.models import SourceAccount

        ours = await session.get(SourceAccount, ("cus-1", "cus-1-acc-0"))
        assert ours is not None
        ours.pushed_at = None  # as if the 201 was lost...
        ours.account_name = "Renamed since"  # ...and the account renamed before the retry
        await session.commit()

    assert (await click(service)).status_code == 302

    assert account.account_name == "Renamed since"
    assert account.balance == Decimal("-5")


async def test_non_ascii_names_are_stored_as_given_and_sent_as_codat_accepts(
    service: Service,
) -> None:
    put = await service.client.put(
        "/ops/customers/cus-fr",
        json={"name": "Boulangerie Bélanger", "country": "CA", "locale": "fr"},
        headers=service.ops_headers,
    )
    account = {
        "accountName": "Compte chèques",
        "accountType": "checking",
        "accountNumber": "12345678",
        "currency": "CAD",
        "balance": "10.00",
    }
    added = await service.client.put(
        "/ops/customers/cus-fr/accounts/a-1", json=account, headers=service.ops_headers
    )
    response = await click(service, "cus-fr")

    assert put.status_code == 201 and added.status_code == 201
    got = await service.client.get("/ops/customers/cus-fr", headers=service.ops_headers)
    assert got.json()["name"] == "Boulangerie Bélanger"
    assert response.status_code == 302
    [company] = service.sandbox.store.companies.values()
    assert company.name == "Boulangerie Belanger"


async def test_many_renamed_accounts_stay_within_ten_requests_per_company(
    service: Service,
) -> None:
    await add_customer(service.sessions, accounts=25)
    assert (await click(service)).status_code == 302
    async with service.sessions() as session:
        from app.models import SourceAccount

        for account in await session.scalars(select(SourceAccount)):
            account.account_name = f"Renamed {account.id}"
        await session.commit()
    faults = service.app.state.sandbox_app.state.faults
    faults.configure(FaultConfig(latency_ms=50))  # so the PATCHes overlap
    service.sandbox.reset_calls()

    assert (await click(service)).status_code == 302

    patches = [c for c in service.sandbox.calls if c.method == "PATCH"]
    assert len(patches) == 25 and all(c.status == 200 for c in patches)
    assert not [c for c in service.sandbox.calls if c.fault == "concurrency"]
    [connection] = connections(service)
    assert all(a.account_name.startswith("Renamed") for a in connection.source_accounts.values())


def test_only_a_qbo_bank_feed_connection_is_adopted() -> None:
    from app.bank_feeds.writes import adoptable
    from app.codat.models import Connection

    def connection(**fields: object) -> Connection:
        return Connection.model_validate({"id": "c", "status": "PendingAuth", **fields})

    qbo = connection(sourceType="BankFeed", integrationKey="hcws")
    unkeyed = connection(sourceType="BankFeed")
    xero = connection(sourceType="BankFeed", integrationKey="gbol")
    accounting = connection(sourceType="Accounting", integrationKey="hcws")
    untyped = connection(integrationKey="hcws")
    unlinked = connection(sourceType="BankFeed", integrationKey="hcws", status="Unlinked")
    assert adoptable([qbo, unkeyed, xero, accounting, untyped, unlinked]) == [qbo, unkeyed]

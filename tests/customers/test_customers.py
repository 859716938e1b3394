"""PUT/GET/DELETE /ops/customers/{id}: our database decides; offboarding unlinks or purges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import BankFeed, BankFeedConnection, Customer, SourceAccount
from tests.conftest import FaultyService, Service
from tests.ops_api import (
    calls,
    codat_connection,
    link_in_quickbooks,
    ops_get,
    put_account,
    put_customer,
    with_bank_feed,
)


async def test_put_creates_then_updates(service: Service) -> None:
    created = await put_customer(service, "cus-1", name="Acme Plumbing LLC", country="CA")
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == "cus-1" and body["name"] == "Acme Plumbing LLC"
    assert body["country"] == "CA" and body["locale"] == "en" and body["can_connect"] is True
    assert body["bank_feed"] is None
    assert body["accounts"] == {
        "total": 0,
        "connected_count": 0,
        "by_status": dict.fromkeys(
            [
                "not_pushed",
                "pending",
                "connecting",
                "connected",
                "disconnected",
                "closed",
                "unknown",
            ],
            0,
        ),
    }
    updated = await put_customer(service, "cus-1", name="Acme & Sons, Inc.", locale="fr")
    assert updated.status_code == 200
    assert updated.json()["name"] == "Acme & Sons, Inc." and updated.json()["locale"] == "fr"
    assert updated.json()["created_at"] == body["created_at"]
    async with service.sessions() as session:
        customer = await session.get(Customer, "cus-1")
    assert customer is not None and customer.locale == "fr" and customer.country == "US"
    assert customer.updated_at.tzinfo is not None
    assert service.codat_calls() == []  # customers are ours: Codat hears of them on Connect


async def test_two_puts_racing_to_create_both_succeed(service: Service) -> None:
    first, second = await asyncio.gather(
        put_customer(service, "cus-9", name="First"), put_customer(service, "cus-9", name="Second")
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1


async def test_any_real_country_is_stored_but_only_us_and_ca_can_connect(service: Service) -> None:
    response = await put_customer(service, "cus-gb", country="GB")
    assert response.status_code == 201 and response.json()["can_connect"] is False


async def test_get_summarises_accounts_and_bank_feed(service: Service) -> None:
    await with_bank_feed(service, accounts=3)
    link_in_quickbooks(service, "cus-1", ["acc-0"])
    await ops_get(service, "/ops/customers/cus-1/bank-feed", refresh="true")
    body = (await ops_get(service, "/ops/customers/cus-1")).json()
    assert body["accounts"]["total"] == 3 and body["accounts"]["connected_count"] == 1
    assert body["accounts"]["by_status"]["pending"] == 2
    feed = body["bank_feed"]
    assert feed["connection_status"] == "Linked" and feed["company_id"] and feed["connection_id"]
    assert feed["needs_customer_action"] is True  # two accounts still pending


async def test_unknown_customer_is_404_json(service: Service) -> None:
    response = await ops_get(service, "/ops/customers/nobody")
    assert response.status_code == 404
    assert response.json() == {"detail": "Customer 'nobody' not found."}


@pytest.mark.parametrize(
    ("customer_id", "body", "field"),
    [
        ("cus 1", {}, ["path", "customer_id"]),
        ("c" * 65, {}, ["path", "customer_id"]),
        ("cus-1", {"name": ""}, ["body", "name"]),
        ("cus-1", {"name": "Acme <script>"}, ["body", "name"]),
        ("cus-1", {"name": "   "}, ["body", "name"]),
        ("cus-1", {"name": "A" * 201}, ["body", "name"]),
        ("cus-1", {"country": "us"}, ["body", "country"]),
        ("cus-1", {"country": "XX"}, ["body", "country"]),
        ("cus-1", {"country": "USA"}, ["body", "country"]),
        ("cus-1", {"locale": "de"}, ["body", "locale"]),
        ("cus-1", {"name": None}, ["body", "name"]),
        ("cus-1", {"extra": 1}, ["body", "extra"]),
    ],
)
async def test_validation_errors_are_422_naming_the_field(
    service: Service, customer_id: str, body: dict[str, Any], field: list[str]
) -> None:
    full = {"name": "Acme", "country": "US", "locale": "en", **body}
    full = {k: v for k, v in full.items() if v is not None}
    response = await service.client.put(
        f"/ops/customers/{customer_id}", json=full, headers=service.ops_headers
    )
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == field for e in errors), errors
    assert all({"loc", "msg", "type"} <= set(e) for e in errors)
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_offboard_unlinks_a_linked_connection_and_keeps_our_rows(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    response = await service.client.delete("/ops/customers/cus-1", headers=service.ops_headers)
    assert response.status_code == 200
    assert response.json() == {
        "customer_id": "cus-1",
        "purge": False,
        "codat": {
            "connection_unlinked": True,
            "company_deleted": False,
            "connection_status": "Unlinked",
            "companies_deleted": [],
        },
        "local": {"customer_deleted": False, "accounts_deleted": 0},
    }
    assert codat_connection(service).status.value == "Unlinked"
    assert codat_connection(service).credentials == {}  # revoked: QuickBooks cannot use them
    assert [m for m, _ in calls(service)] == ["GET", "DELETE", "PATCH"]
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None and feed.connection_status == "Unlinked"
        assert await session.scalar(select(func.count()).select_from(SourceAccount)) == 2
    status = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    assert status["needs_customer_action"] is True
    assert [r["code"] for r in status["reasons"]] == ["connection_unlinked"]


async def test_offboard_revokes_credentials_and_ends_a_pending_connection(
    service: Service,
) -> None:
    await with_bank_feed(service)
    connection = codat_connection(service)
    service.sandbox.bank_feeds.issue_credentials(connection)  # the Link page handed some out
    response = await service.client.delete("/ops/customers/cus-1", headers=service.ops_headers)
    assert response.status_code == 200
    assert response.json()["codat"]["connection_unlinked"] is True
    assert response.json()["codat"]["connection_status"] == "Unlinked"
    # Codat unlinks only Linked connections: a pending one is deleted, its credentials revoked.
    assert [m for m, _ in calls(service)] == ["GET", "DELETE", "DELETE"]
    assert connection.credentials == {}
    assert not any(c.connections for c in service.sandbox.store.companies.values())


async def test_offboard_without_bank_feed_calls_nothing(service: Service) -> None:
    await put_customer(service)
    response = await service.client.delete("/ops/customers/cus-1", headers=service.ops_headers)
    assert response.status_code == 200
    assert response.json()["codat"]["connection_unlinked"] is False
    assert response.json()["local"]["customer_deleted"] is False
    assert service.codat_calls() == []


async def test_purge_deletes_the_codat_company_and_our_rows(service: Service) -> None:
    await with_bank_feed(service)
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None
        company_id = feed.company_id
    await put_customer(service, "cus-2")  # another customer is untouched
    await put_account(service, "cus-2", "acc-x")
    response = await service.client.delete(
        "/ops/customers/cus-1", params={"purge": "true"}, headers=service.ops_headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["codat"]["company_deleted"] is True
    assert body["codat"]["companies_deleted"] == [company_id]
    assert body["local"] == {"customer_deleted": True, "accounts_deleted": 2}
    assert company_id not in service.sandbox.store.companies
    assert ("DELETE", f"/companies/{company_id}") in calls(service)
    async with service.sessions() as session:
        for model in (Customer, SourceAccount, BankFeed, BankFeedConnection):
            rows = (await session.execute(select(model))).scalars().all()
            assert all(getattr(r, "customer_id", getattr(r, "id", None)) != "cus-1" for r in rows)
        assert await session.get(Customer, "cus-2") is not None
    assert (await ops_get(service, "/ops/customers/cus-1")).status_code == 404


async def test_purge_finds_a_company_whose_id_was_never_stored(service: Service) -> None:
    await with_bank_feed(service)
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None
        feed.company_id = feed.connection_id = None  # as if Codat's answer had been lost
        await session.commit()
    response = await service.client.delete(
        "/ops/customers/cus-1?purge=true", headers=service.ops_headers
    )
    assert response.status_code == 200 and response.json()["codat"]["company_deleted"] is True
    assert service.sandbox.store.companies == {}


async def test_offboard_when_codat_is_down_is_503_and_changes_nothing(
    faulty: FaultyService,
) -> None:
    service = faulty.service
    await with_bank_feed(service)
    faulty.fail(503)
    response = await service.client.delete(
        "/ops/customers/cus-1?purge=true", headers=service.ops_headers
    )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "nothing was changed" in response.json()["detail"]
    async with service.sessions() as session:
        assert await session.get(Customer, "cus-1") is not None

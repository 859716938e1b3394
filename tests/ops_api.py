"""Helpers for the ops API tests: customers and accounts through the API, a linked bank feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from app.sandbox.state import Connection
from tests.conftest import Service


def account_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accountName": "Business Checking",
        "accountType": "checking",
        "accountNumber": "12345670",
        "currency": "USD",
        "balance": "1500.25",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def put_customer(
    service: Service, customer_id: str = "cus-1", **overrides: Any
) -> httpx.Response:
    body = {"name": "Acme Plumbing LLC", "country": "US", "locale": "en", **overrides}
    return await service.client.put(
        f"/ops/customers/{customer_id}", json=body, headers=service.ops_headers
    )


async def put_account(
    service: Service, customer_id: str = "cus-1", account_id: str = "acc-1", **overrides: Any
) -> httpx.Response:
    return await service.client.put(
        f"/ops/customers/{customer_id}/accounts/{account_id}",
        json=account_body(**overrides),
        headers=service.ops_headers,
    )


async def customer_with_accounts(
    service: Service, customer_id: str = "cus-1", accounts: int = 2
) -> None:
    assert (await put_customer(service, customer_id)).status_code == 201
    for n in range(accounts):
        response = await put_account(
            service,
            customer_id,
            f"acc-{n}",
            accountName=f"Account {n}",
            accountNumber=f"{1000000 + n}",
        )
        assert response.status_code == 201, response.text


async def with_bank_feed(service: Service, customer_id: str = "cus-1", accounts: int = 2) -> None:
    """A customer whose accounts are in Codat: the connect flow ran (connection PendingAuth)."""
    await customer_with_accounts(service, customer_id, accounts)
    await service.services.connect.connect(customer_id)
    service.sandbox.reset_calls()


def codat_connection(service: Service, customer_id: str = "cus-1") -> Connection:
    for company in service.sandbox.store.companies.values():
        if company.tags.get("bankfeedsCustomerId") == customer_id:
            return next(iter(company.connections.values()))  # type: ignore[no-any-return]
    raise AssertionError(f"no Codat company for {customer_id}")


def link_in_quickbooks(service: Service, customer_id: str, account_ids: list[str]) -> None:
    """The customer connects these accounts in QuickBooks: the connection becomes Linked."""
    connection = codat_connection(service, customer_id)
    service.sandbox.bank_feeds.connect_accounts(connection, account_ids, datetime.now(UTC).date())


async def ops_get(service: Service, path: str, **params: Any) -> httpx.Response:
    return await service.client.get(path, params=params, headers=service.ops_headers)


def calls(service: Service) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in service.sandbox.calls]

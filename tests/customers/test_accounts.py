"""Accounts: CRUD on our rows, and each change in Codat within the request when a feed exists."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.bank_feeds.sync import in_sync
from app.models import SourceAccount
from tests.conftest import FaultyService, Service
from tests.ops_api import (
    account_body,
    calls,
    codat_connection,
    link_in_quickbooks,
    ops_get,
    put_account,
    put_customer,
    with_bank_feed,
)


async def stored(service: Service, account_id: str = "acc-1") -> SourceAccount | None:
    async with service.sessions() as session:
        return await session.get(SourceAccount, ("cus-1", account_id))


# --- our rows ---------------------------------------------------------------------------------


async def test_account_crud_without_bank_feed_touches_only_our_database(service: Service) -> None:
    await put_customer(service)
    created = await put_account(
        service,
        balance="-20.5",
        sortCode="12-34-56",
        routingInfo={"bankCode": "021001088", "type": "aba"},
        accountInfo={"nickname": "Main", "accountOpenDate": "2023-05-06", "availableBalance": 10},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "acc-1" and body["balance"] == "-20.50"
    assert body["status"] == "not_pushed" and body["feedStartDate"] is None
    assert body["routingInfo"] == {"bankCode": "021001088", "type": "aba"}
    assert body["accountInfo"]["availableBalance"] == "10.00"
    assert body["codat"]["action"] == "not_sent"

    updated = await put_account(service, accountName="Renamed", balance="0")
    assert updated.status_code == 200 and updated.json()["accountName"] == "Renamed"
    assert updated.json()["balance"] == "0.00"
    one = await ops_get(service, "/ops/customers/cus-1/accounts/acc-1")
    assert one.status_code == 200 and one.json()["accountName"] == "Renamed"
    await put_account(service, account_id="acc-2")
    listed = await ops_get(service, "/ops/customers/cus-1/accounts")
    assert [a["id"] for a in listed.json()] == ["acc-1", "acc-2"]

    deleted = await service.client.delete(
        "/ops/customers/cus-1/accounts/acc-1", headers=service.ops_headers
    )
    assert deleted.status_code == 200
    assert deleted.json() == {"customer_id": "cus-1", "account_id": "acc-1", "codat": "not_sent"}
    assert (await ops_get(service, "/ops/customers/cus-1/accounts/acc-1")).status_code == 404
    assert service.codat_calls() == []


@pytest.mark.parametrize(
    "balance", ["0", "-1234.5678", "999999999999999.9999", "0.1", 12.5, 7, "1e3"]
)
async def test_balance_is_exact_and_spelled_the_same_on_both_databases(
    service: Service, balance: Any
) -> None:
    await put_customer(service)
    response = await put_account(service, balance=balance)
    assert response.status_code == 201, response.text
    expected = Decimal(str(balance))
    assert Decimal(response.json()["balance"]) == expected
    account = await stored(service)
    assert account is not None and account.balance == expected
    read = await ops_get(service, "/ops/customers/cus-1/accounts/acc-1")
    assert read.json()["balance"] == response.json()["balance"]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"accountName": None}, ["body", "accountName"]),
        ({"accountName": " "}, ["body", "accountName"]),
        ({"accountType": "Credit"}, ["body", "accountType"]),
        ({"accountNumber": ""}, ["body", "accountNumber"]),
        ({"currency": "usd"}, ["body", "currency"]),
        ({"currency": "ABC"}, ["body", "currency"]),
        ({"currency": "XAU"}, ["body", "currency"]),
        ({"balance": "12.34567"}, ["body", "balance"]),
        ({"balance": "NaN"}, ["body", "balance"]),
        ({"balance": "1e20"}, ["body", "balance"]),
        ({"balance": None}, ["body", "balance"]),
        ({"currency": "GBP"}, ["body", "sortCode"]),
        ({"routingInfo": {"bankCode": "1", "type": "nope"}}, ["body", "routingInfo", "type"]),
        (
            {"accountInfo": {"accountOpenDate": "yesterday"}},
            ["body", "accountInfo", "accountOpenDate"],
        ),
        ({"accountName": "bad\x00name"}, ["body", "accountName"]),
        ({"colour": "blue"}, ["body", "colour"]),
    ],
)
async def test_account_validation_is_422_naming_the_field(
    service: Service, overrides: dict[str, Any], loc: list[str]
) -> None:
    await put_customer(service)
    body = account_body(**{k: v for k, v in overrides.items() if v is not None})
    for key in (k for k, v in overrides.items() if v is None):
        body.pop(key)
    response = await service.client.put(
        "/ops/customers/cus-1/accounts/acc-1", json=body, headers=service.ops_headers
    )
    assert response.status_code == 422
    assert any(e["loc"] == loc for e in response.json()["detail"]), response.json()
    assert await stored(service) is None


async def test_gbp_with_sort_code_is_accepted(service: Service) -> None:
    await put_customer(service, country="GB")
    response = await put_account(service, currency="GBP", sortCode="40-12-34")
    assert response.status_code == 201 and response.json()["sortCode"] == "40-12-34"


async def test_account_of_unknown_customer_is_404(service: Service) -> None:
    response = await put_account(service, "nobody")
    assert response.status_code == 404 and "nobody" in response.json()["detail"]
    assert (await ops_get(service, "/ops/customers/nobody/accounts")).status_code == 404
    response = await service.client.delete(
        "/ops/customers/cus-1/accounts/nope", headers=service.ops_headers
    )
    assert response.status_code == 404


# --- Codat follows -----------------------------------------------------------------------------


async def test_new_account_is_created_in_codat_with_one_post(service: Service) -> None:
    await with_bank_feed(service)
    response = await put_account(service, account_id="acc-new", accountName="Savings", balance="0")
    assert response.status_code == 201
    body = response.json()
    assert body["codat"]["action"] == "created" and body["status"] == "pending"
    assert "accountName" in body["codat"]["fields"] and body["pushed_at"]
    assert calls(service) == [
        (
            "POST",
            f"/companies/{codat_connection(service).company_id}/connections/"
            f"{codat_connection(service).id}/connectionInfo/bankFeedAccounts/batch",
        )
    ]
    in_codat = codat_connection(service).source_accounts["acc-new"]
    assert in_codat.account_name == "Savings" and in_codat.balance == Decimal("0")
    status = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    assert status["needs_customer_action"] is True


async def test_new_account_under_a_linked_connection_needs_the_customer(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    await ops_get(service, "/ops/customers/cus-1/bank-feed", refresh="true")
    status = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    assert status["needs_customer_action"] is False and status["reasons"] == []
    await put_account(service, account_id="acc-2")
    status = (await ops_get(service, "/ops/customers/cus-1/bank-feed")).json()
    assert status["needs_customer_action"] is True
    assert [r["code"] for r in status["reasons"]] == ["accounts_pending"]


async def test_rename_and_balance_are_patched_while_pending(service: Service) -> None:
    await with_bank_feed(service)
    response = await put_account(
        service, account_id="acc-0", accountName="Operating", accountNumber="1000000", balance="42"
    )
    assert response.status_code == 200, response.text
    assert response.json()["codat"] == {
        "action": "updated",
        "fields": ["accountName", "balance"],
        "local_only": [],
        "note": None,
    }
    assert [m for m, _ in calls(service)] == ["PATCH"]
    in_codat = codat_connection(service).source_accounts["acc-0"]
    assert in_codat.account_name == "Operating" and in_codat.balance == Decimal("42")
    account = await stored(service, "acc-0")
    assert account is not None and in_sync(account) and account.pushed_account_name == "Operating"


async def test_balance_of_a_connected_account_is_stored_locally_only(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0"])
    await ops_get(service, "/ops/customers/cus-1/bank-feed", refresh="true")
    service.sandbox.reset_calls()
    response = await put_account(
        service, account_id="acc-0", accountName="Account 0", accountNumber="1000000", balance="7"
    )
    assert response.status_code == 200
    assert response.json()["codat"]["action"] == "unchanged"
    assert response.json()["codat"]["local_only"] == ["balance"]
    assert calls(service) == []
    account = await stored(service, "acc-0")
    assert account is not None and account.balance == Decimal("7")
    assert codat_connection(service).source_accounts["acc-0"].balance != Decimal("7")
    # A rename still goes through, without the balance.
    response = await put_account(
        service, account_id="acc-0", accountName="Renamed", accountNumber="1000000", balance="8"
    )
    assert response.json()["codat"]["fields"] == ["accountName"]
    assert [m for m, _ in calls(service)] == ["PATCH"]


async def test_balance_refused_by_codat_for_a_newly_connected_account(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0"])  # our database has not heard yet
    response = await put_account(
        service, account_id="acc-0", accountName="Account 0", accountNumber="1000000", balance="9"
    )
    assert response.status_code == 502
    assert "not connected" in response.json()["detail"]  # Codat's own words
    account = await stored(service, "acc-0")
    assert account is not None and account.balance != Decimal("9")
    await ops_get(service, "/ops/customers/cus-1/bank-feed", refresh="true")
    response = await put_account(
        service, account_id="acc-0", accountName="Account 0", accountNumber="1000000", balance="9"
    )
    assert response.status_code == 200 and response.json()["codat"]["local_only"] == ["balance"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accountNumber": "999"}, "accountNumber"),
        ({"currency": "CAD"}, "currency"),
        ({"accountType": "savings"}, "accountType"),
        ({"sortCode": "11-22-33"}, "sortCode"),
    ],
)
async def test_a_change_codat_cannot_make_is_409_and_changes_nothing(
    service: Service, change: dict[str, str], field: str
) -> None:
    await with_bank_feed(service)
    before = await stored(service, "acc-0")
    body = {"accountName": "New name", "accountNumber": "1000000", **change}
    response = await put_account(service, account_id="acc-0", **body)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert field in detail and "Codat cannot change" in detail and "Nothing was changed" in detail
    assert calls(service) == []
    after = await stored(service, "acc-0")
    assert before is not None and after is not None
    assert (after.account_name, after.account_number, after.currency, after.account_type) == (
        before.account_name,
        before.account_number,
        before.currency,
        before.account_type,
    )


async def test_deleted_account_is_deleted_in_codat(service: Service) -> None:
    await with_bank_feed(service)
    response = await service.client.delete(
        "/ops/customers/cus-1/accounts/acc-0", headers=service.ops_headers
    )
    assert response.status_code == 200 and response.json()["codat"] == "deleted"
    assert [m for m, _ in calls(service)] == ["DELETE"]
    assert "acc-0" not in codat_connection(service).source_accounts
    assert await stored(service, "acc-0") is None


async def test_delete_when_codat_no_longer_has_it_is_fine(service: Service) -> None:
    await with_bank_feed(service)
    del codat_connection(service).source_accounts["acc-0"]
    response = await service.client.delete(
        "/ops/customers/cus-1/accounts/acc-0", headers=service.ops_headers
    )
    assert response.status_code == 200 and response.json()["codat"] == "not_in_codat"
    assert await stored(service, "acc-0") is None


async def test_rename_of_an_account_codat_lost_adds_it_again(service: Service) -> None:
    await with_bank_feed(service)
    del codat_connection(service).source_accounts["acc-0"]
    response = await put_account(
        service, account_id="acc-0", accountName="Back again", accountNumber="1000000"
    )
    assert response.status_code == 200 and response.json()["codat"]["action"] == "created"
    assert [m for m, _ in calls(service)] == ["PATCH", "POST"]
    assert codat_connection(service).source_accounts["acc-0"].account_name == "Back again"


async def test_account_codat_already_has_is_adopted(service: Service) -> None:
    await with_bank_feed(service)
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-1", "acc-0"))
        assert account is not None
        account.pushed_at = None  # as if the answer to the first push had been lost
        await session.commit()
    response = await put_account(
        service, account_id="acc-0", accountName="Adopted", accountNumber="1000000"
    )
    assert response.status_code == 200, response.text
    assert response.json()["codat"]["action"] == "already_in_codat"
    assert [m for m, _ in calls(service)] == ["POST", "GET", "PATCH"]
    assert codat_connection(service).source_accounts["acc-0"].account_name == "Adopted"


async def test_no_database_lock_is_held_while_codat_is_called(faulty: FaultyService) -> None:
    service = faulty.service
    await with_bank_feed(service)
    wrote: list[str] = []

    async def write_elsewhere(request: httpx.Request) -> None:
        async def write() -> None:
            async with service.sessions() as session:
                await session.execute(
                    update(SourceAccount)
                    .where(SourceAccount.id == "acc-0")
                    .values(status_changed_at=datetime.now(UTC))
                )
                await session.commit()

        await asyncio.wait_for(write(), 3)  # blocks (and fails) if the request holds a lock
        wrote.append(request.method)

    faulty.codat.during_write = write_elsewhere
    response = await put_account(
        service, account_id="acc-0", accountName="Renamed", accountNumber="1000000"
    )
    assert response.status_code == 200 and wrote == ["PATCH"]


@pytest.mark.parametrize("status", [503, 429, 500])
async def test_transient_codat_failure_is_503_and_changes_nothing(
    faulty: FaultyService, status: int
) -> None:
    service = faulty.service
    await with_bank_feed(service)
    faulty.fail(status)
    for response in (
        await put_account(service, account_id="acc-new"),
        await put_account(service, account_id="acc-0", accountName="X", accountNumber="1000000"),
        await service.client.delete(
            "/ops/customers/cus-1/accounts/acc-0", headers=service.ops_headers
        ),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["retry-after"]) >= 1
        assert "nothing was changed" in response.json()["detail"]
    async with service.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(SourceAccount))
        account = await session.get(SourceAccount, ("cus-1", "acc-0"))
    assert count == 2 and account is not None and account.account_name == "Account 0"


async def test_codat_refusal_is_502_and_changes_nothing(faulty: FaultyService) -> None:
    service = faulty.service
    await with_bank_feed(service)
    faulty.fail(400)
    response = await put_account(service, account_id="acc-new")
    assert response.status_code == 502
    assert response.json()["detail"] == (
        "Codat refused adding account 'acc-new' to the bank feed with status 400: down "
        "(Codat correlation id test); nothing was changed."
    )
    async with service.sessions() as session:
        assert await session.get(SourceAccount, ("cus-1", "acc-new")) is None


async def test_close_disconnects_the_account_in_codat_and_shows_it_closed(
    service: Service,
) -> None:
    await with_bank_feed(service)
    service.sandbox.reset_calls()
    path = "/ops/customers/cus-1/accounts/acc-0:close"

    closed = await service.client.post(path, headers=service.ops_headers)
    again = await service.client.post(path, headers=service.ops_headers)

    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert again.status_code == 200 and again.json()["status"] == "closed"
    account = codat_connection(service).source_accounts["acc-0"]
    assert account.status.value == "disconnected"
    assert [(c.method, c.route) for c in service.sandbox.calls] == [
        (
            "PATCH",
            "/companies/{companyId}/connections/{connectionId}/connectionInfo/bankFeedAccounts/{accountId}",
        )
    ]

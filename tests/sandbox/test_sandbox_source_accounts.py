"""Source accounts (v2 create, batch, v1 PATCH, delete) and credentials."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from app.sandbox.state import SourceAccountStatus
from tests.sandbox.sandbox_support import ConnectionRef, account_body


@pytest.fixture
async def ref(new_connection) -> ConnectionRef:
    connection: ConnectionRef = await new_connection()
    return connection


async def test_create_source_account_is_200_pending(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    body = account_body(
        "acc-1",
        balance=0,
        routingInfo={"bankCode": "021001088", "type": "aba"},
        accountInfo={"nickname": "Ops", "accountOpenDate": "2024-05-06", "availableBalance": 10.5},
    )

    response = await api.post(ref.accounts, json=body)

    assert response.status_code == 200
    account = response.json()
    assert account["status"] == "pending"
    assert account["feedStartDate"] is None
    assert account["balance"] == 0
    assert account["modifiedDate"].endswith("Z")
    assert account["routingInfo"] == {"bankCode": "021001088", "type": "aba"}
    assert account["accountInfo"]["availableBalance"] == 10.5


async def test_balance_keeps_its_decimal_value(api: httpx.AsyncClient, ref: ConnectionRef) -> None:
    await api.post(ref.accounts, json=account_body("a", balance=-1234.56))

    listed = (await api.get(ref.accounts)).json()

    assert listed[0]["balance"] == -1234.56


async def test_duplicate_source_account_is_409(api: httpx.AsyncClient, ref: ConnectionRef) -> None:
    await api.post(ref.accounts, json=account_body("acc-1"))

    response = await api.post(ref.accounts, json=account_body("acc-1"))

    assert response.status_code == 409
    assert response.json()["error"] == "A bank account already exists with the same Id"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"accountName": None}, "accountName"),
        ({"balance": None}, "balance"),
        ({"accountType": "Credit"}, "accountType"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"balance": "12.00"}, "balance"),
        ({"balance": True}, "balance"),
        ({"currency": "GBP"}, "sortCode"),
        ({"status": "connected"}, "status"),
        ({"nickname": "x"}, "nickname"),
        ({"routingInfo": {"bankCode": "1", "type": "zip"}}, "routingInfo.type"),
        ({"routingInfo": None}, "routingInfo"),
        ({"accountInfo": {"accountOpenDate": "yesterday"}}, "accountInfo.accountOpenDate"),
    ],
)
async def test_invalid_v2_bodies_are_400_naming_the_field(
    api: httpx.AsyncClient, ref: ConnectionRef, overrides: dict[str, object], field: str
) -> None:
    body = account_body("acc-1")
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None or k == "routingInfo"}

    response = await api.post(ref.accounts, json=body)

    assert response.status_code == 400
    assert field in [e["itemId"] for e in response.json()["validation"]["errors"]]


async def test_gbp_account_with_a_sort_code_is_accepted(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    body = account_body("uk-1", currency="GBP", sortCode="040004")

    assert (await api.post(ref.accounts, json=body)).status_code == 200


async def test_source_accounts_need_an_existing_connection(api: httpx.AsyncClient) -> None:
    path = (
        "/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6/connections/"
        "51baa045-4836-4317-a42e-3542e991e581/connectionInfo/bankFeedAccounts"
    )

    assert (await api.get(path)).status_code == 404
    assert (await api.post(path, json=account_body())).status_code == 404


async def test_batch_is_201_when_all_are_created(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    response = await api.post(f"{ref.accounts}/batch", json=[account_body("a"), account_body("b")])

    assert response.status_code == 201
    items = response.json()
    assert [i["sourceAccountId"] for i in items] == ["a", "b"]
    assert all(i["result"]["account"]["status"] == "pending" for i in items)
    assert all(i["result"]["error"] is None for i in items)


async def test_batch_is_207_for_a_mix_and_409_when_all_fail(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    await api.post(ref.accounts, json=account_body("a"))

    mixed = await api.post(f"{ref.accounts}/batch", json=[account_body("a"), account_body("b")])
    failed = await api.post(f"{ref.accounts}/batch", json=[account_body("a"), account_body("b")])

    assert mixed.status_code == 207
    assert mixed.json()[0] == {
        "sourceAccountId": "a",
        "result": {"statusCode": 409, "error": "A bank account already exists with the same Id"},
    }
    assert mixed.json()[1]["result"]["account"]["id"] == "b"
    assert failed.status_code == 409
    assert [i["result"]["statusCode"] for i in failed.json()] == [409, 409]


async def test_a_repeated_id_within_one_batch_is_a_409_item(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    response = await api.post(f"{ref.accounts}/batch", json=[account_body("a"), account_body("a")])

    assert response.status_code == 207
    assert [i["result"]["statusCode"] for i in response.json()] == [201, 409]


async def test_an_invalid_item_fails_the_whole_batch(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    bad = account_body("b", accountType="Debit")

    response = await api.post(f"{ref.accounts}/batch", json=[account_body("a"), bad])

    assert response.status_code == 400
    assert [e["itemId"] for e in response.json()["validation"]["errors"]] == ["[1].accountType"]
    assert (await api.get(ref.accounts)).json() == []


@pytest.mark.parametrize("body", [[], {"id": "a"}])
async def test_batch_body_must_be_a_non_empty_array(
    api: httpx.AsyncClient, ref: ConnectionRef, body: object
) -> None:
    assert (await api.post(f"{ref.accounts}/batch", json=body)).status_code == 400


async def test_concurrent_creates_of_one_id_make_exactly_one_account(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    responses = await asyncio.gather(
        *(api.post(ref.accounts, json=account_body("same")) for _ in range(10))
    )

    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
    assert len((await api.get(ref.accounts)).json()) == 1


async def test_list_source_accounts_is_a_plain_array(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    await api.post(f"{ref.accounts}/batch", json=[account_body("a"), account_body("b")])

    response = await api.get(ref.accounts)

    assert [a["id"] for a in response.json()] == ["a", "b"]


async def test_patch_can_rename_and_change_balance_of_a_pending_account(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    await api.post(ref.accounts, json=account_body("a"))

    response = await api.patch(
        f"{ref.accounts}/a",
        json={"id": "a", "accountName": "Renamed", "balance": 99.99, "currency": "USD"},
    )

    assert response.status_code == 200
    assert response.json()["accountName"] == "Renamed"
    assert response.json()["balance"] == 99.99
    assert set(response.json()) <= {
        "id", "accountName", "accountType", "accountNumber", "sortCode", "currency",
        "balance", "modifiedDate", "status", "feedStartDate",
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"accountName": "no id"},
        {"id": "other", "accountName": "x"},
        {"id": "a", "accountNumber": "99999999"},
        {"id": "a", "currency": "CAD"},
        {"id": "a", "accountType": "savings"},
        {"id": "a", "status": "connected"},
        {"id": "a", "status": "linked"},
        {"id": "a", "routingInfo": {"bankCode": "1"}},
    ],
)
async def test_patch_refuses_what_codat_refuses(
    api: httpx.AsyncClient, ref: ConnectionRef, body: dict[str, object]
) -> None:
    await api.post(ref.accounts, json=account_body("a"))

    response = await api.patch(f"{ref.accounts}/a", json=body)

    assert response.status_code == 400


async def test_patch_accepts_unchanged_fixed_fields(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    created = (await api.post(ref.accounts, json=account_body("a"))).json()
    body = {k: created[k] for k in ("id", "accountType", "accountNumber", "currency")}

    assert (await api.patch(f"{ref.accounts}/a", json=body)).status_code == 200


async def test_patch_balance_is_refused_while_connected(
    api: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    await api.post(ref.accounts, json=account_body("a", balance=10))
    sandbox.store.company(ref.company_id).connections[ref.connection_id].source_accounts[
        "a"
    ].status = SourceAccountStatus.CONNECTED

    refused = await api.patch(f"{ref.accounts}/a", json={"id": "a", "balance": 11})
    same = await api.patch(f"{ref.accounts}/a", json={"id": "a", "balance": 10})

    assert refused.status_code == 400
    assert same.status_code == 200


async def test_patch_status_disconnected_disconnects_the_account(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    await api.post(ref.accounts, json=account_body("a"))

    response = await api.patch(f"{ref.accounts}/a", json={"id": "a", "status": "disconnected"})

    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"


async def test_patch_and_delete_of_an_unknown_account_are_404(
    api: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    assert (await api.patch(f"{ref.accounts}/nope", json={"id": "nope"})).status_code == 404
    assert (await api.delete(f"{ref.accounts}/nope")).status_code == 404


async def test_delete_source_account_is_204(api: httpx.AsyncClient, ref: ConnectionRef) -> None:
    await api.post(ref.accounts, json=account_body("a"))

    response = await api.delete(f"{ref.accounts}/a")

    assert response.status_code == 204
    assert (await api.get(ref.accounts)).json() == []


async def test_credentials_are_new_each_time_and_revoked_together(
    api: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    first = await api.post(f"{ref.accounts}/credentials", json={})
    second = await api.post(f"{ref.accounts}/credentials", json={})

    assert first.status_code == second.status_code == 200
    assert first.json() != second.json()
    assert set(first.json()) == {"username", "password"}
    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    assert len(connection.credentials) == 2

    revoked = await api.delete(f"{ref.accounts}/credentials")

    assert revoked.status_code == 204
    assert connection.credentials == {}

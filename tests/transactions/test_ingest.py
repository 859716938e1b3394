"""`POST /ops/customers/{id}/accounts/{account_id}/transactions`: exact, idempotent per id, all
or nothing, every bad item named by index and field."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select

from app.models import BankTransaction
from tests.conftest import Service
from tests.factories import add_customer
from tests.transactions.support import NOW, TODAY, Clock

PATH = "/ops/customers/cus-1/accounts/cus-1-acc-0/transactions"


def txn(n: int, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": f"bank-{n}",
        "date": (TODAY - timedelta(days=1)).isoformat(),
        "description": f"POS purchase {n}",
        "amount": -25.5,
        "balance": 974.5,
        "transactionType": "Debit",
    }
    values.update(changes)
    return values


async def prepared(service: Service) -> None:
    await add_customer(service.sessions, "cus-1", accounts=1)
    service.services.transactions.clock = Clock(NOW)


async def post(service: Service, body: Any) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return await service.client.post(
        PATH,
        content=content,
        headers={**service.ops_headers, "content-type": "application/json"},
    )


async def stored(service: Service) -> list[BankTransaction]:
    async with service.sessions() as session:
        rows = await session.execute(select(BankTransaction).order_by(BankTransaction.seq))
        return list(rows.scalars())


async def test_stores_exact_decimals_and_counts_duplicates(service: Service) -> None:
    await prepared(service)
    text = (
        '{"transactions": [{"id": "b-1", "date": "DAY", "description": "Deposit",'
        ' "amount": 100.25000000000001, "balance": 99999999999.1234, "transactionType": "Credit",'
        ' "counterparty": "ACME", "reference": "INV-7"}]}'
    ).replace("DAY", TODAY.isoformat())
    answer = await post(service, text.replace("100.25000000000001", "100.2500"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "customer_id": "cus-1", "account_id": "cus-1-acc-0", "received": 1, "stored": 1,
        "duplicates": 0,
    }  # fmt: skip
    (row,) = await stored(service)
    assert row.amount == Decimal("100.25") and row.balance == Decimal("99999999999.1234")
    assert (row.counterparty, row.reference, row.status) == ("ACME", "INV-7", "pending")
    again = await post(service, text.replace("100.25000000000001", "100.25"))
    assert again.json()["duplicates"] == 1 and again.json()["stored"] == 0
    too_precise = await post(service, text)
    assert too_precise.status_code == 422
    assert too_precise.json()["detail"][0]["field"] == "amount"


async def test_the_same_id_with_other_content_is_a_409_naming_it(service: Service) -> None:
    await prepared(service)
    assert (await post(service, {"transactions": [txn(1), txn(2)]})).status_code == 200
    answer = await post(service, {"transactions": [txn(3), txn(1, description="changed"), txn(2)]})
    assert answer.status_code == 409
    assert "bank-1" in answer.json()["detail"] and "bank-2" not in answer.json()["detail"]
    assert [r.id for r in await stored(service)] == ["bank-1", "bank-2"]  # bank-3 not stored


async def test_every_bad_item_is_named_and_nothing_is_stored(service: Service) -> None:
    await prepared(service)
    answer = await post(
        service,
        {
            "transactions": [
                txn(1),
                txn(2, date=(TODAY + timedelta(days=1)).isoformat()),
                txn(3, amount=25.5),
                txn(4, balance=None),
                txn(5, transactionType="Fee"),
                txn(6, date="03/12/2026"),
            ]
        },
    )
    assert answer.status_code == 422
    found = {(e["index"], e["field"]): e["msg"] for e in answer.json()["detail"]}
    assert found[(1, "date")].startswith("Future-dated transactions cannot be written")
    assert found[(2, "amount")] == "A Debit must have a negative amount; this one is 25.5."
    assert (3, "balance") in found and (4, "transactionType") in found and (5, "date") in found
    assert (0, "id") not in found
    assert await stored(service) == []


async def test_at_most_5000_per_request_and_unknown_accounts(service: Service) -> None:
    await prepared(service)
    answer = await post(service, {"transactions": [txn(n) for n in range(5001)]})
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "transactions"
    assert (await post(service, "{not json")).status_code == 400
    missing = await service.client.post(
        "/ops/customers/cus-1/accounts/nope/transactions",
        json={"transactions": [txn(1)]},
        headers=service.ops_headers,
    )
    assert missing.status_code == 404
    ok = await post(service, {"transactions": [txn(n) for n in range(5000)]})
    assert ok.status_code == 200 and ok.json()["stored"] == 5000
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BankTransaction)) == 5000

"""Contract: the transaction writes our client sends, and the push operations it reads, validate
against Codat's OpenAPI files (through the sandbox, which answers as Codat does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from app.codat.client import CodatClient
from app.codat.transactions import BankTransactionCreate, exact_json, transactions_body
from app.sandbox import SandboxConfig, create_sandbox_app
from tests.contract.test_codat_contract import KEY, ContractTransport, v2_account
from tests.sandbox.sandbox_oas import OAS_DIR

TRANSACTION_OPERATIONS = {
    "create-bank-transactions",
    "get-create-operation",
    "list-create-operations",
}


@pytest.fixture
async def codat() -> AsyncIterator[tuple[CodatClient, ContractTransport, object]]:
    assert OAS_DIR.exists(), f"Codat's OpenAPI files are expected in {OAS_DIR}"
    app = create_sandbox_app(
        SandboxConfig(api_key=KEY, public_url="http://127.0.0.1:8000/sandbox/codat")
    )
    transport = ContractTransport(app)
    client = CodatClient("http://codat-sandbox.internal", KEY, transport=transport)
    yield client, transport, app
    await client.aclose()
    await app.state.sandbox.aclose()  # type: ignore[attr-defined]


def body(account_id: str, *rows: tuple[str, object, str, str, str]) -> str:
    return exact_json(
        transactions_body(
            account_id,
            [
                BankTransactionCreate.model_validate(
                    {
                        "id": i,
                        "date": day,
                        "description": f"Payment {i}",
                        "amount": Decimal(amount),
                        "balance": Decimal(balance),
                        "transactionType": kind,
                    }
                )
                for i, day, amount, balance, kind in rows
            ],
        )
    )


async def test_writes_and_push_operations_validate_both_ways(
    codat: tuple[CodatClient, ContractTransport, object],
) -> None:
    client, transport, app = codat
    sandbox = app.state.sandbox  # type: ignore[attr-defined]
    company = await client.create_company("Maple Street Bakery")
    connection = await client.create_connection(company.id)
    await client.create_source_account(company.id, connection.id, v2_account("acc-1"))
    today = sandbox.clock.today()
    linked = sandbox.store.connection(company.id, connection.id)
    sandbox.bank_feeds.connect_accounts(linked, ["acc-1"], today - timedelta(days=2))

    written = await client.create_bank_transactions(
        company.id,
        connection.id,
        "acc-1",
        body(
            "acc-1",
            ("t-1", today - timedelta(days=1), "-12.50", "987.50", "Debit"),
            ("t-2", today, "1500.75", "2488.25", "Credit"),
        ),
        idempotency_key="6f1c2b1e-0d7a-4d4e-9b1a-3c5e7f9a1b2c",
    )
    assert written.status == "Pending" and written.push_operation_key
    refused = await client.create_bank_transactions(
        company.id,
        connection.id,
        "acc-1",
        body("acc-1", ("t-3", today + timedelta(days=1), "-1", "2487.25", "Debit")),
        idempotency_key="0b8e6a52-41f3-4f0e-a2a7-5d7c9e1f3a4b",
    )
    sandbox.settle(all_writes=True)

    done = await client.get_push_operation(company.id, written.push_operation_key)
    assert done.status == "Success" and done.completed_on_utc is not None
    failed = await client.get_push_operation(company.id, refused.push_operation_key)
    assert failed.status == "Failed"
    assert [e.item_id for e in failed.errors] == ["t-3"]
    assert all(e.message and e.validator_name for e in failed.errors)
    history = await client.list_push_operations(company.id)
    assert {p.push_operation_key for p in history.results} == {
        written.push_operation_key,
        refused.push_operation_key,
    }
    assert TRANSACTION_OPERATIONS <= transport.operations

"""Bank transaction bodies and connected accounts for the sandbox's write tests."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_support import ConnectionRef

_EXACT = "~exact~"


def connect(sandbox: Sandbox, ref: ConnectionRef, account_ids: list[str], days_back: int) -> None:
    """What the SMB does in QuickBooks: connect the accounts with a start date `days_back`."""
    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    start = sandbox.clock.today() - timedelta(days=days_back)
    sandbox.bank_feeds.connect_accounts(connection, account_ids, start)


def create_path(ref: ConnectionRef, account_id: str = "acc-1") -> str:
    return f"{ref.path}/push/bankAccounts/{account_id}/bankTransactions"


def transaction(
    transaction_id: str,
    day: date,
    amount: str | None,
    balance: str | None,
    *,
    kind: str | None = None,
    description: str | None = "Card payment",
) -> dict[str, Any]:
    """One item; amounts as Decimal so the JSON number is the exact text."""
    if kind is None and amount is not None:
        kind = "Debit" if Decimal(amount) < 0 else "Credit"
    item: dict[str, Any] = {
        "id": transaction_id,
        "date": f"{day.isoformat()}T09:30:00",
        "description": description,
        "amount": Decimal(amount) if amount is not None else None,
        "balance": Decimal(balance) if balance is not None else None,
        "transactionType": kind,
    }
    return {k: v for k, v in item.items() if v is not None}


def push_body(items: list[dict[str, Any]], account: str = "acc-1") -> dict[str, Any]:
    return {"accountId": account, "transactions": items}


def dumps(body: object) -> bytes:
    """JSON with each Decimal written as the exact number it is (json.dumps cannot)."""
    text = json.dumps(body, default=lambda d: f"{_EXACT}{d}{_EXACT}")
    return re.sub(f'"{_EXACT}(.*?){_EXACT}"', r"\1", text).encode()


async def write(
    api: httpx.AsyncClient,
    ref: ConnectionRef,
    body: dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Create bank transactions for the body's account."""
    return await api.post(
        create_path(ref, body["accountId"]),
        content=dumps(body),
        params=params,
        headers={"content-type": "application/json", **(headers or {})},
    )


async def settle(api: httpx.AsyncClient) -> int:
    """The test knob: settle every Pending write now; how many there were."""
    response = await api.post("/_sandbox/writes/settle")
    assert response.status_code == 200
    settled: int = response.json()["settled"]
    return settled

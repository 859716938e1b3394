"""The bank's cleared transactions for the feed scenario: a CSV export for the import command,
and the same shape as API bodies and as the SDK baseline's items. Deterministic: ids, dates and
amounts follow from the account and the index."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

COLUMNS = (
    "customer_id", "account_id", "id", "date", "description", "amount", "balance",
    "transactionType", "counterparty", "reference",
)  # fmt: skip
MAX_PER_PUSH = 1000  # Codat's limit per create-bank-transactions call
OPENING_BALANCE = Decimal("1250.75")


@dataclass(frozen=True)
class Transaction:
    id: str
    date: date
    description: str
    amount: Decimal
    balance: Decimal
    transaction_type: str

    def as_item(self) -> dict[str, Any]:
        """As the ops API takes it (amounts as exact JSON numbers, via `str`)."""
        return {
            "id": self.id,
            "date": self.date.isoformat(),
            "description": self.description,
            "amount": self.amount,
            "balance": self.balance,
            "transactionType": self.transaction_type,
        }


def transactions(prefix: str, count: int, first: date, last: date) -> Iterator[Transaction]:
    """`count` transactions spread evenly from `first` to `last`, oldest first; debits and
    credits in turn, the balance running."""
    days = (last - first).days + 1
    balance = OPENING_BALANCE
    for n in range(count):
        credit = n % 3 == 0
        amount = Decimal(f"{(n % 97) + 1}.{n % 100:02d}") * (1 if credit else -1)
        balance += amount
        yield Transaction(
            id=f"{prefix}-{n:06d}",
            date=first + timedelta(days=n * days // max(count, 1)),
            description=f"{'Deposit' if credit else 'Card payment'} {n}",
            amount=amount,
            balance=balance,
            transaction_type="Credit" if credit else "Debit",
        )


def write_csv(
    path: Path, accounts: list[tuple[str, str]], per_account: int, first: date, last: date
) -> int:
    """Each account's transactions together, as a ledger export lists them; rows written."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for customer_id, account_id in accounts:
            prefix = f"{customer_id}-{account_id}"
            for t in transactions(prefix, per_account, first, last):
                writer.writerow((
                    customer_id, account_id, t.id, t.date.isoformat(), t.description, t.amount,
                    t.balance, t.transaction_type, "", "",
                ))  # fmt: skip
                rows += 1
    return rows


def minimum_calls(per_account: dict[str, int]) -> int:
    """Codat takes at most 1,000 transactions per call: ceil(n/1000) calls for each account."""
    return sum(math.ceil(n / MAX_PER_PUSH) for n in per_account.values() if n > 0)


def floor_seconds(calls: int, round_trip_s: float, connections: int) -> float:
    """The calls cannot finish sooner than calls x R / P with P connections at round trip R."""
    if connections < 1:
        raise ValueError("at least one connection")
    return calls * round_trip_s / connections

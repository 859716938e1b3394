"""The demo's generator of today's cleared transactions: exact amounts, consistent running
balances, local dates, ids that never repeat."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.demo.transactions import CENT, local_today, todays_transactions

DAY = date(2026, 3, 14)


@pytest.mark.parametrize("account_type", ["checking", "creditCard", "savings", "loan"])
@pytest.mark.parametrize("seed", range(20))
def test_each_balance_is_the_one_before_plus_its_amount(account_type: str, seed: int) -> None:
    opening = Decimal("12450.32")

    made = todays_transactions("acc-1", account_type, opening, DAY, random.Random(seed))

    assert 2 <= len(made) <= 5
    balance = opening
    for transaction in made:
        balance += transaction.amount
        assert transaction.balance == balance
        assert isinstance(transaction.amount, Decimal) and isinstance(transaction.balance, Decimal)
        assert transaction.amount == transaction.amount.quantize(CENT) != 0
        assert transaction.date == DAY
        expected = "Credit" if transaction.amount > 0 else "Debit"
        assert transaction.transaction_type == expected
        assert transaction.description and transaction.counterparty and transaction.reference


def test_a_credit_card_runs_negative_from_an_amount_owed() -> None:
    made = todays_transactions(
        "cc", "creditCard", Decimal("-842.17"), DAY, random.Random(3), count=30
    )

    assert made[-1].balance == Decimal("-842.17") + sum(t.amount for t in made)
    assert any(t.transaction_type == "Credit" for t in made)
    assert any(t.transaction_type == "Debit" for t in made)


def test_ids_are_unique_within_and_across_batches_of_a_day() -> None:
    rng = random.Random(1)
    first = todays_transactions("acc-1", "checking", Decimal(0), DAY, rng, count=5)
    second = todays_transactions("acc-1", "checking", first[-1].balance, DAY, rng, count=5)

    ids = [t.id for t in first + second]
    assert len(set(ids)) == 10
    assert all(i.startswith("acc-1-20260314-") for i in ids)


@pytest.mark.parametrize(
    ("country", "expected"),
    [("US", date(2026, 3, 14)), ("CA", date(2026, 3, 14)), ("GB", date(2026, 3, 15))],
)
def test_the_cleared_date_is_the_business_local_date(country: str, expected: date) -> None:
    # 02:30 UTC on the 15th is still the evening of the 14th in New York and Toronto.
    now = datetime(2026, 3, 15, 2, 30, tzinfo=UTC)

    assert local_today(now, country) == expected

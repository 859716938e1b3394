"""Today's cleared transactions for a demo account: realistic payees, exact amounts, and a
running balance that carries on from the last one the bank posted."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")
# Where each demo business keeps its books: its cleared dates are local dates there.
TIMEZONES = {"US": "America/New_York", "CA": "America/Toronto"}
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class Payee:
    description: str
    counterparty: str
    low: str  # the amount's range, in the account's currency, before its sign
    high: str
    money_in: bool


CHECKING = (
    Payee("Card purchase", "Costco Wholesale", "45", "380", money_in=False),
    Payee("Card purchase", "Staples", "12", "140", money_in=False),
    Payee("Utility bill", "Hydro-Electric Co", "90", "310", money_in=False),
    Payee("Payroll", "Gusto Payroll", "1200", "4800", money_in=False),
    Payee("Supplier payment", "Sysco Foods", "250", "1900", money_in=False),
    Payee("Card settlement", "Square", "300", "2600", money_in=True),
    Payee("Mobile deposit", "Customer cheque", "80", "950", money_in=True),
    Payee("Wire received", "Wholesale order", "500", "3500", money_in=True),
)
CREDIT_CARD = (
    Payee("Card purchase", "Amazon Marketplace", "15", "260", money_in=False),
    Payee("Card purchase", "Shell", "30", "110", money_in=False),
    Payee("Card purchase", "Uber Eats", "18", "75", money_in=False),
    Payee("Subscription", "Intuit QuickBooks", "30", "90", money_in=False),
    Payee("Payment received", "Thank you", "200", "900", money_in=True),
)
SAVINGS = (
    Payee("Interest", "Interest earned", "0.50", "12", money_in=True),
    Payee("Transfer in", "From operating account", "200", "1500", money_in=True),
    Payee("Transfer out", "To operating account", "100", "800", money_in=False),
)
PAYEES = {"checking": CHECKING, "creditCard": CREDIT_CARD, "savings": SAVINGS}


@dataclass(frozen=True)
class DemoTransaction:
    id: str
    date: date
    description: str
    amount: Decimal
    balance: Decimal
    transaction_type: str  # Credit for money in, Debit for money out
    counterparty: str
    reference: str


def local_today(now: datetime, country: str) -> date:
    """The business's own date now: a cleared date is a local date."""
    return now.astimezone(ZoneInfo(TIMEZONES.get(country, DEFAULT_TIMEZONE))).date()


def todays_transactions(
    account_id: str,
    account_type: str,
    opening_balance: Decimal,
    day: date,
    rng: random.Random,
    count: int | None = None,
) -> list[DemoTransaction]:
    """A few cleared transactions for `day`, each balance the one before plus its amount."""
    payees = PAYEES.get(account_type, CHECKING)
    balance = opening_balance
    batch = f"{rng.getrandbits(32):08x}"  # a new batch never reuses an id, whatever the day
    made: list[DemoTransaction] = []
    for n in range(count if count is not None else rng.randint(2, 5)):
        payee = rng.choice(payees)
        cents = rng.randint(int(Decimal(payee.low) * 100), int(Decimal(payee.high) * 100))
        size = (Decimal(cents) * CENT).quantize(CENT)
        amount = size if payee.money_in else -size
        balance += amount
        made.append(
            DemoTransaction(
                id=f"{account_id}-{day:%Y%m%d}-{batch}-{n + 1}",
                date=day,
                description=f"{payee.description} {payee.counterparty}",
                amount=amount,
                balance=balance,
                transaction_type="Credit" if payee.money_in else "Debit",
                counterparty=payee.counterparty,
                reference=f"{rng.randint(0, 10**9):010d}",
            )
        )
    return made

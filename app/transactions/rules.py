"""QuickBooks Online's rules for bank-feed transactions, as the service reads them
(docs/transactions.md): what is refused on arrival, and what a push may carry.

Refusals use the words of Codat's QuickBooks Online Bank Feeds documentation, so the bank reads
the same thing here as it would from Codat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from app.models import BankTransaction

TransactionStatus = Literal["pending", "pushing", "pushed", "held", "rejected"]
PENDING, PUSHING, PUSHED, HELD, REJECTED = "pending", "pushing", "pushed", "held", "rejected"
TRANSACTION_STATUSES: tuple[str, ...] = (PENDING, PUSHING, PUSHED, HELD, REJECTED)

# Why a transaction is held: it can no longer be sent without QuickBooks refusing it.
BEFORE_LAST_PUSHED = "before_last_pushed"
BEFORE_FEED_START = "before_feed_start"
OUTSIDE_HISTORY = "outside_history_window"
HOLD_MESSAGES = {
    BEFORE_LAST_PUSHED: (
        "Dated {date}, before {last}, the newest transaction already in QuickBooks: a "
        "transaction can't be older than the most recent transaction in the target account."
    ),
    BEFORE_FEED_START: (
        "Dated {date}, before {start}, the feed start date the customer picked in QuickBooks."
    ),
    OUTSIDE_HISTORY: (
        "Dated {date}, older than the {days} days of history QuickBooks accepts (from {oldest})."
    ),
}

# Refused on arrival (the ingest API's 422), as Codat words a failed write.
FUTURE_DATE = "Future-dated transactions cannot be written: {day} is after {today}."
DEBIT_SIGN = "A Debit must have a negative amount; this one is {amount}."
CREDIT_SIGN = "A Credit must have a positive amount; this one is {amount}."
MONEY_DIGITS = 15  # integer digits a Money column holds (NUMERIC(19, 4))
MONEY_PLACES = 4


def today_for(now: datetime, timezone: str) -> date:
    """The bank's local date at `now`: what "today" means for a cleared date."""
    return now.astimezone(ZoneInfo(timezone)).date()


def oldest_allowed(today: date, history_days: int) -> date:
    """The oldest date QuickBooks takes: `history_days` days counting today (7 by default)."""
    return today - timedelta(days=history_days - 1)


def money_problem(value: Decimal) -> str | None:
    if not value.is_finite():
        return "must be a finite number"
    _, digits, exponent = value.as_tuple()
    places = -int(exponent) if int(exponent) < 0 else 0
    if places > MONEY_PLACES:
        return f"at most {MONEY_PLACES} decimal places"
    if len(digits) - places > MONEY_DIGITS:
        return f"at most {MONEY_DIGITS} digits before the decimal point"
    return None


def sign_problem(transaction_type: str, amount: Decimal) -> str | None:
    """Amounts keep the sign of their type (Codat warns on a Debit with a positive amount;
    the stricter reading refuses it, and the mirror case, and zero for either)."""
    if transaction_type == "Debit" and amount >= 0:
        return DEBIT_SIGN.format(amount=amount)
    if transaction_type == "Credit" and amount <= 0:
        return CREDIT_SIGN.format(amount=amount)
    return None


def future_problem(day: date, today: date) -> str | None:
    return FUTURE_DATE.format(day=day, today=today) if day > today else None


@dataclass(frozen=True)
class Window:
    """What one account may be sent today."""

    today: date
    oldest: date  # the history window's first day
    feed_start: date | None  # picked by the customer in QuickBooks
    last_pushed: date | None  # the newest date QuickBooks already has

    def hold_reason(self, sent_on: date) -> tuple[str, str] | None:
        """Why a transaction dated `sent_on` cannot be sent (code, message); None if it can."""
        values = {"date": sent_on.isoformat(), "days": (self.today - self.oldest).days + 1}
        if self.last_pushed is not None and sent_on < self.last_pushed:
            return BEFORE_LAST_PUSHED, HOLD_MESSAGES[BEFORE_LAST_PUSHED].format(
                last=self.last_pushed.isoformat(), **values
            )
        if self.feed_start is not None and sent_on < self.feed_start:
            return BEFORE_FEED_START, HOLD_MESSAGES[BEFORE_FEED_START].format(
                start=self.feed_start.isoformat(), **values
            )
        if sent_on < self.oldest:
            return OUTSIDE_HISTORY, HOLD_MESSAGES[OUTSIDE_HISTORY].format(
                oldest=self.oldest.isoformat(), **values
            )
        return None

    def release_problem(self, sent_on: date) -> str | None:
        """Why a held transaction cannot be released with the date `sent_on`."""
        if sent_on > self.today:
            return future_problem(sent_on, self.today)
        held = self.hold_reason(sent_on)
        return held[1] if held else None


def push_order(transactions: Iterable[BankTransaction]) -> list[BankTransaction]:
    """Oldest first; within a day, in the order they arrived."""
    return sorted(transactions, key=lambda t: (t.push_date, t.seq))

"""The ops API's shapes for transactions: what the bank sends, what it is told back, and the
transactions and pushes operations list."""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from app.bank_feeds.schemas import Money
from app.transactions.rules import TransactionStatus, money_problem, sign_problem

MAX_TRANSACTIONS_PER_REQUEST = 5000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PushStatusOut = Literal["sending", "unconfirmed", "pending", "success", "failed", "timed_out"]


def _local_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("must be a local date, YYYY-MM-DD")
    return value


def _number(value: Any) -> Any:
    # JSON numbers arrive as Decimal (the body is parsed exactly) or int; text is allowed too.
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError("must be a decimal number")
    return value


def _money(value: Decimal) -> Decimal:
    problem = money_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


LocalDate = Annotated[date, BeforeValidator(_local_date)]
Amount = Annotated[Decimal, BeforeValidator(_number), AfterValidator(_money)]
Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_text)]


class TransactionIn(BaseModel):
    """A cleared transaction from the bank's ledger."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
    date: LocalDate = Field(description="The cleared date, a local date (YYYY-MM-DD).")
    description: Text
    amount: Amount = Field(description="Signed: negative for money out.")
    balance: Amount = Field(description="The account's running balance after it.")
    transactionType: Literal["Credit", "Debit", "Unknown"]
    counterparty: Annotated[str, Field(max_length=1000)] | None = None
    reference: Annotated[str, Field(max_length=1000)] | None = None

    def sign_problem(self) -> str | None:
        return sign_problem(self.transactionType, self.amount)


class TransactionsIn(BaseModel):
    transactions: list[TransactionIn] = Field(max_length=MAX_TRANSACTIONS_PER_REQUEST)


class IngestOut(BaseModel):
    customer_id: str
    account_id: str
    received: int
    stored: int
    duplicates: int


class TransactionOut(BaseModel):
    id: str
    date: dt.date
    description: str
    amount: Money
    balance: Money
    transactionType: str
    counterparty: str | None
    reference: str | None
    status: TransactionStatus
    reason: str | None = Field(description="Why it is held or rejected.")
    push_id: int | None
    sent_date: dt.date | None = Field(description="The later date it was released with, if any.")
    release_reason: str | None
    received_at: datetime
    pushed_at: datetime | None


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None


class PushOut(BaseModel):
    id: int
    customer_id: str
    account_id: str
    status: PushStatusOut
    push_operation_key: str | None
    transaction_count: int
    last_date: date
    last_balance: Money
    requested_at: datetime
    completed_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    error: str | None
    validation_errors: list[dict[str, str | None]]
    retried_at: datetime | None


class PushPage(BaseModel):
    items: list[PushOut]
    next_cursor: str | None


class RequeueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=MAX_TRANSACTIONS_PER_REQUEST
    )


class RequeueOut(BaseModel):
    requeued: list[str]


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: LocalDate = Field(description="The later date QuickBooks gets instead.")
    reason: Text = Field(description="Why: kept with the transaction.")


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    not_landed: bool = Field(
        default=False,
        description="For a TimedOut push: you checked QuickBooks and it did not land.",
    )

"""Codat's bank-transaction writes and push operations: the create body, written as JSON whose
numbers are exactly the decimals stored, and the push operation as Codat reports it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from app.codat.models import CodatDateTime, Lenient, LenientStr, OptionalStr, Strict

PushStatus = Literal["Pending", "Failed", "Success", "TimedOut"]
PUSH_STATUSES: tuple[str, ...] = ("Pending", "Failed", "Success", "TimedOut")
TransactionType = Literal["Credit", "Debit", "Unknown"]  # what QuickBooks Online takes
MAX_TRANSACTIONS_PER_PUSH = 1000  # `maxItems` of Codat's BankTransactions
BANK_TRANSACTIONS = "bankTransactions"


# --- write ----------------------------------------------------------------------------------


class BankTransactionCreate(Strict):
    """One item of Codat's `BankTransactions`, with the fields QuickBooks Online reads, and the
    two it ignores that the bank still sends."""

    id: Annotated[str, Field(min_length=1)]
    date: date  # a local date: Codat ignores any time or offset
    description: Annotated[str, Field(min_length=1)]
    amount: Decimal
    balance: Decimal
    transaction_type: TransactionType = Field(alias="transactionType")
    counterparty: str | None = None
    reference: str | None = None


class BankTransactionsCreate(Strict):
    account_id: Annotated[str, Field(min_length=1)] = Field(alias="accountId")
    transactions: Annotated[
        list[BankTransactionCreate], Field(min_length=1, max_length=MAX_TRANSACTIONS_PER_PUSH)
    ]


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a number sent to Codat must be finite")
        whole, _, fraction = format(value, "f").partition(".")
        return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"  # one spelling on both databases
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_exact(v) for v in value) + "]"
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    return json.dumps(value, ensure_ascii=False)


def exact_json(body: BankTransactionsCreate) -> str:
    """The body as JSON text: each Decimal written as the number it is, with at least two
    decimals (`100.25`, never `100.25000000000001`), aliases, no unset optionals."""
    return _exact(body.model_dump(mode="python", by_alias=True, exclude_none=True))


def transactions_body(
    account_id: str, transactions: Sequence[BankTransactionCreate]
) -> BankTransactionsCreate:
    return BankTransactionsCreate(account_id=account_id, transactions=list(transactions))


# --- read -----------------------------------------------------------------------------------


class ValidationItem(Lenient):
    item_id: OptionalStr = Field(default=None, alias="itemId")
    message: OptionalStr = None
    validator_name: OptionalStr = Field(default=None, alias="validatorName")


def _list_or_empty(value: Any) -> Any:
    return value if isinstance(value, list) else []


class Validation(Lenient):
    errors: Annotated[list[ValidationItem], BeforeValidator(_list_or_empty)] = []
    warnings: Annotated[list[ValidationItem], BeforeValidator(_list_or_empty)] = []


def _status(value: Any) -> Any:
    return value if value in PUSH_STATUSES else "Pending"  # an unknown one: not settled yet


def _object_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) else None


class RecordRef(Lenient):
    id: OptionalStr = None
    data_type: OptionalStr = Field(default=None, alias="dataType")


class PushChange(Lenient):
    type: OptionalStr = None
    record_ref: Annotated[RecordRef | None, BeforeValidator(_object_or_none)] = Field(
        default=None, alias="recordRef"
    )


class PushedData(Lenient):
    account_id: OptionalStr = Field(default=None, alias="accountId")


class PushOperation(Lenient):
    """`PushOperation` (and `CreateBankTransactionsResponse`, which is one)."""

    push_operation_key: LenientStr = Field(alias="pushOperationKey")
    company_id: OptionalStr = Field(default=None, alias="companyId")
    data_connection_key: OptionalStr = Field(default=None, alias="dataConnectionKey")
    data_type: OptionalStr = Field(default=None, alias="dataType")
    status: Annotated[PushStatus, BeforeValidator(_status)] = "Pending"
    status_code: int | None = Field(default=None, alias="statusCode")
    error_message: OptionalStr = Field(default=None, alias="errorMessage")
    requested_on_utc: CodatDateTime = Field(default=None, alias="requestedOnUtc")
    completed_on_utc: CodatDateTime = Field(default=None, alias="completedOnUtc")
    validation: Annotated[Validation | None, BeforeValidator(_object_or_none)] = None
    changes: Annotated[list[PushChange], BeforeValidator(_list_or_empty)] = []
    data: Annotated[PushedData | None, BeforeValidator(_object_or_none)] = None  # gone since 2024

    def names(self, account_id: str, transaction_ids: set[str]) -> bool | None:
        """Whether Codat's answer names this account or one of these transactions (True), only
        others (False), or nothing at all (None: a Pending or TimedOut write says nothing of
        its account)."""
        named = {c.record_ref.id for c in self.changes if c.record_ref and c.record_ref.id}
        named |= {e.item_id for e in self.errors if e.item_id}
        if self.data is not None and self.data.account_id:
            named.add(self.data.account_id)
        return bool(named & (transaction_ids | {account_id})) if named else None

    @property
    def errors(self) -> list[ValidationItem]:
        return self.validation.errors if self.validation else []

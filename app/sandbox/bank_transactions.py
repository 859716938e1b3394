"""Create-bank-transactions bodies, and the QuickBooks Online Bank Feeds rules a write must keep.

The body's shape is checked when the request comes (a 400, nothing stored); the QBO rules are
checked when the write is processed, as Codat does, and fail the whole write with
`validation.errors` naming each transaction. Where Codat's pages disagree the stricter reading
wins: 7 days of history (not 90), `balance` required, a Debit's amount negative and a Credit's
positive, only the transaction types QBO takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from app.sandbox.errors import CodatError, FieldError
from app.sandbox.state import (
    BankTransaction,
    Company,
    Connection,
    ConnectionStatus,
    SourceAccount,
    SourceAccountStatus,
)
from app.sandbox.validation import INVALID_BODY, MAX_AMOUNT

MAX_TRANSACTIONS = 1000
HISTORY = timedelta(days=7)
TRANSACTION_TYPES = (
    "Unknown", "Credit", "Debit", "Int", "Div", "Fee", "SerChg", "Dep", "Atm", "Pos", "Xfer",
    "Check", "Payment", "Cash", "DirectDep", "DirectDebit", "RepeatPmt", "Other",
)  # fmt: skip
QBO_TRANSACTION_TYPES = ("Credit", "Debit", "Unknown")
ITEM_FIELDS = (
    "id", "date", "description", "counterparty", "reference", "reconciled", "amount",
    "balance", "transactionType",
)  # fmt: skip
QBO_REQUIRED = ("id", "date", "description", "amount", "balance")
_LOCAL_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?)?(Z|[+-]\d{2}:\d{2})?$"
)

# validatorName of each QuickBooks Online Bank Feeds rule, as a failed write reports it.
ACCOUNT_NOT_CONNECTED = "SourceAccountConnected"
TARGET_ACCOUNT_DISCONNECTED = "TargetAccountConnected"
REQUIRED = "Required"
TRANSACTION_TYPE = "TransactionType"
AMOUNT_SIGN = "AmountSign"
FUTURE_DATE = "FutureDate"
HISTORY_WINDOW = "HistoryWindow"
FEED_START_DATE = "FeedStartDate"
CHRONOLOGICAL_ORDER = "ChronologicalOrder"
DUPLICATE_ID = "DuplicateId"

NOT_CONNECTED_MESSAGE = "Writes are only accepted for source accounts whose status is connected."
DISCONNECTED_IN_QBO_MESSAGE = (
    "The target account was disconnected in QuickBooks Online; writes to this source account fail."
)
INVALID_TRANSACTIONS = "One or more bank transactions failed validation. See validation.errors."


@dataclass(frozen=True)
class CreateBankTransactions:
    account_id: str
    transactions: tuple[BankTransaction, ...]


def parse_local_datetime(text: str) -> datetime:
    """`2023-08-22`, `2023-08-22T10:21:00` or with an offset, which Codat ignores."""
    match = _LOCAL_DATE_TIME.match(text)
    if match is None:
        raise ValueError(f"not a local date-time: {text!r}")
    local = text[: match.start(4)] if match.group(4) else text
    return datetime.fromisoformat(local[:26])


def create_bank_transactions(body: object, path_account_id: str) -> CreateBankTransactions:
    """The body's shape, as the spec has it; a 400 naming every field at fault otherwise."""
    if not isinstance(body, dict):
        raise CodatError(400, INVALID_BODY, [FieldError("", "The body must be an object.", "Type")])
    errors: list[FieldError] = []
    for key in body:
        if key not in ("accountId", "transactions"):
            errors.append(
                FieldError(key, f"'{key}' is not a property of this object.", "UnknownField")
            )
    account_id = body.get("accountId")
    if not isinstance(account_id, str) or not account_id:
        errors.append(FieldError("accountId", "'accountId' is required.", "Required"))
    elif account_id != path_account_id:
        message = "'accountId' must be the accountId in the path."
        errors.append(FieldError("accountId", message, "AccountId"))
    items = body.get("transactions")
    parsed: list[BankTransaction] = []
    if not isinstance(items, list):
        message = "'transactions' is required and must be an array."
        errors.append(FieldError("transactions", message, "Required"))
    elif not items:
        message = "'transactions' must hold at least one transaction."
        errors.append(FieldError("transactions", message, "MinItems"))
    elif len(items) > MAX_TRANSACTIONS:
        message = f"'transactions' can hold at most {MAX_TRANSACTIONS} items; it has {len(items)}."
        errors.append(FieldError("transactions", message, "MaxItems"))
    else:
        for index, item in enumerate(items):
            transaction = _transaction(item, f"transactions[{index}].", errors)
            if transaction is not None:
                parsed.append(transaction)
    if errors:
        raise CodatError(400, INVALID_BODY, errors)
    return CreateBankTransactions(path_account_id, tuple(parsed))


def _transaction(item: object, prefix: str, errors: list[FieldError]) -> BankTransaction | None:
    if not isinstance(item, dict):
        errors.append(FieldError(prefix.rstrip("."), "A transaction must be an object.", "Type"))
        return None
    before = len(errors)

    def fail(key: str, message: str, validator: str) -> None:
        errors.append(FieldError(prefix + key, message, validator))

    for key in item:
        if key not in ITEM_FIELDS:
            fail(key, f"'{key}' is not a property of a bank transaction.", "UnknownField")
    texts: dict[str, str | None] = {}
    for key in ("id", "date", "description", "counterparty", "reference", "transactionType"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            fail(key, f"'{key}' must be a string.", "Type")
        texts[key] = value if isinstance(value, str) else None
    numbers: dict[str, Decimal | None] = {}
    for key in ("amount", "balance"):
        value = item.get(key)
        numbers[key] = None
        if value is None:
            continue
        if not isinstance(value, int | Decimal) or isinstance(value, bool):
            fail(key, f"'{key}' must be a number.", "Type")
        elif abs(Decimal(value)) >= MAX_AMOUNT:
            fail(key, f"'{key}' is out of range.", "Range")
        else:
            numbers[key] = Decimal(value)
    reconciled = item.get("reconciled")
    if reconciled is not None and not isinstance(reconciled, bool):
        fail("reconciled", "'reconciled' must be a boolean.", "Type")
    kind = texts["transactionType"]
    if kind is not None and kind not in TRANSACTION_TYPES:
        fail(
            "transactionType",
            f"'transactionType' must be one of: {', '.join(TRANSACTION_TYPES)}.",
            "Enum",
        )
    moment: datetime | None = None
    if texts["date"] is not None:
        try:
            moment = parse_local_datetime(texts["date"])
        except ValueError:
            fail(
                "date",
                "'date' must be a local date or date-time, like 2023-08-22T10:21:00.",
                "Type",
            )
    if len(errors) > before:
        return None
    return BankTransaction(
        id=texts["id"],
        date=moment,
        description=texts["description"],
        amount=numbers["amount"],
        balance=numbers["balance"],
        transaction_type=kind,
        counterparty=texts["counterparty"],
        reference=texts["reference"],
        reconciled=reconciled if isinstance(reconciled, bool) else None,
    )


def account_refusal(
    connection: Connection, account: SourceAccount | None, account_id: str
) -> FieldError | None:
    """Why a write to this account fails whatever it holds, or None when it may go in."""
    if account is None or connection.status is not ConnectionStatus.LINKED:
        return FieldError(account_id, NOT_CONNECTED_MESSAGE, ACCOUNT_NOT_CONNECTED)
    if account.status is not SourceAccountStatus.CONNECTED:
        return FieldError(account_id, NOT_CONNECTED_MESSAGE, ACCOUNT_NOT_CONNECTED)
    if account.disconnect_due is not None:  # the SMB disconnected it; Codat will say so later
        return FieldError(account_id, DISCONNECTED_IN_QBO_MESSAGE, TARGET_ACCOUNT_DISCONNECTED)
    return None


def qbo_errors(
    company: Company, account: SourceAccount, transactions: Iterable[BankTransaction], today: date
) -> list[FieldError]:
    """Every QBO rule each transaction breaks, in the order sent; empty when all may be written."""
    errors: list[FieldError] = []
    taken = written_ids(company)
    newest = max(
        (w.transaction.date.date() for w in account.written if w.transaction.date), default=None
    )
    earliest = today - HISTORY
    previous: date | None = None
    seen: set[str] = set()
    for index, transaction in enumerate(transactions):
        item = transaction.id or f"transactions[{index}]"

        def fail(message: str, validator: str, item: str = item) -> None:
            errors.append(FieldError(item, message, validator))

        for key in QBO_REQUIRED:
            if getattr(transaction, key) in (None, ""):
                fail(f"'{key}' is required for QuickBooks Online Bank Feeds.", REQUIRED)
        kind = transaction.transaction_type
        if kind is not None and kind not in QBO_TRANSACTION_TYPES:
            fail(
                f"QuickBooks Online Bank Feeds takes transactionType Credit, Debit or Unknown, "
                f"not {kind}.",
                TRANSACTION_TYPE,
            )
        amount = transaction.amount
        if amount is not None and kind == "Debit" and amount >= 0:
            fail(f"A Debit must have a negative amount; this one is {amount}.", AMOUNT_SIGN)
        if amount is not None and kind == "Credit" and amount <= 0:
            fail(f"A Credit must have a positive amount; this one is {amount}.", AMOUNT_SIGN)
        if transaction.id:
            if transaction.id in taken or transaction.id in seen:
                fail(
                    f"A bank transaction with id {transaction.id} already exists for this company.",
                    DUPLICATE_ID,
                )
            seen.add(transaction.id)
        if transaction.date is None:
            continue
        day = transaction.date.date()
        if day > today:
            fail(
                f"Future-dated transactions cannot be written: {day} is after {today}.", FUTURE_DATE
            )
        if day < earliest:
            fail(
                f"Transactions older than 7 days cannot be written: {day} is before {earliest}.",
                HISTORY_WINDOW,
            )
        start = account.feed_start_date
        if start is not None and day < start:
            fail(
                f"The transaction date {day} is before the feed start date {start} chosen in "
                "QuickBooks Online.",
                FEED_START_DATE,
            )
        if newest is not None and day < newest:
            fail(
                f"A transaction cannot be older than the most recent transaction in the account: "
                f"{day} is before {newest}.",
                CHRONOLOGICAL_ORDER,
            )
        if previous is not None and day < previous:
            fail(
                f"Transactions must be sorted by date, earliest first: {day} comes after "
                f"{previous}.",
                CHRONOLOGICAL_ORDER,
            )
        previous = day if previous is None else max(previous, day)
    return errors


def written_ids(company: Company) -> set[str]:
    """The transaction ids already written for a company, in any of its accounts."""
    return {
        entry_id
        for connection in company.connections.values()
        for account in connection.source_accounts.values()
        for entry_id, entry in account.ledger.items()
        if entry.written_by is not None
    }

"""Reading the bank's transactions: exact decimals from JSON, every bad item named by its index
and field, QuickBooks' refusals in Codat's words. Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from app.errors import InvalidRequest, Unprocessable
from app.transactions.rules import future_problem
from app.transactions.schemas import MAX_TRANSACTIONS_PER_REQUEST, TransactionIn

MAX_ERRORS = 100  # listed in one answer; the count says how many there were


@dataclass(frozen=True)
class ItemError:
    index: int  # in `transactions`, from 0
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "loc": ["body", "transactions", self.index, *([self.field] if self.field else [])],
            "msg": self.message,
            "type": "value_error",
            "index": self.index,
            "field": self.field,
        }


class TransactionsRejected(Unprocessable):
    """Bad items; nothing of the request was stored."""

    def __init__(self, errors: Sequence[ItemError]) -> None:
        super().__init__([e.as_json() for e in errors[:MAX_ERRORS]])
        self.errors = list(errors)


def parse_body(raw: bytes) -> list[Any]:
    """The `transactions` array of a JSON body, its numbers read as exact decimals."""
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("transactions"), list):
        raise Unprocessable(
            [{"loc": ["body", "transactions"], "msg": "must be an array", "type": "value_error",
              "field": "transactions"}]
        )  # fmt: skip
    extra = sorted(set(body) - {"transactions"})
    if extra:
        raise Unprocessable(
            [{"loc": ["body", extra[0]], "msg": "is not a known field", "type": "value_error",
              "field": extra[0]}]
        )  # fmt: skip
    items: list[Any] = body["transactions"]
    if len(items) > MAX_TRANSACTIONS_PER_REQUEST:
        raise Unprocessable(
            [{"loc": ["body", "transactions"], "type": "value_error", "field": "transactions",
              "msg": f"at most {MAX_TRANSACTIONS_PER_REQUEST} transactions per request"}]
        )  # fmt: skip
    return items


def read_item(index: int, value: Any, today: date) -> tuple[TransactionIn | None, list[ItemError]]:
    """One item, checked: the model, then QuickBooks' rules."""
    if not isinstance(value, dict):
        return None, [ItemError(index, "", "must be an object")]
    try:
        item = TransactionIn.model_validate(value)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            errors.append(ItemError(index, field, message))
        return None, errors
    errors = []
    future = future_problem(item.date, today)
    if future:
        errors.append(ItemError(index, "date", future))
    sign = item.sign_problem()
    if sign:
        errors.append(ItemError(index, "amount", sign))
    return (item if not errors else None), errors


def read_items(values: Sequence[Any], today: date) -> list[TransactionIn]:
    """Every item, or `TransactionsRejected` naming each bad one."""
    items: list[TransactionIn] = []
    errors: list[ItemError] = []
    for index, value in enumerate(values):
        item, problems = read_item(index, value, today)
        errors.extend(problems)
        if item is not None:
            items.append(item)
    if errors:
        raise TransactionsRejected(errors)
    return items

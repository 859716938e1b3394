"""Request bodies as Codat checks them: companies, connections, v2 and v1 source accounts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NoReturn

from app.sandbox.currencies import ISO_4217
from app.sandbox.errors import CodatError, FieldError
from app.sandbox.state import ConnectionStatus, SourceAccountStatus

MAX_AMOUNT = Decimal("1e15")
INVALID_BODY = "The request body is invalid. See validation.errors for details."
COMPANY_NAME = re.compile(r"^[A-Za-z0-9\s\-',&@.,?!\s]+$")
PLATFORM_KEY = re.compile(r"^[a-z]{4}$")
ACCOUNT_TYPES = ("checking", "savings", "loan", "creditCard", "prepaidCard")
ROUTING_TYPES = (
    "rtn", "aba", "swift", "bsb", "iban", "nz2", "trno",
    "sortcode", "blz", "ifsc", "bankcode", "apca", "clabe",
)  # fmt: skip
V2_FIELDS = (
    "id", "accountName", "accountType", "accountNumber", "sortCode", "routingInfo",
    "currency", "balance", "accountInfo", "modifiedDate",
)  # fmt: skip
V2_REQUIRED = ("id", "accountName", "accountType", "accountNumber", "currency", "balance")
V1_FIELDS = (
    "id", "accountName", "accountType", "accountNumber", "sortCode", "currency",
    "balance", "modifiedDate", "status", "feedStartDate",
)  # fmt: skip


@dataclass(frozen=True)
class CompanyRequest:
    name: str
    description: str
    tags: dict[str, str]


@dataclass(frozen=True)
class SourceAccountDraft:
    id: str
    account_name: str
    account_type: str
    account_number: str
    currency: str
    balance: Decimal
    sort_code: str | None
    routing_info: dict[str, object] | None
    account_info: dict[str, object] | None


@dataclass(frozen=True)
class SourceAccountUpdate:
    """A v1 PATCH body; None means the field was left out or sent as null."""

    id: str
    account_name: str | None
    account_type: str | None
    account_number: str | None
    sort_code: str | None
    currency: str | None
    balance: Decimal | None
    status: SourceAccountStatus | None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> object:
    """A request body as JSON, with decimals kept exact; Codat answers 400 otherwise."""
    if not raw.strip():
        raise CodatError(400, "A request body is required.")
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodatError(400, f"The request body is not valid JSON: {exc}") from exc


class _Checker:
    """Collects every field error in a body so one 400 names them all."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def fail(self, field_name: str, message: str, validator: str) -> None:
        self.errors.append(FieldError(f"{self.prefix}{field_name}", message, validator))

    def mapping(self, body: object, what: str) -> dict[str, object]:
        if isinstance(body, dict):
            return body
        self.fail("", f"{what} must be a JSON object.", "Type")
        return {}

    def unknown_fields(self, body: dict[str, object], allowed: tuple[str, ...]) -> None:
        for key in body:
            if key not in allowed:
                self.fail(key, f"'{key}' is not a property of this object.", "UnknownField")

    def required(self, body: dict[str, object], fields: tuple[str, ...]) -> None:
        for key in fields:
            if body.get(key) is None:
                self.fail(key, f"'{key}' is required.", "Required")

    def string(self, body: dict[str, object], key: str, *, nullable: bool = True) -> str | None:
        value = body.get(key)
        if value is None and (nullable or key not in body):
            return None
        if not isinstance(value, str):
            self.fail(key, f"'{key}' must be a string.", "Type")
            return None
        return value

    def number(self, body: dict[str, object], key: str) -> Decimal | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, int | Decimal) or isinstance(value, bool):
            self.fail(key, f"'{key}' must be a number.", "Type")
            return None
        amount = Decimal(value)
        if abs(amount) >= MAX_AMOUNT:
            self.fail(key, f"'{key}' is out of range.", "Range")
            return None
        return amount

    def enum(self, body: dict[str, object], key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.string(body, key)
        if value is not None and value not in allowed:
            self.fail(key, f"'{key}' must be one of: {', '.join(allowed)}.", "Enum")
            return None
        return value

    def currency(self, body: dict[str, object], key: str) -> str | None:
        value = self.string(body, key)
        if value is not None and value not in ISO_4217:
            self.fail(key, f"'{value}' is not an ISO 4217 currency code.", "Currency")
            return None
        return value

    def raise_if_any(self) -> None:
        if self.errors:
            raise CodatError(400, INVALID_BODY, self.errors)


def company_request(body: object) -> CompanyRequest:
    check = _Checker()
    fields = check.mapping(body, "The company")
    name = check.string(fields, "name", nullable=False)
    if "name" not in fields:
        check.fail("name", "'name' is required.", "Required")
    elif name == "":
        check.fail("name", "'name' must not be empty.", "MinLength")
    elif name is not None and not COMPANY_NAME.match(name):
        check.fail("name", "'name' contains characters that are not allowed.", "Pattern")
    description = check.string(fields, "description")
    tags = tags_object(fields.get("tags"), check)
    check.raise_if_any()
    return CompanyRequest(name or "", description or "", tags)


def tags_object(value: object, check: _Checker) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        check.fail("tags", "'tags' must be an object of strings.", "Type")
        return {}
    if len(value) > 10:
        check.fail("tags", "A company can have at most 10 tags.", "MaxProperties")
    for key, tag in value.items():
        if not 1 <= len(key) <= 27:
            check.fail(f"tags.{key}", "Tag keys must be 1 to 27 characters long.", "Pattern")
        if not isinstance(tag, str):
            check.fail(f"tags.{key}", "Tag values must be strings.", "Type")
        elif len(tag) > 100:
            check.fail(f"tags.{key}", "Tag values must be at most 100 characters.", "MaxLength")
    return {k: v for k, v in value.items() if isinstance(v, str)}


def platform_key(body: object) -> str:
    if not isinstance(body, dict):
        raise CodatError(400, "Push object DataConnectionArgs must be provided")
    check = _Checker()
    key = check.string(body, "platformKey", nullable=False)
    if key is None:
        check.fail("platformKey", "'platformKey' is required.", "Required")
    elif not PLATFORM_KEY.fullmatch(key):
        check.fail("platformKey", "'platformKey' must be four lower-case letters.", "Pattern")
    check.raise_if_any()
    return key or ""


def connection_status_update(body: object) -> ConnectionStatus | None:
    check = _Checker()
    fields = check.mapping(body, "The connection update")
    check.unknown_fields(fields, ("status",))
    status = check.enum(fields, "status", tuple(s.value for s in ConnectionStatus))
    check.raise_if_any()
    return ConnectionStatus(status) if status else None


def source_account_draft(body: object) -> SourceAccountDraft:
    draft, errors = _source_account_draft(body, _Checker())
    if draft is None:
        raise CodatError(400, INVALID_BODY, errors)
    return draft


def source_account_drafts(body: object) -> list[SourceAccountDraft]:
    """A batch body: every item is checked, and any invalid item fails the whole request."""
    if not isinstance(body, list) or not body:
        raise CodatError(400, "The request body must be a non-empty array of source accounts.")
    drafts: list[SourceAccountDraft] = []
    errors: list[FieldError] = []
    for index, item in enumerate(body):
        draft, item_errors = _source_account_draft(item, _Checker(f"[{index}]."))
        errors.extend(item_errors)
        if draft is not None:
            drafts.append(draft)
    if errors:
        raise CodatError(400, INVALID_BODY, errors)
    return drafts


def _source_account_draft(
    body: object, check: _Checker
) -> tuple[SourceAccountDraft | None, list[FieldError]]:
    fields = check.mapping(body, "A source account")
    check.unknown_fields(fields, V2_FIELDS)
    check.required(fields, V2_REQUIRED)
    account_id = check.string(fields, "id")
    if account_id == "":
        check.fail("id", "'id' must not be empty.", "Required")
    name = check.string(fields, "accountName")
    account_type = check.enum(fields, "accountType", ACCOUNT_TYPES)
    number = check.string(fields, "accountNumber")
    sort_code = check.string(fields, "sortCode")
    currency = check.currency(fields, "currency")
    balance = check.number(fields, "balance")
    check.string(fields, "modifiedDate")
    if currency == "GBP" and not sort_code:
        check.fail("sortCode", "'sortCode' is required for GBP accounts.", "Required")
    routing_info = _routing_info(fields, check)
    account_info = _account_info(fields, check)
    if (
        check.errors
        or account_id is None
        or name is None
        or account_type is None
        or number is None
        or currency is None
        or balance is None
    ):
        return None, check.errors
    draft = SourceAccountDraft(
        id=account_id,
        account_name=name,
        account_type=account_type,
        account_number=number,
        currency=currency,
        balance=balance,
        sort_code=sort_code,
        routing_info=routing_info,
        account_info=account_info,
    )
    return draft, []


def _routing_info(fields: dict[str, object], check: _Checker) -> dict[str, object] | None:
    if "routingInfo" not in fields:
        return None
    value = fields["routingInfo"]
    if not isinstance(value, dict):
        check.fail("routingInfo", "'routingInfo' must be an object.", "Type")
        return None
    inner = _Checker(f"{check.prefix}routingInfo.")
    inner.unknown_fields(value, ("bankCode", "type"))
    bank_code = inner.string(value, "bankCode")
    routing_type = inner.enum(value, "type", ROUTING_TYPES)
    check.errors.extend(inner.errors)
    return {"bankCode": bank_code, "type": routing_type or "bankcode"}


def _account_info(fields: dict[str, object], check: _Checker) -> dict[str, object] | None:
    value = fields.get("accountInfo")
    if value is None:
        return None
    if not isinstance(value, dict):
        check.fail("accountInfo", "'accountInfo' must be an object or null.", "Type")
        return None
    inner = _Checker(f"{check.prefix}accountInfo.")
    inner.unknown_fields(value, ("description", "nickname", "accountOpenDate", "availableBalance"))
    opened = inner.string(value, "accountOpenDate")
    if opened is not None:
        try:
            date.fromisoformat(opened[:10])
        except ValueError:
            inner.fail("accountOpenDate", "'accountOpenDate' must be a date.", "Type")
    info: dict[str, object] = {
        "description": inner.string(value, "description"),
        "nickname": inner.string(value, "nickname"),
        "accountOpenDate": opened,
        "availableBalance": inner.number(value, "availableBalance"),
    }
    check.errors.extend(inner.errors)
    return info


def source_account_update(body: object) -> SourceAccountUpdate:
    """The PATCH body is the closed v1 `SourceAccount` schema, which requires `id`."""
    check = _Checker()
    fields = check.mapping(body, "The source account")
    check.unknown_fields(fields, V1_FIELDS)
    check.required(fields, ("id",))
    account_id = check.string(fields, "id")
    status = check.enum(fields, "status", tuple(s.value for s in SourceAccountStatus))
    update = SourceAccountUpdate(
        id=account_id or "",
        account_name=check.string(fields, "accountName"),
        account_type=check.string(fields, "accountType"),
        account_number=check.string(fields, "accountNumber"),
        sort_code=check.string(fields, "sortCode"),
        currency=check.currency(fields, "currency"),
        balance=check.number(fields, "balance"),
        status=SourceAccountStatus(status) if status else None,
    )
    check.string(fields, "modifiedDate")
    check.string(fields, "feedStartDate")
    check.raise_if_any()
    return update

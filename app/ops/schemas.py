"""The ops API's request and response bodies; the import file's rows reuse the same rules."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from app.codat.models import AccountType, RoutingType
from app.ops.codes import COUNTRY_CODES, CURRENCY_CODES

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# Printable text with at least one character that is not a space (no NUL for Postgres).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
# A business name in any script, as printable text without markup brackets.
NAME_PATTERN = r"^[^\x00-\x1f\x7f<>]*[^\s\x00-\x1f\x7f<>][^\x00-\x1f\x7f<>]*$"
MONEY_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$"
CENTS = Decimal("0.01")
ACCOUNT_STATUSES = (
    "not_pushed",
    "pending",
    "connecting",
    "connected",
    "disconnected",
    "closed",
    "unknown",
)
# The `source_accounts` columns an account body sets (`AccountIn.columns()`).
ACCOUNT_VALUE_COLUMNS = (
    "account_name",
    "account_type",
    "account_number",
    "currency",
    "balance",
    "sort_code",
    "routing_info",
    "account_info",
)
ConnectionStatusFilter = Literal["PendingAuth", "Linked", "Unlinked", "Deauthorized", "none"]
AccountStatus = Literal[
    "not_pushed", "pending", "connecting", "connected", "disconnected", "closed", "unknown"
]


def money_str(value: Decimal) -> str:
    """One spelling per amount on both databases: at least two decimals, no trailing noise."""
    if value == 0:
        return "0.00"
    normal = value.normalize()
    if int(normal.as_tuple().exponent) >= -2:
        return f"{value.quantize(CENTS):f}"
    return f"{normal:f}"


def _country(value: str) -> str:
    if value not in COUNTRY_CODES:
        raise ValueError("must be an uppercase ISO 3166-1 alpha-2 country code, such as US or CA")
    return value


def _currency(value: str) -> str:
    if value not in CURRENCY_CODES:
        raise ValueError("must be an uppercase ISO 4217 currency code, such as USD or CAD")
    return value


CountryCode = Annotated[
    str,
    AfterValidator(_country),
    WithJsonSchema({"type": "string", "enum": sorted(COUNTRY_CODES)}),
]
CurrencyCode = Annotated[
    str,
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCY_CODES)}),
]
MoneyIn = Annotated[
    Decimal,
    Field(max_digits=19, decimal_places=4, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MONEY_PATTERN},
                {"type": "number", "minimum": -999999999999999, "maximum": 999999999999999},
            ],
            "description": "Exact amount, at most 4 decimals. A JSON string keeps it exact.",
        }
    ),
]
Money = Annotated[
    Decimal,
    PlainSerializer(money_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN}, mode="serialization"),
]


def _text(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length, pattern=TEXT_PATTERN)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


# --- customers --------------------------------------------------------------------------


class CustomerIn(Body):
    # Stored as given (accents and all); Codat gets the form its company names accept.
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
    country: CountryCode
    locale: Literal["en", "fr"] = "en"


class AccountCounts(BaseModel):
    total: int
    connected_count: int
    by_status: dict[AccountStatus, int]


class BankFeedSummary(BaseModel):
    company_id: str | None
    connection_id: str | None
    connection_status: str | None
    needs_customer_action: bool


class CustomerOut(BaseModel):
    id: str
    name: str
    country: str
    locale: str
    can_connect: bool = Field(description="Only US and CA customers can use QBO Bank Feeds.")
    created_at: datetime
    updated_at: datetime
    accounts: AccountCounts
    bank_feed: BankFeedSummary | None


class OffboardCodat(BaseModel):
    connection_unlinked: bool
    company_deleted: bool
    connection_status: str | None
    companies_deleted: list[str]


class OffboardLocal(BaseModel):
    customer_deleted: bool
    accounts_deleted: int


class OffboardOut(BaseModel):
    customer_id: str
    purge: bool
    codat: OffboardCodat
    local: OffboardLocal


# --- accounts ---------------------------------------------------------------------------


class RoutingInfoIn(Body):
    bank_code: Annotated[str | None, _text(64)] = Field(default=None, alias="bankCode")
    type: RoutingType | None = "bankcode"


class AccountInfoIn(Body):
    description: Annotated[str | None, _text(500)] = None
    nickname: Annotated[str | None, _text(200)] = None
    account_open_date: date | None = Field(default=None, alias="accountOpenDate")
    available_balance: MoneyIn | None = Field(default=None, alias="availableBalance")


class AccountIn(Body):
    """Codat's v2 source-account fields, which our database keeps as the source of truth."""

    account_name: Annotated[str, _text(200)] = Field(alias="accountName")
    account_type: AccountType = Field(alias="accountType")
    account_number: Annotated[str, _text(64)] = Field(alias="accountNumber")
    currency: CurrencyCode
    balance: MoneyIn
    # Named as Codat names it, so that an error for a missing sort code names `sortCode`.
    sortCode: Annotated[str | None, _text(32)] = Field(
        default=None, validate_default=True, description="Required for GBP accounts."
    )
    routing_info: RoutingInfoIn | None = Field(default=None, alias="routingInfo")
    account_info: AccountInfoIn | None = Field(default=None, alias="accountInfo")

    @field_validator("sortCode")
    @classmethod
    def _sort_code_for_gbp(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("currency") == "GBP":
            raise ValueError("is required for GBP accounts")
        return value

    def columns(self) -> dict[str, Any]:
        """The `source_accounts` column values (JSON columns hold Codat's camelCase keys)."""
        values = (
            self.account_name,
            self.account_type,
            self.account_number,
            self.currency,
            self.balance,
            self.sortCode,
            _json(self.routing_info),
            _json(self.account_info),
        )
        return dict(zip(ACCOUNT_VALUE_COLUMNS, values, strict=True))


def _json(model: BaseModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True) or None


class RoutingInfoOut(BaseModel):
    bankCode: str | None = None
    type: str | None = None


class AccountInfoOut(BaseModel):
    description: str | None = None
    nickname: str | None = None
    accountOpenDate: date | None = None
    availableBalance: Money | None = None


class AccountOut(BaseModel):
    """Our fields in Codat's names, then what Codat holds of the account."""

    id: str
    accountName: str
    accountType: str
    accountNumber: str
    currency: str
    balance: Money
    sortCode: str | None
    routingInfo: RoutingInfoOut | None
    accountInfo: AccountInfoOut | None
    status: AccountStatus = Field(description="Codat's status; not_pushed until Codat has it.")
    feedStartDate: date | None
    pushed_at: datetime | None
    last_heard_at: datetime | None
    status_changed_at: datetime | None
    sync_error: str | None
    in_sync: bool
    created_at: datetime
    updated_at: datetime


class CodatWrite(BaseModel):
    action: Literal["created", "already_in_codat", "updated", "unchanged", "not_sent"]
    fields: list[str] = Field(description="Fields sent to Codat.")
    local_only: list[str] = Field(description="Fields changed here that Codat keeps as they were.")
    note: str | None = None


class AccountWriteOut(AccountOut):
    codat: CodatWrite


class AccountDeleteOut(BaseModel):
    customer_id: str
    account_id: str
    codat: Literal["deleted", "not_in_codat", "not_sent"]


# --- bank feeds -------------------------------------------------------------------------


class Reason(BaseModel):
    code: str
    message: str


class ConnectionHistoryItem(BaseModel):
    connection_id: str
    company_id: str
    status: str
    created_at: datetime
    replaced_at: datetime | None


class BankFeedStatus(BaseModel):
    customer_id: str
    company_id: str | None
    connection_id: str | None
    connection_status: str | None
    connection_status_at: datetime | None
    linked_at: datetime | None
    last_refreshed_at: datetime | None
    refreshed: bool = Field(description="True when Codat was read during this request.")
    history: list[ConnectionHistoryItem]
    accounts: list[AccountOut]
    counts: dict[AccountStatus, int]
    connected_count: int
    needs_customer_action: bool
    reasons: list[Reason]


class BankFeedRow(BaseModel):
    customer_id: str
    name: str
    country: str
    company_id: str | None
    connection_id: str | None
    connection_status: str | None
    connection_status_at: datetime | None
    account_count: int
    connected_count: int
    counts: dict[AccountStatus, int]
    needs_customer_action: bool
    updated_at: datetime


class BankFeedSummaryCounts(BaseModel):
    total_customers: int
    by_connection_status: dict[str, int] = Field(description="`none`: no connection yet.")
    connected_accounts: int
    needs_customer_action: int


class BankFeedPage(BaseModel):
    items: list[BankFeedRow]
    next_cursor: str | None
    summary: BankFeedSummaryCounts | None = Field(
        description="Every customer matching the filters, not only this page. On the first "
        "page only (without `cursor`): it is the same for every page."
    )


class SyncOut(BaseModel):
    customer_id: str
    created: list[str]
    already_in_codat: list[str]
    updated: list[str]
    failed: dict[str, str]
    codat_calls: int


# --- import -----------------------------------------------------------------------------


class ImportCounts(BaseModel):
    created: int
    updated: int
    unchanged: int


class ImportOut(BaseModel):
    rows: int
    customers: ImportCounts
    accounts: ImportCounts


class ErrorOut(BaseModel):
    detail: str


class ImportRowError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    line: int = Field(description="Line in the file where the row starts (1: the header).")
    row: int = Field(description="Position among the data rows, from 1; 0 for the whole file.")
    field: str


class ImportErrorOut(BaseModel):
    detail: list[ImportRowError]

"""The ops API's bodies for customers and their accounts; the import file's rows reuse the same
rules. Account fields carry Codat's names: the API shows them as Codat will hold them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from app.bank_feeds.schemas import MONEY_PATTERN, AccountOut, BankFeedSummary
from app.bank_feeds.statuses import AccountStatus
from app.codat.models import AccountType, RoutingType
from app.customers.rules import COUNTRY_CODES, CURRENCY_CODES

# Printable text with at least one character that is not a space (no NUL for Postgres).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
# A business name in any script, as printable text without markup brackets.
NAME_PATTERN = r"^[^\x00-\x1f\x7f<>]*[^\s\x00-\x1f\x7f<>][^\x00-\x1f\x7f<>]*$"
# The `source_accounts` columns an account body sets (`AccountIn.columns()`), by API name.
ACCOUNT_FIELDS = {
    "account_name": "accountName",
    "account_type": "accountType",
    "account_number": "accountNumber",
    "currency": "currency",
    "balance": "balance",
    "sort_code": "sortCode",
    "routing_info": "routingInfo",
    "account_info": "accountInfo",
}
ACCOUNT_VALUE_COLUMNS = tuple(ACCOUNT_FIELDS)
# Codat identifies a bank account by these; it cannot change them once the account is pushed.
FIXED_FIELDS = tuple(
    (c, ACCOUNT_FIELDS[c])
    for c in ("account_type", "account_number", "currency", "sort_code", "routing_info")
)


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


# --- import -----------------------------------------------------------------------------

# The columns of an import file: a customer's, then an account's in the API's names.
CUSTOMER_COLUMNS = ("customer_id", "name", "country", "locale")
ACCOUNT_COLUMNS = (
    "account_id",
    "accountName",
    "accountType",
    "accountNumber",
    "currency",
    "balance",
    "sortCode",
    "routingInfo.bankCode",
    "routingInfo.type",
    "accountInfo.description",
    "accountInfo.nickname",
    "accountInfo.accountOpenDate",
    "accountInfo.availableBalance",
)
COLUMNS = CUSTOMER_COLUMNS + ACCOUNT_COLUMNS
REQUIRED_COLUMNS = ("customer_id", "name", "country")
# Identifiers that a JSON file may spell as numbers.
TEXT_COLUMNS = frozenset(
    {"customer_id", "account_id", "accountNumber", "sortCode", "routingInfo.bankCode"}
)


class ImportCounts(BaseModel):
    created: int
    updated: int
    unchanged: int


class ImportOut(BaseModel):
    rows: int
    customers: ImportCounts
    accounts: ImportCounts


class ImportRowError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    line: int = Field(description="Line in the file where the row starts (1: the header).")
    row: int = Field(description="Position among the data rows, from 1; 0 for the whole file.")
    field: str


class ImportErrorOut(BaseModel):
    detail: list[ImportRowError] = Field(description="The first 100 errors, in file order.")
    error_count: int = Field(description="How many errors the file has in all.")

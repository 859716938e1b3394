"""Codat's wire objects: lenient when read, strict when written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

T = TypeVar("T")
PLATFORM_KEY_QBO_BANK_FEEDS = "hcws"
AccountType = Literal["checking", "savings", "loan", "creditCard", "prepaidCard"]
RoutingType = Literal[
    "rtn",
    "aba",
    "swift",
    "bsb",
    "iban",
    "nz2",
    "trno",
    "sortcode",
    "blz",
    "ifsc",
    "bankcode",
    "apca",
    "clabe",
]


def _as_utc(value: datetime) -> datetime:
    # Codat sends Z, an offset, or an unqualified time; unqualified means UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _date_from_any(value: Any) -> Any:
    if isinstance(value, str) and "T" in value:
        return value.split("T", 1)[0]
    return value


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


CodatDateTime = Annotated[datetime, AfterValidator(_as_utc)]
CodatDate = Annotated[date, BeforeValidator(_date_from_any)]
LenientStr = Annotated[str, BeforeValidator(_to_str)]
WireDecimal = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- read ---------------------------------------------------------------------------------


class Connection(Lenient):
    id: str
    status: str  # app.bank_feeds.statuses, or one Codat adds later
    link_url: str | None = Field(default=None, alias="linkUrl")
    integration_key: str | None = Field(default=None, alias="integrationKey")
    platform_name: str | None = Field(default=None, alias="platformName")
    source_type: str | None = Field(default=None, alias="sourceType")
    created: CodatDateTime | None = None
    last_sync: CodatDateTime | None = Field(default=None, alias="lastSync")


class Company(Lenient):
    id: str
    name: str
    description: str | None = None
    tags: dict[str, str] | None = None
    created: CodatDateTime | None = None
    data_connections: list[Connection] | None = Field(default=None, alias="dataConnections")


class RoutingInfo(Lenient):
    bank_code: LenientStr | None = Field(default=None, alias="bankCode")
    type: str | None = None


class SourceAccount(Lenient):
    id: LenientStr
    account_name: str | None = Field(default=None, alias="accountName")
    account_type: str | None = Field(default=None, alias="accountType")
    account_number: LenientStr | None = Field(default=None, alias="accountNumber")
    sort_code: LenientStr | None = Field(default=None, alias="sortCode")
    routing_info: RoutingInfo | None = Field(default=None, alias="routingInfo")
    currency: str | None = None
    balance: Decimal | None = None
    status: str | None = None  # app.bank_feeds.statuses, or one Codat adds later
    feed_start_date: CodatDate | None = Field(default=None, alias="feedStartDate")
    modified_date: CodatDateTime | None = Field(default=None, alias="modifiedDate")


class BatchItemResult(Lenient):
    status_code: int = Field(alias="statusCode")
    error: str | None = None
    account: SourceAccount | None = None


class BatchItem(Lenient):
    source_account_id: LenientStr = Field(alias="sourceAccountId")
    result: BatchItemResult

    @property
    def created(self) -> bool:
        return 200 <= self.result.status_code < 300

    @property
    def already_exists(self) -> bool:
        return self.result.status_code == 409


class Integration(Lenient):
    key: str
    name: str
    enabled: bool
    source_type: str | None = Field(default=None, alias="sourceType")


class Page(Lenient, Generic[T]):
    results: list[T]
    page_number: int = Field(alias="pageNumber")
    page_size: int = Field(alias="pageSize")
    total_results: int = Field(alias="totalResults")


# --- write --------------------------------------------------------------------------------


class CompanyCreate(Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9\s\-',&@.,?!\s]+$")]
    description: str | None = None
    tags: Annotated[dict[str, Annotated[str, Field(max_length=100)]], Field(max_length=10)] = {}


class ConnectionCreate(Strict):
    platform_key: Annotated[str, Field(pattern="^[a-z]{4}$")] = Field(alias="platformKey")


class ConnectionStatusUpdate(Strict):
    status: Literal["Unlinked"]


class RoutingInfoCreate(Strict):
    bank_code: str | None = Field(default=None, alias="bankCode")
    type: RoutingType | None = "bankcode"


class AccountInfoCreate(Strict):
    description: str | None = None
    nickname: str | None = None
    account_open_date: date | None = Field(default=None, alias="accountOpenDate")
    available_balance: WireDecimal | None = Field(default=None, alias="availableBalance")


class SourceAccountCreate(Strict):
    """Codat's v2 source-account prototype (integrations after 2024-08-01)."""

    id: Annotated[str, Field(min_length=1)]
    account_name: Annotated[str, Field(min_length=1)] = Field(alias="accountName")
    account_type: AccountType = Field(alias="accountType")
    account_number: Annotated[str, Field(min_length=1)] = Field(alias="accountNumber")
    sort_code: str | None = Field(default=None, alias="sortCode")
    routing_info: RoutingInfoCreate | None = Field(default=None, alias="routingInfo")
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")]
    balance: WireDecimal
    account_info: AccountInfoCreate | None = Field(default=None, alias="accountInfo")


class SourceAccountUpdate(Strict):
    """PATCH body: Codat requires the v1 `SourceAccount` shape, `id` included."""

    id: str
    account_name: str | None = Field(default=None, alias="accountName")
    balance: WireDecimal | None = None
    status: Literal["disconnected"] | None = None


def wire(model: BaseModel) -> dict[str, Any]:
    """The JSON body Codat expects: aliases, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)

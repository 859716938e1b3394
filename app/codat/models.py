"""Codat's wire objects: lenient when read, strict when written."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

T = TypeVar("T")
PLATFORM_KEY_QBO_BANK_FEEDS = "hcws"
BANK_FEED_SOURCE_TYPE = "BankFeed"
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


_FRACTION = re.compile(r"(\.\d{6})\d+")


def datetime_or_none(value: Any) -> datetime | None:
    """Codat's `DateTime` has no format in the spec: what cannot be read is unknown, not fatal."""
    if isinstance(value, datetime):
        return _as_utc(value)
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _date_or_none(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _decimal_or_none(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _status_code(value: Any) -> int:
    """A batch item's `statusCode`: an integer, or a string holding one (the spec says both)."""
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


CodatDateTime = Annotated[datetime | None, BeforeValidator(datetime_or_none)]
CodatDate = Annotated[date | None, BeforeValidator(_date_or_none)]
LenientStr = Annotated[str, BeforeValidator(_to_str)]
OptionalStr = Annotated[str | None, BeforeValidator(_str_or_none)]
OptionalDecimal = Annotated[Decimal | None, BeforeValidator(_decimal_or_none)]
StatusCode = Annotated[int, BeforeValidator(_status_code)]
WireDecimal = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- read ---------------------------------------------------------------------------------


class Connection(Lenient):
    id: LenientStr
    # app.bank_feeds.statuses, or one Codat adds later
    status: Annotated[str, BeforeValidator(lambda v: _str_or_none(v) or "Unknown")] = "Unknown"
    link_url: OptionalStr = Field(default=None, alias="linkUrl")
    integration_key: OptionalStr = Field(default=None, alias="integrationKey")
    platform_name: OptionalStr = Field(default=None, alias="platformName")
    source_type: OptionalStr = Field(default=None, alias="sourceType")
    created: CodatDateTime = None
    last_sync: CodatDateTime = Field(default=None, alias="lastSync")

    @property
    def is_qbo_bank_feed(self) -> bool:
        """A QuickBooks Online Bank Feeds connection: a bank feed, and `hcws` when keyed."""
        return self.source_type == BANK_FEED_SOURCE_TYPE and self.integration_key in (
            None,
            PLATFORM_KEY_QBO_BANK_FEEDS,
        )


def _tags(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


class Company(Lenient):
    id: LenientStr
    name: OptionalStr = None
    description: OptionalStr = None
    tags: Annotated[dict[str, str] | None, BeforeValidator(_tags)] = None
    created: CodatDateTime = None


def _object_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) else None


class RoutingInfo(Lenient):
    bank_code: OptionalStr = Field(default=None, alias="bankCode")
    type: OptionalStr = None


class SourceAccount(Lenient):
    id: LenientStr
    account_name: OptionalStr = Field(default=None, alias="accountName")
    account_type: OptionalStr = Field(default=None, alias="accountType")
    account_number: OptionalStr = Field(default=None, alias="accountNumber")
    sort_code: OptionalStr = Field(default=None, alias="sortCode")
    routing_info: Annotated[RoutingInfo | None, BeforeValidator(_object_or_none)] = Field(
        default=None, alias="routingInfo"
    )
    currency: OptionalStr = None
    balance: OptionalDecimal = None
    status: OptionalStr = None  # app.bank_feeds.statuses, or one Codat adds later
    feed_start_date: CodatDate = Field(default=None, alias="feedStartDate")
    modified_date: CodatDateTime = Field(default=None, alias="modifiedDate")


def _account_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) and "id" in value else None


class BatchItemResult(Lenient):
    status_code: StatusCode = Field(alias="statusCode")
    error: OptionalStr = None
    account: Annotated[SourceAccount | None, BeforeValidator(_account_or_none)] = None


class BatchItem(Lenient):
    source_account_id: LenientStr = Field(alias="sourceAccountId")
    result: BatchItemResult

    @property
    def created(self) -> bool:
        return 200 <= self.result.status_code < 300

    @property
    def already_exists(self) -> bool:
        return self.result.status_code == 409

    @classmethod
    def already_held(cls, held: SourceAccount) -> BatchItem:
        """The answer Codat gives for an account it already holds, with its copy to compare."""
        item = cls.model_validate(
            {"sourceAccountId": held.id, "result": {"statusCode": 409, "error": "already exists"}}
        )
        item.result.account = held
        return item


class SupportedFeature(Lenient):
    feature_type: OptionalStr = Field(default=None, alias="featureType")
    feature_state: OptionalStr = Field(default=None, alias="featureState")


def _list_of_objects(value: Any) -> Any:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class DataTypeFeature(Lenient):
    # The spec requires `datatype` (its own typo) for the property it names `dataType`.
    data_type: OptionalStr = Field(default=None, alias="dataType")
    datatype: OptionalStr = None
    supported_features: Annotated[list[SupportedFeature], BeforeValidator(_list_of_objects)] = (
        Field(default=[], alias="supportedFeatures")
    )

    @property
    def name(self) -> str | None:
        return self.data_type or self.datatype


class Integration(Lenient):
    key: OptionalStr = None
    name: OptionalStr = None
    enabled: Annotated[bool, BeforeValidator(lambda v: v is True)] = False
    source_type: OptionalStr = Field(default=None, alias="sourceType")
    datatype_features: Annotated[list[DataTypeFeature], BeforeValidator(_list_of_objects)] = Field(
        default=[], alias="datatypeFeatures"
    )

    def feature(self, data_type: str) -> DataTypeFeature | None:
        return next((f for f in self.datatype_features if f.name == data_type), None)


class SyncSetting(Lenient):
    data_type: OptionalStr = Field(default=None, alias="dataType")


class SyncSettings(Lenient):
    settings: Annotated[list[SyncSetting], BeforeValidator(_list_of_objects)] = []


class Page(Lenient, Generic[T]):
    results: list[T]
    page_number: int = Field(alias="pageNumber")
    page_size: int = Field(alias="pageSize")
    total_results: int = Field(alias="totalResults")


# --- write --------------------------------------------------------------------------------


COMPANY_NAME_PATTERN = r"^[A-Za-z0-9\s\-',&@.,?!\s]+$"
_NOT_IN_COMPANY_NAME = re.compile(r"[^A-Za-z0-9 \-',&@.?!]")
_SPELLED_OUT = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l",
     "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "\u2019": "'",
     "\u2018": "'", "\u2013": "-", "\u2014": "-"}
)  # fmt: skip


def company_name_for_codat(name: str, fallback: str) -> str:
    """The form of a business name Codat's company-name pattern accepts.

    Accents are taken off (`Boulangerie Bélanger` → `Boulangerie Belanger`), a few letters are
    spelled out, anything else outside the pattern is dropped; `fallback` if nothing is left.
    """
    plain = unicodedata.normalize("NFKD", name.translate(_SPELLED_OUT))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    kept = " ".join(_NOT_IN_COMPANY_NAME.sub(" ", plain).split())
    return kept if re.search(r"[A-Za-z0-9]", kept) else fallback


class CompanyCreate(Strict):
    name: Annotated[str, Field(min_length=1, pattern=COMPANY_NAME_PATTERN)]
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

"""What the ops API shows of bank feeds: an account with its Codat state, a customer's feed,
the list of feeds, a sync's report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.statuses import AccountStatus, ConnectionStatus, account_status
from app.bank_feeds.sync import in_sync
from app.models import SourceAccount

MONEY_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$"
CENTS = Decimal("0.01")
ConnectionStatusFilter = Literal[ConnectionStatus, "none"]


def money_str(value: Decimal) -> str:
    """One spelling per amount on both databases: at least two decimals, no trailing noise."""
    if value == 0:
        return "0.00"
    normal = value.normalize()
    if int(normal.as_tuple().exponent) >= -2:
        return f"{value.quantize(CENTS):f}"
    return f"{normal:f}"


Money = Annotated[
    Decimal,
    PlainSerializer(money_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN}, mode="serialization"),
]


# --- accounts ---------------------------------------------------------------------------


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

    @classmethod
    def of(cls, account: SourceAccount) -> AccountOut:
        return cls.model_validate(
            {
                "id": account.id,
                "accountName": account.account_name,
                "accountType": account.account_type,
                "accountNumber": account.account_number,
                "currency": account.currency,
                "balance": account.balance,
                "sortCode": account.sort_code,
                "routingInfo": account.routing_info,
                "accountInfo": account.account_info,
                "status": account_status(account),
                "feedStartDate": account.feed_start_date,
                "pushed_at": account.pushed_at,
                "last_heard_at": account.last_heard_at,
                "status_changed_at": account.status_changed_at,
                "sync_error": account.sync_error,
                "in_sync": in_sync(account),
                "created_at": account.created_at,
                "updated_at": account.updated_at,
            }
        )


# --- bank feeds -------------------------------------------------------------------------


class Reason(BaseModel):
    code: str
    message: str


class BankFeedSummary(BaseModel):
    company_id: str | None
    connection_id: str | None
    connection_status: str | None
    needs_customer_action: bool


class ConnectionHistoryItem(BaseModel):
    connection_id: str
    company_id: str
    status: str
    created_at: datetime
    replaced_at: datetime | None


class LastPush(BaseModel):
    id: int
    status: str
    transaction_count: int
    requested_at: datetime
    completed_at: datetime | None


class TransactionFeedOut(BaseModel):
    """An account's transaction feed: what QuickBooks has, what waits, what needs someone."""

    account_id: str
    last_pushed_date: date | None
    last_pushed_balance: Money | None
    counts: dict[str, int] = Field(description="Transactions by status.")
    last_push: LastPush | None
    needs_action: list[Reason]


# What the transaction feed says of a customer's accounts (`app/services.py` hands it in).
TransactionFeeds = Callable[[AsyncSession, str], Awaitable[list[TransactionFeedOut]]]


async def no_transaction_feeds(session: AsyncSession, customer_id: str) -> list[TransactionFeedOut]:
    return []


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
    transaction_feeds: list[TransactionFeedOut] = Field(
        default_factory=list, description="Per account with transactions."
    )


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

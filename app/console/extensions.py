"""What the console will show of features this build does not have yet: transaction feeds
(pushes per day, failed, held and stale pushes, a customer's transactions, and the account
actions that go with them) and Codat's daily quota share.

Each provider answers None (or no action) today, and the console draws a panel or a button only
when its provider has something: nothing is shown that cannot work. To wire a feature, make its
provider read the feature's service; the templates and the chart already take the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.schemas import AccountOut


@dataclass(frozen=True)
class PushProblemFeed:
    customer_id: str
    name: str
    failed: int
    held: int
    stale: int


@dataclass(frozen=True)
class PushProblems:
    """Feeds whose pushes need a look; the overview lists `feeds` with a link to each."""

    failed: int
    held: int
    stale: int
    feeds: list[PushProblemFeed] = field(default_factory=list)


@dataclass(frozen=True)
class QuotaUse:
    """Codat calls made today (UTC) against the share of the quota this service may use."""

    used_today: int
    share: int


@dataclass(frozen=True)
class TransactionRow:
    account_id: str
    booked_on: date  # Codat's transaction `date`: a local date
    description: str
    amount: Decimal
    currency: str
    push_status: str
    pushed_at: datetime | None


@dataclass(frozen=True)
class AccountAction:
    """A button on an account's row: a form that POSTs the console's CSRF token to `path`
    (a console route that calls the feature's service inside `ConsoleService.audited`)."""

    name: str  # the audit log's action
    path: str
    labels: Mapping[str, str]  # by language: "en", "fr"


async def pushed_transactions_per_day(session: AsyncSession, days: list[date]) -> list[int] | None:
    """Transactions pushed to Codat on each of `days` (UTC), for the overview's second chart."""
    return None


async def push_problems(session: AsyncSession) -> PushProblems | None:
    """Feeds with failed, held or stale pushes, for the overview panel of that name."""
    return None


async def codat_quota_today(session: AsyncSession) -> QuotaUse | None:
    """Codat's quota used today against this service's share, for the overview panel."""
    return None


async def customer_transactions(
    session: AsyncSession, customer_id: str
) -> list[TransactionRow] | None:
    """The customer's latest transactions and their pushes, for the customer page."""
    return None


def account_actions(account: AccountOut) -> list[AccountAction]:
    """The actions an account offers in its state: "retry a failed push", "requeue held
    transactions" and "close an account" come with the transaction feeds."""
    return []

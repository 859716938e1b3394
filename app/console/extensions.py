"""What the console shows of features beside the bank feed's connection: transaction feeds
(pushes per day, failed, held and stale pushes, a customer's transactions, and the account
actions that go with them) and Codat's daily quota share.

The console draws a panel or a button only when its provider has something: nothing is shown
that cannot work. A provider whose feature is not in this build answers None (or no action).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds import quota
from app.bank_feeds.schemas import AccountOut
from app.bank_feeds.statuses import CLOSED, DISCONNECTED


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
    """Codat's daily quota (UTC) as every replica sees it: what background work spent of its
    share, and, when Codat has said, what all calls together used of the day's limit."""

    used_today: int  # background requests
    share: int  # background allowance
    limit: int
    used_by_all: int | None  # limit - X-Rate-Limit-Remaining, when a replica has seen it


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


async def codat_quota_today(session: AsyncSession, now: datetime, share: float) -> QuotaUse:
    """Codat's quota used today against background work's share, for the overview panel."""
    seen = await quota.view(session, now)
    return QuotaUse(
        used_today=seen.background_used,
        share=seen.background_allowance(share),
        limit=seen.limit,
        used_by_all=None if seen.remaining is None else max(0, seen.limit - seen.remaining),
    )


async def customer_transactions(
    session: AsyncSession, customer_id: str
) -> list[TransactionRow] | None:
    """The customer's latest transactions and their pushes, for the customer page."""
    return None


def account_actions(customer_id: str, account: AccountOut) -> list[AccountAction]:
    """The actions an account offers in its state. Closing needs an account in Codat's bank
    feed; "retry a failed push" and "requeue held transactions" come with the transaction
    feeds."""
    actions = []
    if account.pushed_at is not None and account.status not in (CLOSED, DISCONNECTED):
        actions.append(
            AccountAction(
                "close_account",
                f"/console/customers/{customer_id}/accounts/{account.id}/close",
                {"en": "Close…", "fr": "Fermer…"},
            )
        )
    return actions

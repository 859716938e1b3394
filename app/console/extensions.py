"""What the console shows beside the bank feed's connection: the transaction feeds (pushes per
day, failed, held and stale pushes, a customer's latest transactions, and the account actions
that go with them) and Codat's daily quota share.

The console draws a panel or a button only when its provider has something: nothing is shown
that cannot work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds import quota
from app.bank_feeds.schemas import AccountOut, TransactionFeedOut
from app.bank_feeds.statuses import CLOSED, DISCONNECTED
from app.console.i18n import in_every_language
from app.db import utcnow
from app.models import BankTransaction, Customer, SourceAccount, TransactionPush
from app.transactions.rules import HELD, REJECTED

STALE_AFTER = timedelta(hours=1)  # a push Codat has not settled by then
LATEST_TRANSACTIONS = 50


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
    """Transactions pushed to Codat on each of `days` (UTC), for the overview's second chart;
    None when there were none. Counted from the successful pushes (each settles all its
    transactions at its completion), which are a thousandth as many rows as the transactions."""
    if not days:
        return []
    completed_at: Any = TransactionPush.completed_at
    if session.get_bind().dialect.name == "postgresql":
        completed_at = func.timezone("UTC", completed_at)  # the day in UTC, whatever the session's
    day = func.date(completed_at)
    rows = await session.execute(
        select(day, func.sum(TransactionPush.transaction_count))
        .where(
            TransactionPush.status == "success",
            TransactionPush.completed_at >= datetime.combine(min(days), time(), UTC),
            TransactionPush.completed_at
            < datetime.combine(max(days) + timedelta(days=1), time(), UTC),
        )
        .group_by(day)
    )
    counts = {str(d)[:10]: int(n or 0) for d, n in rows.all()}
    per_day = [counts.get(d.isoformat(), 0) for d in days]
    return per_day if any(per_day) else None  # no chart of nothing


async def push_problems(session: AsyncSession) -> PushProblems | None:
    """Feeds with failed, held or stale pushes, for the overview panel of that name; None when
    there are none."""
    stale_before = utcnow() - STALE_AFTER
    per: dict[str, list[int]] = {}
    failed = await session.execute(
        select(TransactionPush.customer_id, func.count())
        .where(TransactionPush.status == "failed", TransactionPush.retried_at.is_(None))
        .group_by(TransactionPush.customer_id)
    )
    for customer_id, n in failed.all():
        per.setdefault(customer_id, [0, 0, 0])[0] = int(n)
    held = await session.execute(
        select(BankTransaction.customer_id, func.count())
        .where(BankTransaction.status == "held")
        .group_by(BankTransaction.customer_id)
    )
    for customer_id, n in held.all():
        per.setdefault(customer_id, [0, 0, 0])[1] = int(n)
    stale = await session.execute(
        select(TransactionPush.customer_id, func.count())
        .where(
            TransactionPush.status.in_(("sending", "unconfirmed", "pending", "timed_out")),
            TransactionPush.requested_at < stale_before,
        )
        .group_by(TransactionPush.customer_id)
    )
    for customer_id, n in stale.all():
        per.setdefault(customer_id, [0, 0, 0])[2] = int(n)
    if not per:
        return None
    names = dict(
        (
            await session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(per)))
        ).all()
    )
    feeds = [
        PushProblemFeed(customer_id, names.get(customer_id, customer_id), *counts)
        for customer_id, counts in sorted(per.items())
    ]
    return PushProblems(
        failed=sum(f.failed for f in feeds),
        held=sum(f.held for f in feeds),
        stale=sum(f.stale for f in feeds),
        feeds=feeds,
    )


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
    """The customer's latest transactions and their pushes, for the customer page; None when
    the bank has sent none."""
    rows = (
        await session.execute(
            select(BankTransaction, SourceAccount.currency)
            .join(
                SourceAccount,
                (SourceAccount.customer_id == BankTransaction.customer_id)
                & (SourceAccount.id == BankTransaction.account_id),
            )
            .where(BankTransaction.customer_id == customer_id)
            .order_by(BankTransaction.seq.desc())
            .limit(LATEST_TRANSACTIONS)
        )
    ).all()
    if not rows:
        return None
    return [
        TransactionRow(
            account_id=t.account_id,
            booked_on=t.push_date,
            description=t.description,
            amount=t.amount,
            currency=currency,
            push_status=t.status,
            pushed_at=t.pushed_at,
        )
        for t, currency in rows
    ]


def account_actions(
    customer_id: str, account: AccountOut, feed: TransactionFeedOut | None
) -> list[AccountAction]:
    """The actions an account offers in its state: retry its failed push, requeue its held or
    rejected transactions, close it (an account in Codat's bank feed)."""
    actions = []
    base = f"/console/customers/{customer_id}"
    last = feed.last_push if feed is not None else None
    if last is not None and last.status == "failed":
        actions.append(
            AccountAction(
                "retry_push",
                f"{base}/pushes/{last.id}/retry",
                in_every_language("retry_push_button"),
            )
        )
    if feed is not None and (feed.counts.get(HELD) or feed.counts.get(REJECTED)):
        actions.append(
            AccountAction(
                "requeue_transactions",
                f"{base}/accounts/{account.id}/requeue",
                in_every_language("requeue_button"),
            )
        )
    if account.pushed_at is not None and account.status not in (CLOSED, DISCONNECTED):
        actions.append(
            AccountAction(
                "close_account",
                f"{base}/accounts/{account.id}/close",
                in_every_language("close_button"),
            )
        )
    return actions

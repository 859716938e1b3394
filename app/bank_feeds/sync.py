"""Bring Codat in step with our source accounts, and our statuses in step with Codat.

One push path (a batch create, or one account with its lost-answer adoption) and one PATCH path
(`patch_account`); every Codat answer about an account lands through `apply_codat_account`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.bank_feeds import writes
from app.bank_feeds.statuses import CONNECTED, PENDING, UNKNOWN
from app.codat.client import CodatClient
from app.codat.errors import CodatError, CodatNotFound
from app.codat.mapper import fields_sent, source_account_create, source_account_update
from app.codat.models import BatchItem
from app.codat.models import SourceAccount as CodatSourceAccount
from app.db import utcnow
from app.errors import CodatRefused
from app.models import SourceAccount

Target = tuple[str, str]  # the company and connection an account goes to
# What our row holds of Codat's copy of the account.
_CODAT_COPY = (
    "pushed_at", "pushed_account_name", "pushed_balance",
    "codat_status", "feed_start_date", "status_changed_at",
)  # fmt: skip


# --- what our row says of Codat's copy -----------------------------------------------------


def needs_rename(account: SourceAccount) -> bool:
    return account.is_pushed and account.pushed_account_name != account.account_name


def needs_balance(account: SourceAccount) -> bool:
    """Codat takes a balance only until the account connects."""
    return (
        account.is_pushed
        and account.codat_status != CONNECTED
        and account.pushed_balance is not None
        and account.pushed_balance != account.balance
    )


def in_sync(account: SourceAccount) -> bool:
    return account.is_pushed and not needs_rename(account) and not needs_balance(account)


# --- what Codat says of an account ---------------------------------------------------------


def mark_pushed(account: SourceAccount, at: datetime, seen: CodatSourceAccount | None) -> None:
    account.pushed_at = account.pushed_at or at
    account.pushed_account_name = (
        seen.account_name if seen and seen.account_name else account.account_name
    )
    account.pushed_balance = seen.balance if seen and seen.balance is not None else account.balance
    account.sync_error = None
    if seen is not None:
        apply_codat_account(account, seen, at)
    elif account.codat_status is None:
        account.codat_status = PENDING
        account.last_heard_at = at


def forget_push(account: SourceAccount) -> None:
    """Codat does not have this account (any more): the next push creates it."""
    for column in _CODAT_COPY:
        setattr(account, column, None)


def apply_codat_account(account: SourceAccount, seen: CodatSourceAccount, at: datetime) -> bool:
    """Store what Codat says of an account; returns True when the status changed."""
    account.last_heard_at = at
    account.pushed_at = account.pushed_at or at
    if seen.account_name:
        account.pushed_account_name = seen.account_name
    if seen.balance is not None:
        account.pushed_balance = seen.balance
    if seen.feed_start_date is not None or seen.status != CONNECTED:
        account.feed_start_date = seen.feed_start_date
    status = seen.status or UNKNOWN
    if status == account.codat_status:
        return False
    account.codat_status = status
    account.status_changed_at = at
    return True


# --- pushing --------------------------------------------------------------------------------


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    already_in_codat: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    codat_calls: int = 0


async def create_missing(
    codat: CodatClient, target: Target, accounts: Sequence[SourceAccount]
) -> PushReport:
    """One batch call for every account Codat does not have yet; updates the rows in place."""
    report = PushReport()
    missing = [a for a in accounts if not a.is_pushed]
    if not missing:
        return report
    items = await writes.create_source_accounts(
        codat, *target, [source_account_create(a) for a in missing]
    )
    report.codat_calls += 1
    by_id = {a.id: a for a in missing}
    now = utcnow()
    held = await _held_by_codat(codat, target, items)
    for item in items:
        account = by_id.get(item.source_account_id)
        if account is None:
            continue
        if item.created:
            mark_pushed(account, now, item.result.account)
            report.created.append(account.id)
        elif item.already_exists:
            # Codat's copy, not ours, is what was pushed: a rename made since differs from it
            # and is PATCHed next.
            mark_pushed(account, now, held.get(account.id))
            report.already_in_codat.append(account.id)
        else:
            account.sync_error = f"{item.result.status_code}: {item.result.error or 'refused'}"
            report.failed[account.id] = account.sync_error
    return report


async def _held_by_codat(
    codat: CodatClient, target: Target, items: Sequence[BatchItem]
) -> dict[str, CodatSourceAccount]:
    """What Codat holds of accounts it said it already had (read once, only if needed)."""
    exists = [i for i in items if i.already_exists]
    held = {i.source_account_id: i.result.account for i in exists if i.result.account}
    if len(held) < len(exists):
        listed = await codat.list_source_accounts(*target)
        held.update({a.id: a for a in listed})
    return {k: v for k, v in held.items() if v is not None}


async def patch_account(codat: CodatClient, target: Target, account: SourceAccount) -> list[str]:
    """PATCH what Codat may change (name; balance while not connected); the fields sent."""
    update = source_account_update(
        account, name=needs_rename(account), balance=needs_balance(account)
    )
    fields = fields_sent(update)
    if not fields:
        return []
    seen = await writes.update_source_account(codat, *target, update)
    account.pushed_account_name = account.account_name
    if update.balance is not None:
        account.pushed_balance = account.balance
    apply_codat_account(account, seen, utcnow())
    account.sync_error = None
    return fields


async def update_changed(
    codat: CodatClient, target: Target, accounts: Sequence[SourceAccount], report: PushReport
) -> None:
    """PATCH renamed accounts (and balances of accounts not yet connected), in parallel: at
    most 10 at a time for the company, as the client allows."""
    changed = [a for a in accounts if needs_rename(a) or needs_balance(a)]
    if not changed:
        return

    async def patch(account: SourceAccount) -> None:
        try:
            await patch_account(codat, target, account)
        except CodatError as exc:
            if exc.transient:
                raise
            account.sync_error = f"{exc.status}: {exc.message}"
            report.failed[account.id] = account.sync_error
            return
        report.updated.append(account.id)

    report.codat_calls += len(changed)
    outcomes = await asyncio.gather(*(patch(a) for a in changed), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


# --- one account, as ops change it -----------------------------------------------------------


@dataclass
class AccountPush:
    """What one write told Codat of an account."""

    action: Literal["created", "already_in_codat", "updated", "unchanged"]
    fields: list[str]


async def push_account(codat: CodatClient, target: Target, account: SourceAccount) -> AccountPush:
    """Create the account in Codat, or PATCH what changed; a lost account is created again."""
    if not account.is_pushed:
        return await _create(codat, target, account)
    if not (needs_rename(account) or needs_balance(account)):
        return AccountPush("unchanged", [])
    try:
        return AccountPush("updated", await patch_account(codat, target, account))
    except CodatNotFound:  # Codat lost the account (deleted there): add it again
        forget_push(account)
        return await _create(codat, target, account)


async def _create(codat: CodatClient, target: Target, account: SourceAccount) -> AccountPush:
    """Through the batch endpoint, whose per-account 409 is documented (the single create's
    answer to a duplicate is not)."""
    body = source_account_create(account)
    [item] = await writes.create_source_accounts(codat, *target, [body])
    if item.already_exists:
        # Codat has it already (an earlier answer was lost): compare what it holds with ours,
        # then align it, so a rename made since is not lost.
        existing = item.result.account or next(
            (a for a in await codat.list_source_accounts(*target) if a.id == account.id), None
        )
        if existing is None:
            raise CodatRefused(
                f"Codat says account {account.id!r} already exists but does not list it; "
                "nothing was changed."
            )
        mark_pushed(account, utcnow(), existing)
        return AccountPush("already_in_codat", await patch_account(codat, target, account))
    if not item.created:
        raise CodatRefused(
            f"Codat refused account {account.id!r} with status {item.result.status_code}: "
            f"{(item.result.error or 'refused')[:300]}; nothing was changed."
        )
    mark_pushed(account, utcnow(), item.result.account)
    return AccountPush("created", fields_sent(body))


async def remove_account(codat: CodatClient, target: Target, account_id: str) -> bool:
    """Delete the account from the bank feed in Codat; False when Codat did not have it."""
    try:
        await codat.delete_source_account(*target, account_id)
    except CodatNotFound:
        return False
    return True

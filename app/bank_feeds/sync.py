"""Bring Codat in step with our source accounts, and our statuses in step with Codat."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.bank_feeds import writes
from app.codat.client import CodatClient
from app.codat.errors import CodatError
from app.codat.models import (
    BatchItem,
    RoutingInfoCreate,
    SourceAccountCreate,
    SourceAccountUpdate,
)
from app.codat.models import SourceAccount as CodatSourceAccount
from app.db import utcnow
from app.models import SourceAccount


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    already_in_codat: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    codat_calls: int = 0


def to_codat(account: SourceAccount) -> SourceAccountCreate:
    routing = None
    if account.routing_info:
        routing = RoutingInfoCreate.model_validate(account.routing_info)
    return SourceAccountCreate.model_validate(
        {
            "id": account.id,
            "accountName": account.account_name,
            "accountType": account.account_type,
            "accountNumber": account.account_number,
            "sortCode": account.sort_code,
            "routingInfo": routing,
            "currency": account.currency,
            "balance": account.balance,
            "accountInfo": account.account_info or None,
        }
    )


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
        account.codat_status = "pending"
        account.last_heard_at = at


def forget_push(account: SourceAccount) -> None:
    """Codat does not have this account (any more): the next push creates it."""
    account.pushed_at = None
    account.pushed_account_name = None
    account.pushed_balance = None
    account.codat_status = None
    account.feed_start_date = None
    account.status_changed_at = None


def apply_codat_account(account: SourceAccount, seen: CodatSourceAccount, at: datetime) -> bool:
    """Store what Codat says of an account; returns True when the status changed."""
    account.last_heard_at = at
    account.pushed_at = account.pushed_at or at
    if seen.account_name:
        account.pushed_account_name = seen.account_name
    if seen.balance is not None:
        account.pushed_balance = seen.balance
    if seen.feed_start_date is not None or seen.status != "connected":
        account.feed_start_date = seen.feed_start_date
    status = seen.status or "unknown"
    if status == account.codat_status:
        return False
    account.codat_status = status
    account.status_changed_at = at
    return True


async def create_missing(
    codat: CodatClient,
    company_id: str,
    connection_id: str,
    accounts: Sequence[SourceAccount],
) -> PushReport:
    """One batch call for every account Codat does not have yet; updates the rows in place."""
    report = PushReport()
    missing = [a for a in accounts if not a.is_pushed]
    if not missing:
        return report
    items = await writes.create_source_accounts(
        codat, company_id, connection_id, [to_codat(a) for a in missing]
    )
    report.codat_calls += 1
    by_id = {a.id: a for a in missing}
    now = utcnow()
    held = await _held_by_codat(codat, company_id, connection_id, items)
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
    codat: CodatClient, company_id: str, connection_id: str, items: Sequence[BatchItem]
) -> dict[str, CodatSourceAccount]:
    """What Codat holds of accounts it said it already had (read once, only if needed)."""
    exists = [i for i in items if i.already_exists]
    held = {i.source_account_id: i.result.account for i in exists if i.result.account}
    if len(held) < len(exists):
        listed = await codat.list_source_accounts(company_id, connection_id)
        held.update({a.id: a for a in listed})
    return {k: v for k, v in held.items() if v is not None}


async def update_changed(
    codat: CodatClient,
    company_id: str,
    connection_id: str,
    accounts: Sequence[SourceAccount],
    report: PushReport,
) -> None:
    """PATCH renamed accounts (and balances of accounts not yet connected), in parallel: at
    most 10 at a time for the company, as the client allows."""
    changed = [a for a in accounts if a.needs_rename or a.needs_balance]
    if not changed:
        return

    async def patch(account: SourceAccount) -> None:
        update = SourceAccountUpdate(
            id=account.id,
            account_name=account.account_name if account.needs_rename else None,
            balance=account.balance if account.needs_balance else None,
        )
        try:
            seen = await writes.update_source_account(codat, company_id, connection_id, update)
        except CodatError as exc:
            if exc.transient:
                raise
            account.sync_error = f"{exc.status}: {exc.message}"
            report.failed[account.id] = account.sync_error
            return
        now = utcnow()
        account.pushed_account_name = account.account_name
        if update.balance is not None:
            account.pushed_balance = account.balance
        apply_codat_account(account, seen, now)
        account.sync_error = None
        report.updated.append(account.id)

    report.codat_calls += len(changed)
    outcomes = await asyncio.gather(*(patch(a) for a in changed), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome

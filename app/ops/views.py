"""How rows read back: account statuses, their counts, and why a customer must act."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_

from app.codat.models import DEAUTHORIZED, LINKED, PENDING_AUTH, UNLINKED
from app.models import BankFeed, SourceAccount
from app.ops.schemas import ACCOUNT_STATUSES, AccountOut, Reason

# A connection in one of these needs the customer to click Connect (again).
ACTION_CONNECTION_STATUSES = (PENDING_AUTH, UNLINKED, DEAUTHORIZED)
_CONNECTION_REASONS = {
    PENDING_AUTH: (
        "connection_pending_auth",
        "The customer has not finished linking QuickBooks: they must click Connect.",
    ),
    UNLINKED: (
        "connection_unlinked",
        "The connection is Unlinked: the customer must click Connect to link again.",
    ),
    DEAUTHORIZED: (
        "connection_deauthorized",
        "QuickBooks access was revoked: the customer must click Connect to link again.",
    ),
}


def account_status(account: SourceAccount) -> str:
    if account.closed_at is not None:
        return "closed"
    if account.pushed_at is None:
        return "not_pushed"
    return account.codat_status or "unknown"


def account_status_sql() -> ColumnElement[str]:
    return case(
        (SourceAccount.closed_at.is_not(None), "closed"),
        (SourceAccount.pushed_at.is_(None), "not_pushed"),
        else_=func.coalesce(SourceAccount.codat_status, "unknown"),
    )


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(ACCOUNT_STATUSES, 0)
    for status in statuses:
        counts[status if status in counts else "unknown"] += 1
    return counts


def account_out(account: SourceAccount) -> AccountOut:
    return AccountOut(
        id=account.id,
        accountName=account.account_name,
        accountType=account.account_type,
        accountNumber=account.account_number,
        currency=account.currency,
        balance=account.balance,
        sortCode=account.sort_code,
        routingInfo=account.routing_info,
        accountInfo=account.account_info,
        status=account_status(account),
        feedStartDate=account.feed_start_date,
        pushed_at=account.pushed_at,
        last_heard_at=account.last_heard_at,
        status_changed_at=account.status_changed_at,
        sync_error=account.sync_error,
        in_sync=account.in_sync,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def customer_action_reasons(
    connection_id: str | None, connection_status: str | None, counts: Mapping[str, int]
) -> list[Reason]:
    """Why the customer must click Connect; `needs_action_sql` is the same rule in SQL."""
    if connection_id is None or connection_status is None:
        return [Reason(code="no_connection", message="The customer has not clicked Connect yet.")]
    if connection_status in ACTION_CONNECTION_STATUSES:
        code, message = _CONNECTION_REASONS[connection_status]
        return [Reason(code=code, message=message)]
    reasons = []
    if connection_status == LINKED:
        if counts.get("not_pushed"):
            reasons.append(
                Reason(
                    code="accounts_not_pushed",
                    message=f"{counts['not_pushed']} account(s) are not in Codat yet: the "
                    "customer must click Connect, which adds them, and connect them in QuickBooks.",
                )
            )
        if counts.get("pending"):
            reasons.append(
                Reason(
                    code="accounts_pending",
                    message=f"{counts['pending']} account(s) are pending: the customer must "
                    "click Connect and connect them in QuickBooks.",
                )
            )
    return reasons


def needs_action_sql(not_pushed: Any, pending: Any) -> ColumnElement[bool]:
    """`customer_action_reasons(...) != []` over a bank-feed row joined to account counts."""
    return or_(
        BankFeed.connection_id.is_(None),
        BankFeed.connection_status.is_(None),
        BankFeed.connection_status.in_(ACTION_CONNECTION_STATUSES),
        and_(BankFeed.connection_status == LINKED, not_pushed + pending > 0),
    )

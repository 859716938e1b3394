"""The one vocabulary of a bank feed's state, and what it asks of the customer.

Connection statuses are Codat's; account statuses are Codat's plus `not_pushed`, ours for an
account Codat does not have yet, and `closed`, ours for an account closed in the bank feed (Codat
marks it disconnected, for good). Each word is spelled here once; the rest of the code uses these
names, and the ops API's schemas list these values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal, get_args

from sqlalchemy import ColumnElement, and_, case, func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BankFeed, SourceAccount

ConnectionStatus = Literal["PendingAuth", "Linked", "Unlinked", "Deauthorized"]
CONNECTION_STATUSES: tuple[ConnectionStatus, ...] = get_args(ConnectionStatus)
PENDING_AUTH, LINKED, UNLINKED, DEAUTHORIZED = CONNECTION_STATUSES

AccountStatus = Literal[
    "not_pushed", "pending", "connecting", "connected", "disconnected", "closed", "unknown"
]
ACCOUNT_STATUSES: tuple[AccountStatus, ...] = get_args(AccountStatus)
NOT_PUSHED, PENDING, CONNECTING, CONNECTED, DISCONNECTED, CLOSED, UNKNOWN = ACCOUNT_STATUSES

# Called with a customer's id in the transaction that may have changed their statuses, before
# it commits: the host app's events are stored with the change (`app.events.outbox.announce`,
# handed in by `app/services.py`).
Announce = Callable[[AsyncSession, str], Awaitable[object]]

# A connection in one of these can take accounts and give a fresh Link URL.
REUSABLE_CONNECTION_STATUSES = frozenset({PENDING_AUTH, LINKED})
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


def live_connection(feed: BankFeed | None) -> tuple[str, str] | None:
    """The company and connection changes go to, while the connection can still be used."""
    if feed is None or feed.company_id is None or feed.connection_id is None:
        return None
    if feed.connection_status in (UNLINKED, DEAUTHORIZED):
        return None
    return feed.company_id, feed.connection_id


def account_status(account: SourceAccount) -> str:
    if account.closed_at is not None:
        return CLOSED
    if account.pushed_at is None:
        return NOT_PUSHED
    return account.codat_status or UNKNOWN


def account_status_sql() -> ColumnElement[str]:
    return case(
        (SourceAccount.closed_at.is_not(None), CLOSED),
        (SourceAccount.pushed_at.is_(None), NOT_PUSHED),
        else_=func.coalesce(SourceAccount.codat_status, UNKNOWN),
    )


def account_waiting_sql() -> ColumnElement[bool]:
    """`account_status_sql()` is `not_pushed` or `pending`, in a form indexes can serve."""
    return and_(
        SourceAccount.closed_at.is_(None),
        or_(SourceAccount.pushed_at.is_(None), SourceAccount.codat_status == PENDING),
    )


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(ACCOUNT_STATUSES, 0)
    for status in statuses:
        counts[status if status in counts else UNKNOWN] += 1
    return counts


def customer_action_reasons(
    connection_id: str | None, connection_status: str | None, counts: Mapping[str, int]
) -> list[tuple[str, str]]:
    """Why the customer must click Connect, as (code, message); `needs_action_sql` in SQL."""
    if connection_id is None or connection_status is None:
        return [("no_connection", "The customer has not clicked Connect yet.")]
    if connection_status in ACTION_CONNECTION_STATUSES:
        return [_CONNECTION_REASONS[connection_status]]
    reasons = []
    if connection_status == LINKED:
        if counts.get(NOT_PUSHED):
            reasons.append(
                (
                    "accounts_not_pushed",
                    f"{counts[NOT_PUSHED]} account(s) are not in Codat yet: the customer must "
                    "click Connect, which adds them, and connect them in QuickBooks.",
                )
            )
        if counts.get(PENDING):
            reasons.append(
                (
                    "accounts_pending",
                    f"{counts[PENDING]} account(s) are pending: the customer must click Connect "
                    "and connect them in QuickBooks.",
                )
            )
    return reasons


def needs_action_sql(accounts_waiting: ColumnElement[bool]) -> ColumnElement[bool]:
    """`customer_action_reasons(...) != []` over a bank-feed row; `accounts_waiting`: some
    account of the customer is `not_pushed` or `pending`."""
    return or_(
        BankFeed.connection_id.is_(None),
        BankFeed.connection_status.is_(None),
        BankFeed.connection_status.in_(ACTION_CONNECTION_STATUSES),
        and_(BankFeed.connection_status == LINKED, accounts_waiting),
    )

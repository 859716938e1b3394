"""Read a customer's bank feed from Codat now and store what it says (ops refresh, reconciler)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds import repository as feeds
from app.bank_feeds.statuses import DEAUTHORIZED, Announce
from app.bank_feeds.sync import apply_codat_account, forget_push
from app.codat.client import CodatClient
from app.codat.errors import CodatNotFound
from app.db import utcnow


@dataclass
class RefreshResult:
    refreshed: bool
    connection_status: str | None
    changed_accounts: list[str]
    connection_missing: bool = False


async def refresh_bank_feed(
    session: AsyncSession, codat: CodatClient, customer_id: str, *, announce: Announce
) -> RefreshResult:
    """The connection and its source accounts, read in parallel, stored in `session` with
    the events they mean for the host app.

    The caller commits. A feed with no connection yet is left as it is.
    """
    feed = await feeds.get_bank_feed(session, customer_id)
    if feed is None or feed.company_id is None or feed.connection_id is None:
        return RefreshResult(False, feed.connection_status if feed else None, [])
    company_id, connection_id = feed.company_id, feed.connection_id
    connection_call = codat.get_connection(company_id, connection_id)
    accounts_call = codat.list_source_accounts(company_id, connection_id)
    connection, seen_accounts = await asyncio.gather(
        connection_call, accounts_call, return_exceptions=True
    )
    now = utcnow()
    if isinstance(connection, CodatNotFound):
        # The connection is gone from Codat: the next click starts a new one.
        feed.connection_status = DEAUTHORIZED
        feed.last_refreshed_at = now
        await announce(session, customer_id)
        return RefreshResult(True, feed.connection_status, [], connection_missing=True)
    if isinstance(connection, BaseException):
        raise connection
    if isinstance(seen_accounts, BaseException):
        raise seen_accounts
    feeds.set_connection_status(feed, connection.status, now)
    by_id = {a.id: a for a in seen_accounts}
    changed = []
    for account in await feeds.list_source_accounts(session, customer_id):
        seen = by_id.get(account.id)
        if seen is None:
            if account.is_pushed:  # Codat no longer has it: it must be pushed again
                forget_push(account)
                changed.append(account.id)
            continue
        if apply_codat_account(account, seen, now):
            changed.append(account.id)
    feed.last_refreshed_at = now
    await announce(session, customer_id)
    return RefreshResult(True, feed.connection_status, changed)

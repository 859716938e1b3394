"""A customer's Codat company deleted on Codat's side: forget it, so the next click starts anew.

Codat tells us with a `company.deleted` webhook, or a click finds out from a 404. Either way
the dead ids are forgotten (the connection history keeps them, marked `CompanyDeleted`) and the
next click creates a company, a connection and the source accounts again: the usual 3 calls.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.sync import forget_push
from app.models import BankFeed, SourceAccount

log = logging.getLogger("app.bank_feeds")

COMPANY_DELETED = "CompanyDeleted"  # the history status of connections that went with it


async def forget_company(session: AsyncSession, feed: BankFeed, at: datetime) -> list[str]:
    """Drop the feed's company and connection ids; every account must be pushed again.

    `feed.connections` must be loaded. Returns the ids of the accounts forgotten.
    """
    company_id = feed.company_id
    for entry in feed.connections:
        if entry.company_id == company_id:
            entry.status = COMPANY_DELETED
            entry.replaced_at = entry.replaced_at or at
    feed.company_id = None
    feed.connection_id = None
    feed.company_requested_at = None
    feed.connection_requested_at = None
    feed.company_request_key = None
    feed.connection_request_key = None
    feed.connection_status = None
    feed.connection_status_at = at
    feed.next_reconcile_at = None
    accounts = list(
        (
            await session.execute(
                select(SourceAccount).where(SourceAccount.customer_id == feed.customer_id)
            )
        ).scalars()
    )
    for account in accounts:
        forget_push(account)
        account.sync_error = None
    log.warning(
        "Codat company %r of customer %r was deleted in Codat; the next click starts anew",
        company_id,
        feed.customer_id,
    )
    return [a.id for a in accounts]

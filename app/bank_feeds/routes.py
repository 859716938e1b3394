"""`/ops/`: a customer's bank feed (from Codat on demand), a push of pending changes, and every
customer's bank feed by page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from app.bank_feeds.listing import MAX_PAGE, BankFeedFilters, decode_cursor
from app.bank_feeds.schemas import BankFeedPage, BankFeedStatus, ConnectionStatusFilter, SyncOut
from app.bank_feeds.service import BankFeedService
from app.deps import CustomerId, ops_router, provided
from app.errors import CODAT, CONFLICT, NOT_FOUND, OPS_RESPONSES

router = ops_router("ops", responses=OPS_RESPONSES)
BankFeedsDep = Annotated[BankFeedService, provided(BankFeedService)]
# Read as the customer id the page starts after.
Cursor = Annotated[str | None, Query(max_length=200), AfterValidator(decode_cursor)]


@router.get(
    "/customers/{customer_id}/bank-feed",
    response_model=BankFeedStatus,
    responses=NOT_FOUND | CODAT,
)
async def get_bank_feed(
    customer_id: CustomerId,
    bank_feeds: BankFeedsDep,
    refresh: Annotated[bool, Query(description="Read Codat now and store what it says.")] = False,
) -> BankFeedStatus:
    """The customer's bank feed from our database, or from Codat now with `refresh=true`."""
    return await bank_feeds.status(customer_id, refresh=refresh)


@router.post(
    "/customers/{customer_id}/bank-feed/sync",
    response_model=SyncOut,
    responses=NOT_FOUND | CONFLICT | CODAT,
)
async def sync_bank_feed(customer_id: CustomerId, bank_feeds: BankFeedsDep) -> SyncOut:
    """Push pending local changes to Codat now: missing accounts, renames, balances."""
    return await bank_feeds.sync(customer_id)


@router.get("/bank-feeds", response_model=BankFeedPage)
async def list_bank_feeds(
    bank_feeds: BankFeedsDep,
    connection_status: ConnectionStatusFilter | None = None,
    has_disconnected_accounts: bool | None = None,
    needs_customer_action: bool | None = None,
    updated_since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Cursor = None,
) -> BankFeedPage:
    """Every customer's bank feed, by customer id, from our database only."""
    filters = BankFeedFilters(
        connection_status, has_disconnected_accounts, needs_customer_action, updated_since
    )
    return await bank_feeds.page(filters, limit=limit, after=cursor)

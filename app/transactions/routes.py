"""`/ops/`: the bank posts cleared transactions; operations list transactions and pushes, retry
a failed push, requeue held or rejected transactions, release a held one with a later date."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Path, Query, Request

from app.deps import AccountId, CustomerId, ops_router, provided
from app.errors import CONFLICT, NOT_FOUND, OPS_RESPONSES, ErrorOut, Unprocessable
from app.models import MAX_ROW_ID
from app.transactions.ingest import parse_body, read_items
from app.transactions.listing import MAX_PAGE, PushFilters
from app.transactions.rules import TransactionStatus
from app.transactions.schemas import (
    MAX_TRANSACTIONS_PER_REQUEST,
    IngestOut,
    PushOut,
    PushPage,
    PushStatusOut,
    ReleaseIn,
    RequeueIn,
    RequeueOut,
    RetryIn,
    TransactionIn,
    TransactionOut,
    TransactionPage,
)
from app.transactions.service import TransactionService

router = ops_router("transactions", responses=OPS_RESPONSES)
TransactionsDep = Annotated[TransactionService, provided(TransactionService)]
# A row id: the columns are 32-bit, so at most 9 digits (anything longer names no row).
Cursor = Annotated[str | None, Query(max_length=9, pattern=r"^[0-9]{1,9}$")]
TransactionId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Bad items, each named by its index and field; nothing was stored.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
INGEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["transactions"],
                "additionalProperties": False,
                "properties": {
                    "transactions": {
                        "type": "array",
                        "maxItems": MAX_TRANSACTIONS_PER_REQUEST,
                        "items": TransactionIn.model_json_schema(),
                    }
                },
            }
        }
    },
}


@router.post(
    "/customers/{customer_id}/accounts/{account_id}/transactions",
    response_model=IngestOut,
    responses=NOT_FOUND | PROBLEMS | {409: {"model": ErrorOut, "description": "Ids conflict."}},
    openapi_extra={"requestBody": INGEST_BODY},
)
async def post_transactions(
    customer_id: CustomerId, account_id: AccountId, request: Request, service: TransactionsDep
) -> IngestOut:
    """Cleared transactions from the bank's ledger, up to 5,000. Idempotent per `id`: the same
    content again is a duplicate, other content a 409 naming the ids. Amounts and balances are
    read as exact decimals."""
    items = read_items(parse_body(await request.body()), service.today())
    return await service.ingest(customer_id, account_id, items)


@router.get(
    "/customers/{customer_id}/accounts/{account_id}/transactions",
    response_model=TransactionPage,
    responses=NOT_FOUND,
)
async def list_transactions(
    customer_id: CustomerId,
    account_id: AccountId,
    service: TransactionsDep,
    status: TransactionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Cursor = None,
) -> TransactionPage:
    """The account's transactions, newest first, with where each is on its way to QuickBooks."""
    return await service.transactions(
        customer_id,
        account_id,
        status=status,
        limit=limit,
        after=int(cursor) if cursor else None,
    )


@router.post(
    "/customers/{customer_id}/accounts/{account_id}/transactions:requeue",
    response_model=RequeueOut,
    responses=NOT_FOUND | CONFLICT,
)
async def requeue_transactions(
    customer_id: CustomerId,
    account_id: AccountId,
    body: RequeueIn,
    service: TransactionsDep,
) -> RequeueOut:
    """Held or rejected transactions back to pending, after a fix; QuickBooks' rules apply
    again."""
    return await service.requeue(customer_id, account_id, body.ids)


@router.post(
    "/customers/{customer_id}/accounts/{account_id}/transactions/{transaction_id}:release",
    response_model=TransactionOut,
    responses=NOT_FOUND | CONFLICT | PROBLEMS,
)
async def release_transaction(
    customer_id: CustomerId,
    account_id: AccountId,
    transaction_id: TransactionId,
    body: ReleaseIn,
    service: TransactionsDep,
) -> TransactionOut:
    """Send a held transaction with a later date, an explicit choice; the reason is kept."""
    return await service.release(customer_id, account_id, transaction_id, body.date, body.reason)


@router.get("/pushes", response_model=PushPage)
async def list_pushes(
    service: TransactionsDep,
    status: PushStatusOut | None = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Cursor = None,
) -> PushPage:
    """Every push to Codat, newest first."""
    if since is not None and since.tzinfo is None:
        raise Unprocessable(
            [{"loc": ["query", "since"], "msg": "needs a timezone", "type": "value_error",
              "field": "since"}]
        )  # fmt: skip
    filters = PushFilters(status=status, customer_id=customer_id, since=since)
    return await service.pushes(filters, limit=limit, after=int(cursor) if cursor else None)


@router.post("/pushes/{push_id}:retry", response_model=PushOut, responses=NOT_FOUND | CONFLICT)
async def retry_push(
    push_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    service: TransactionsDep,
    body: Annotated[RetryIn | None, Body()] = None,
) -> PushOut:
    """Send a failed push's transactions again (a TimedOut one only with `not_landed`)."""
    return await service.retry(push_id, not_landed=body.not_landed if body else False)


@router.post("/pushes/{push_id}:landed", response_model=PushOut, responses=NOT_FOUND | CONFLICT)
async def push_landed(
    push_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], service: TransactionsDep
) -> PushOut:
    """A TimedOut push whose transactions you found in QuickBooks' For review list: settled as
    pushed, never sent again."""
    return await service.confirm_landed(push_id)

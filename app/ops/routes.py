"""`/ops/`: customers, their source accounts, bank-feed status and bulk import (bearer token)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.customers.repository import list_source_accounts
from app.deps import CodatDep, OpsAuth, SessionDep, SettingsDep
from app.ops import importer, service, status
from app.ops.errors import OpsError
from app.ops.schemas import (
    ID_PATTERN,
    AccountDeleteOut,
    AccountIn,
    AccountOut,
    AccountWriteOut,
    BankFeedPage,
    BankFeedStatus,
    ConnectionStatusFilter,
    CustomerIn,
    CustomerOut,
    ErrorOut,
    ImportErrorOut,
    ImportOut,
    OffboardOut,
    SyncOut,
)
from app.ops.views import account_out
from app.settings import Settings

router = APIRouter(
    prefix="/ops",
    tags=["ops"],
    dependencies=[OpsAuth],
    responses={
        400: {"model": ErrorOut, "description": "The body could not be read as JSON."},
        401: {"model": ErrorOut, "description": "Missing or wrong ops bearer token."},
    },
)

CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="The host app's customer id.")]
AccountId = Annotated[str, Path(pattern=ID_PATTERN, description="Our id of the bank account.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Not found."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Codat cannot make this change."}
}
_CODAT: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorOut, "description": "Codat refused the call; nothing was changed here."},
    503: {
        "model": ErrorOut,
        "description": "Codat did not answer in time; nothing was changed here. Try again.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
}


@contextlib.contextmanager
def _ops_errors() -> Iterator[None]:
    try:
        yield
    except OpsError as exc:
        raise HTTPException(exc.status_code, exc.detail, headers=exc.headers) from exc


def _budget(settings: Settings) -> float:
    return settings.connect_retry_budget_seconds


# --- customers --------------------------------------------------------------------------


@router.put(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    responses={201: {"model": CustomerOut, "description": "Created."}},
)
async def put_customer(
    customer_id: CustomerId, body: CustomerIn, session: SessionDep, response: Response
) -> CustomerOut:
    """Create (201) or update (200) a customer. Any real country is stored; US and CA connect."""
    created = await service.put_customer(session, customer_id, body)
    response.status_code = 201 if created else 200
    return await service.customer_out(session, customer_id)


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=_NOT_FOUND)
async def get_customer(customer_id: CustomerId, session: SessionDep) -> CustomerOut:
    """The customer, with counts of their accounts and a summary of their bank feed."""
    with _ops_errors():
        return await service.customer_out(session, customer_id)


@router.delete(
    "/customers/{customer_id}", response_model=OffboardOut, responses=_NOT_FOUND | _CODAT
)
async def offboard_customer(
    customer_id: CustomerId,
    session: SessionDep,
    codat: CodatDep,
    settings: SettingsDep,
    purge: Annotated[bool, Query(description="Delete the Codat company and our rows.")] = False,
) -> OffboardOut:
    """Offboard: unlink the customer's QuickBooks connection, keeping our data; or purge all."""
    with _ops_errors():
        result = await service.offboard_customer(
            session, codat, _budget(settings), customer_id, purge=purge
        )
    await session.commit()
    return result


# --- source accounts --------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/accounts", response_model=list[AccountOut], responses=_NOT_FOUND
)
async def list_accounts(customer_id: CustomerId, session: SessionDep) -> list[AccountOut]:
    with _ops_errors():
        await service.require_customer(session, customer_id)
    return [account_out(a) for a in await list_source_accounts(session, customer_id)]


@router.get(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountOut,
    responses=_NOT_FOUND,
)
async def get_account(
    customer_id: CustomerId, account_id: AccountId, session: SessionDep
) -> AccountOut:
    with _ops_errors():
        return account_out(await service.require_account(session, customer_id, account_id))


@router.put(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountWriteOut,
    responses={201: {"model": AccountWriteOut, "description": "Created."}}
    | _NOT_FOUND
    | _CONFLICT
    | _CODAT,
)
async def put_account(
    customer_id: CustomerId,
    account_id: AccountId,
    body: AccountIn,
    session: SessionDep,
    codat: CodatDep,
    settings: SettingsDep,
    response: Response,
) -> AccountWriteOut:
    """Create or update an account. With a bank feed, Codat gets the change first:
    a new account is added, a rename (and a balance, until connected) is sent; a change
    Codat cannot make is refused with 409. If Codat fails, nothing changes here."""
    with _ops_errors():
        write = await service.put_account(
            session, codat, _budget(settings), customer_id, account_id, body
        )
    await session.commit()
    response.status_code = 201 if write.created else 200
    return AccountWriteOut(**account_out(write.account).model_dump(), codat=write.codat)


@router.delete(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountDeleteOut,
    responses=_NOT_FOUND | _CODAT,
)
async def delete_account(
    customer_id: CustomerId,
    account_id: AccountId,
    session: SessionDep,
    codat: CodatDep,
    settings: SettingsDep,
) -> AccountDeleteOut:
    """Delete the account, from the bank feed in Codat first."""
    with _ops_errors():
        outcome = await service.delete_account(
            session, codat, _budget(settings), customer_id, account_id
        )
    await session.commit()
    return AccountDeleteOut(customer_id=customer_id, account_id=account_id, codat=outcome)


@router.post(
    "/customers/{customer_id}/accounts/{account_id}:close",
    response_model=AccountOut,
    responses=_NOT_FOUND | _CONFLICT | _CODAT,
)
async def close_account(
    customer_id: CustomerId,
    account_id: AccountId,
    session: SessionDep,
    codat: CodatDep,
    settings: SettingsDep,
) -> AccountOut:
    """Close the account in the bank feed: Codat marks it disconnected (the only status change
    Codat allows), and it shows as closed. Closing a closed account changes nothing."""
    with _ops_errors():
        account = await service.close_account(
            session, codat, _budget(settings), customer_id, account_id
        )
    await session.commit()
    return account_out(account)


# --- bank feeds -------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/bank-feed",
    response_model=BankFeedStatus,
    responses=_NOT_FOUND | _CODAT,
)
async def get_bank_feed(
    customer_id: CustomerId,
    session: SessionDep,
    codat: CodatDep,
    settings: SettingsDep,
    refresh: Annotated[bool, Query(description="Read Codat now and store what it says.")] = False,
) -> BankFeedStatus:
    """The customer's bank feed from our database, or from Codat now with `refresh=true`."""
    with _ops_errors():
        refreshed = False
        if refresh:
            refreshed = await status.refresh(session, codat, _budget(settings), customer_id)
            await session.commit()
        return await status.bank_feed_status(session, customer_id, refreshed=refreshed)


@router.post(
    "/customers/{customer_id}/bank-feed/sync",
    response_model=SyncOut,
    responses=_NOT_FOUND | _CONFLICT | _CODAT,
)
async def sync_bank_feed(
    customer_id: CustomerId, session: SessionDep, codat: CodatDep, settings: SettingsDep
) -> SyncOut:
    """Push pending local changes to Codat now: missing accounts, renames, balances."""
    try:
        with _ops_errors():
            return await status.sync(session, codat, _budget(settings), customer_id)
    finally:
        await session.commit()  # keep whatever Codat confirmed before a failure


@router.get("/bank-feeds", response_model=BankFeedPage)
async def list_bank_feeds(
    session: SessionDep,
    connection_status: ConnectionStatusFilter | None = None,
    has_disconnected_accounts: bool | None = None,
    needs_customer_action: bool | None = None,
    updated_since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=status.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> BankFeedPage:
    """Every customer's bank feed, by customer id, from our database only."""
    filters = status.BankFeedFilters(
        connection_status, has_disconnected_accounts, needs_customer_action, updated_since
    )
    try:
        return await status.list_bank_feeds(session, filters, limit=limit, cursor=cursor)
    except status.InvalidCursor as exc:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": f"Value error, {exc}", "type": "value_error"}]
        ) from exc


# --- import -----------------------------------------------------------------------------

_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}},
        },
        "text/csv": {"schema": {"type": "string"}},
    },
    "description": "Rows of customer and account fields; columns: " + ", ".join(importer.COLUMNS),
}


@router.post(
    "/customers:import",
    response_model=ImportOut,
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses={
        415: {"model": ErrorOut, "description": "Neither JSON nor CSV."},
        422: {"model": ImportErrorOut, "description": "Bad rows, each with line and field."},
    },
)
async def import_customers(request: Request, session: SessionDep) -> Any:
    """Upsert customers and accounts in bulk: every row is checked first, and a file with any
    bad row writes nothing. Codat is updated on the customer's next connect or sync."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    formats = {"application/json": "json", "text/csv": "csv", "application/csv": "csv"}
    if media_type not in formats:
        raise HTTPException(415, "Send the rows as application/json or text/csv.")
    try:
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise importer.ImportRejected([importer.RowError(1, "file", "is not UTF-8")]) from None
        plan = importer.validate(importer.parse(text, formats[media_type]))  # type: ignore[arg-type]
        return await importer.write(session, plan)
    except importer.ImportRejected as exc:
        return JSONResponse({"detail": [e.as_json() for e in exc.errors]}, status_code=422)

"""`/ops/`: customers, their source accounts, and bulk import (bearer token)."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import Query, Request, Response

from app.bank_feeds.schemas import AccountOut
from app.customers import importer
from app.customers.schemas import (
    COLUMNS,
    AccountDeleteOut,
    AccountIn,
    AccountWriteOut,
    CustomerIn,
    CustomerOut,
    ImportErrorOut,
    ImportOut,
    OffboardOut,
)
from app.customers.service import CustomerService
from app.deps import AccountId, CustomerId, SettingsDep, ops_router, provided
from app.errors import CODAT, CONFLICT, NOT_FOUND, OPS_RESPONSES, ErrorOut, UnsupportedMediaType

router = ops_router("ops", responses=OPS_RESPONSES)
CustomersDep = Annotated[CustomerService, provided(CustomerService)]


# --- customers --------------------------------------------------------------------------


@router.put(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    responses={201: {"model": CustomerOut, "description": "Created."}},
)
async def put_customer(
    customer_id: CustomerId, body: CustomerIn, customers: CustomersDep, response: Response
) -> CustomerOut:
    """Create (201) or update (200) a customer. Any real country is stored; US and CA connect."""
    customer, created = await customers.put_customer(customer_id, body)
    response.status_code = 201 if created else 200
    return customer


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=NOT_FOUND)
async def get_customer(customer_id: CustomerId, customers: CustomersDep) -> CustomerOut:
    """The customer, with counts of their accounts and a summary of their bank feed."""
    return await customers.get_customer(customer_id)


@router.delete("/customers/{customer_id}", response_model=OffboardOut, responses=NOT_FOUND | CODAT)
async def offboard_customer(
    customer_id: CustomerId,
    customers: CustomersDep,
    purge: Annotated[bool, Query(description="Delete the Codat company and our rows.")] = False,
) -> OffboardOut:
    """Offboard: unlink the customer's QuickBooks connection, keeping our data; or purge all."""
    return await customers.offboard(customer_id, purge=purge)


# --- source accounts --------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/accounts", response_model=list[AccountOut], responses=NOT_FOUND
)
async def list_accounts(customer_id: CustomerId, customers: CustomersDep) -> list[AccountOut]:
    return await customers.list_accounts(customer_id)


@router.get(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountOut,
    responses=NOT_FOUND,
)
async def get_account(
    customer_id: CustomerId, account_id: AccountId, customers: CustomersDep
) -> AccountOut:
    return await customers.get_account(customer_id, account_id)


@router.put(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountWriteOut,
    responses={201: {"model": AccountWriteOut, "description": "Created."}}
    | NOT_FOUND
    | CONFLICT
    | CODAT,
)
async def put_account(
    customer_id: CustomerId,
    account_id: AccountId,
    body: AccountIn,
    customers: CustomersDep,
    response: Response,
) -> AccountWriteOut:
    """Create or update an account. With a bank feed, Codat gets the change first:
    a new account is added, a rename (and a balance, until connected) is sent; a change
    Codat cannot make is refused with 409. If Codat fails, nothing changes here."""
    account, created = await customers.put_account(customer_id, account_id, body)
    response.status_code = 201 if created else 200
    return account


@router.delete(
    "/customers/{customer_id}/accounts/{account_id}",
    response_model=AccountDeleteOut,
    responses=NOT_FOUND | CODAT,
)
async def delete_account(
    customer_id: CustomerId, account_id: AccountId, customers: CustomersDep
) -> AccountDeleteOut:
    """Delete the account, from the bank feed in Codat first."""
    return await customers.delete_account(customer_id, account_id)


@router.post(
    "/customers/{customer_id}/accounts/{account_id}:close",
    response_model=AccountOut,
    responses=NOT_FOUND | CONFLICT | CODAT,
)
async def close_account(
    customer_id: CustomerId, account_id: AccountId, customers: CustomersDep
) -> AccountOut:
    """Close the account in the bank feed: Codat marks it disconnected (the only status change
    Codat allows), and it shows as closed. Closing a closed account changes nothing."""
    return await customers.close_account(customer_id, account_id)


# --- import -----------------------------------------------------------------------------

_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}},
        },
        "text/csv": {"schema": {"type": "string"}},
    },
    "description": "Rows of customer and account fields; columns: " + ", ".join(COLUMNS),
}
SPOOL_BYTES = 1_000_000
_FORMATS: dict[str, importer.Format] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
}


@router.post(
    "/customers:import",
    response_model=ImportOut,
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses={
        413: {"model": ErrorOut, "description": "More rows than one request takes."},
        415: {"model": ErrorOut, "description": "Neither JSON nor CSV."},
        422: {"model": ImportErrorOut, "description": "Bad rows, each with line and field."},
    },
)
async def import_customers(request: Request, customers: CustomersDep, settings: SettingsDep) -> Any:
    """Upsert customers and accounts in bulk: every row is checked first, and a file with any
    bad row writes nothing; the answer lists the first 100 errors and `error_count`. At most
    IMPORT_MAX_ROWS rows a request (413 beyond): load larger books with `bankfeeds import`.
    Codat is updated on the customer's next connect or sync."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in _FORMATS:
        raise UnsupportedMediaType("Send the rows as application/json or text/csv.")
    # The body goes to a temporary file as it arrives (to disk past SPOOL_BYTES), and is
    # read from there a row at a time.
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        return await customers.import_rows(
            spool,  # type: ignore[arg-type]
            _FORMATS[media_type],
            max_rows=settings.import_max_rows,
        )

"""Codat's source account (bank feed account) and credentials endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.sandbox.emulator import sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.state import Connection
from app.sandbox.validation import (
    parse_json,
    source_account_draft,
    source_account_drafts,
    source_account_update,
)
from app.sandbox.wire import Json, source_account_v1_json, source_account_v2_json

router = APIRouter()

ACCOUNTS = "/companies/{companyId}/connections/{connectionId}/connectionInfo/bankFeedAccounts"


def _connection(request: Request) -> Connection:
    return sandbox_of(request).store.connection(
        request.path_params["companyId"], request.path_params["connectionId"]
    )


@router.post(ACCOUNTS)
async def create_source_account(request: Request) -> JSONResponse:
    connection = _connection(request)
    draft = source_account_draft(parse_json(await request.body()))
    account = sandbox_of(request).bank_feeds.add_source_account(connection, draft)
    return JSONResponse(source_account_v2_json(account))


@router.post(ACCOUNTS + "/batch")
async def create_source_accounts(request: Request) -> JSONResponse:
    """201 when every account is created, 409 when none is, 207 for a mix."""
    connection = _connection(request)
    drafts = source_account_drafts(parse_json(await request.body()))
    bank_feeds = sandbox_of(request).bank_feeds
    results: list[Json] = []
    created = 0
    for draft in drafts:
        try:
            account = bank_feeds.add_source_account(connection, draft)
        except CodatError as exc:
            failure = {"statusCode": exc.status_code, "error": exc.message}
            results.append({"sourceAccountId": draft.id, "result": failure})
            continue
        created += 1
        result = {"statusCode": 201, "error": None, "account": source_account_v2_json(account)}
        results.append({"sourceAccountId": draft.id, "result": result})
    status = 201 if created == len(results) else 409 if created == 0 else 207
    return JSONResponse(results, status_code=status)


@router.get(ACCOUNTS)
async def list_source_accounts(request: Request) -> JSONResponse:
    connection = _connection(request)
    return JSONResponse([source_account_v2_json(a) for a in connection.source_accounts.values()])


@router.post(ACCOUNTS + "/credentials")
async def generate_credentials(request: Request) -> JSONResponse:
    connection = _connection(request)
    raw = await request.body()
    if raw.strip():
        parse_json(raw)  # the spec wants a JSON body but gives it no schema
    credential = sandbox_of(request).bank_feeds.issue_credentials(connection)
    return JSONResponse({"username": credential.username, "password": credential.password})


@router.delete(ACCOUNTS + "/credentials")
async def revoke_credentials(request: Request) -> Response:
    sandbox_of(request).bank_feeds.revoke_credentials(_connection(request))
    return Response(status_code=204)


@router.patch(ACCOUNTS + "/{accountId}")
async def update_source_account(request: Request) -> JSONResponse:
    connection = _connection(request)
    bank_feeds = sandbox_of(request).bank_feeds
    account_id = request.path_params["accountId"]
    bank_feeds.source_account(connection, account_id)
    update = source_account_update(parse_json(await request.body()))
    account = bank_feeds.update_source_account(connection, account_id, update)
    return JSONResponse(source_account_v1_json(account))


@router.delete(ACCOUNTS + "/{accountId}")
async def delete_source_account(request: Request) -> Response:
    sandbox_of(request).bank_feeds.delete_source_account(
        _connection(request), request.path_params["accountId"]
    )
    return Response(status_code=204)

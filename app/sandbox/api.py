"""Codat's companies, connections and integrations endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.sandbox.emulator import sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.paging import paged, parse_tags_filter
from app.sandbox.state import INTEGRATIONS, Company, Connection, ConnectionStatus
from app.sandbox.validation import (
    company_request,
    connection_status_update,
    parse_json,
    platform_key,
)
from app.sandbox.wire import format_datetime

router = APIRouter()

COMPANY = "/companies/{companyId}"
CONNECTION = COMPANY + "/connections/{connectionId}"

COMPANY_ORDER = {
    "id": lambda c: c.id,
    "name": lambda c: c.name.lower(),
    "description": lambda c: c.description.lower(),
    "created": lambda c: format_datetime(c.created) + c.id,
}
CONNECTION_ORDER = {
    "id": lambda c: c.id,
    "created": lambda c: format_datetime(c.created) + c.id,
    "status": lambda c: c.status.value,
    "platformName": lambda c: c.integration.name,
    "integrationKey": lambda c: c.integration.key,
}


@router.post("/companies")
async def create_company(request: Request) -> JSONResponse:
    sandbox = sandbox_of(request)
    body = company_request(parse_json(await request.body()))
    company = sandbox.store.create_company(body.name, body.description, body.tags)
    return JSONResponse(sandbox.store.company_json(company))


@router.get("/companies")
async def list_companies(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    conditions = parse_tags_filter(request.query_params.get("tags"))
    companies: list[Company] = [
        c for c in store.companies.values() if all(cond.holds_for(c.tags) for cond in conditions)
    ]
    page = paged(companies, request.query_params, "/companies", store.company_json, COMPANY_ORDER)
    return JSONResponse(page)


@router.get(COMPANY)
async def get_company(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    company = store.company(request.path_params["companyId"])
    return JSONResponse(store.company_json(company))


@router.delete(COMPANY)
async def delete_company(request: Request) -> Response:
    sandbox_of(request).store.delete_company(request.path_params["companyId"])
    return Response(status_code=204)


@router.post(COMPANY + "/connections")
async def create_connection(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    company = store.company(request.path_params["companyId"])
    key = platform_key(parse_json(await request.body()))
    connection = store.create_connection(company.id, key)
    return JSONResponse(store.connection_json(connection))


@router.get(COMPANY + "/connections")
async def list_connections(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    company = store.company(request.path_params["companyId"])
    connections: list[Connection] = list(company.connections.values())
    path = f"/companies/{company.id}/connections"
    page = paged(connections, request.query_params, path, store.connection_json, CONNECTION_ORDER)
    return JSONResponse(page)


@router.get(CONNECTION)
async def get_connection(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    connection = store.connection(
        request.path_params["companyId"], request.path_params["connectionId"]
    )
    return JSONResponse(store.connection_json(connection))


@router.patch(CONNECTION)
async def unlink_connection(request: Request) -> JSONResponse:
    store = sandbox_of(request).store
    company_id, connection_id = (
        request.path_params["companyId"],
        request.path_params["connectionId"],
    )
    connection = store.connection(company_id, connection_id)
    status = connection_status_update(parse_json(await request.body()))
    if status is ConnectionStatus.UNLINKED:
        connection = store.unlink_connection(company_id, connection_id)
    elif status is not None and status is not connection.status:
        raise CodatError(400, "A connection's status can only be set to Unlinked.")
    return JSONResponse(store.connection_json(connection))


@router.delete(CONNECTION)
async def delete_connection(request: Request) -> Response:
    sandbox_of(request).store.delete_connection(
        request.path_params["companyId"], request.path_params["connectionId"]
    )
    return Response(status_code=200)


@router.get("/integrations/{platformKey}")
async def get_integration(request: Request) -> JSONResponse:
    key = request.path_params["platformKey"]
    integration = INTEGRATIONS.get(key)
    if integration is None:
        raise CodatError(404, f"Integration with key {key} was not found.")
    base_url = sandbox_of(request).config.base_url
    return JSONResponse(
        {
            "key": integration.key,
            "logoUrl": f"{base_url}/logos/{integration.key}.svg",
            "name": integration.name,
            "enabled": True,
            "sourceId": integration.source_id,
            "sourceType": integration.source_type,
            "integrationId": integration.integration_id,
            "isOfflineConnector": False,
            "isBeta": False,
            "datatypeFeatures": [],
        }
    )

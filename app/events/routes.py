"""Connection status for the host app (by connect token, or ops token), its event endpoints and
the deliveries made to them. Routes never commit: the service does, before the answer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from app.connect.tokens import InvalidConnectToken, verify_connect_token
from app.deps import OpsAuth, SessionDep, SettingsDep
from app.events import service
from app.events.catalog import EventType
from app.events.schemas import (
    DeliveryList,
    DeliveryOut,
    DeliveryStatus,
    EndpointIn,
    EndpointList,
    EndpointOut,
    SecretOut,
)
from app.events.status import ConnectionStatus
from app.ops.errors import OpsError
from app.ops.schemas import ID_PATTERN, ErrorOut

log = logging.getLogger("app.events")

router = APIRouter(tags=["host app"])
ops_router = APIRouter(
    prefix="/ops",
    tags=["ops", "events"],
    dependencies=[OpsAuth],
    responses={
        400: {"model": ErrorOut, "description": "The body could not be read as JSON."},
        401: {"model": ErrorOut, "description": "Missing or wrong ops bearer token."},
    },
)

EndpointName = Annotated[str, Path(pattern=ID_PATTERN, description="Your name for the endpoint.")]
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="The host app's customer id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Not found."}
}
STATUS_HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


@contextlib.contextmanager
def _answer_errors() -> Iterator[None]:
    try:
        yield
    except OpsError as exc:
        raise HTTPException(exc.status_code, exc.detail, headers=exc.headers) from exc


# --- connection status ----------------------------------------------------------------------


@router.get(
    "/connect-bank-feeds/status",
    response_model=ConnectionStatus,
    responses={
        401: {"model": ErrorOut, "description": "The connect token is not valid."},
        404: {"model": ErrorOut, "description": "No such customer."},
    },
)
async def status_by_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    """The customer's connection status, for the host app's page: the same signed connect
    token as the button, which this call does not use up (its `jti` stays unspent)."""
    assert settings.connect_token_secret is not None
    try:
        claims = verify_connect_token(settings.connect_token_secret.get_secret_value(), token)
    except InvalidConnectToken as exc:
        log.info("status token refused: %s", exc)
        return JSONResponse({"detail": "The token is not valid."}, 401, headers=STATUS_HEADERS)
    try:
        status = await service.connection_status(session, claims.customer_id)
    except OpsError as exc:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=STATUS_HEADERS)
    return JSONResponse(status.model_dump(mode="json"), headers=STATUS_HEADERS)


@ops_router.get(
    "/customers/{customer_id}/connection-status",
    response_model=ConnectionStatus,
    responses=_NOT_FOUND,
)
async def status_by_ops_token(customer_id: CustomerId, session: SessionDep) -> ConnectionStatus:
    """The customer's connection status, as `GET /connect-bank-feeds/status` answers it."""
    with _answer_errors():
        return await service.connection_status(session, customer_id)


# --- endpoints ------------------------------------------------------------------------------


@ops_router.put(
    "/event-endpoints/{name}",
    response_model=EndpointOut,
    responses={201: {"model": EndpointOut, "description": "Created; the answer has the secret."}},
)
async def put_endpoint(
    name: EndpointName, body: EndpointIn, session: SessionDep, response: Response
) -> EndpointOut:
    """Create (201, with its `whsec_` signing secret, shown this once) or update (200) an
    endpoint: its URL and the event types it receives."""
    endpoint, created = await service.put_endpoint(session, name, body)
    response.status_code = 201 if created else 200
    return endpoint


@ops_router.get("/event-endpoints", response_model=EndpointList)
async def list_endpoints(session: SessionDep) -> EndpointList:
    """Every endpoint, without secrets."""
    return await service.list_endpoints(session)


@ops_router.get("/event-endpoints/{name}", response_model=EndpointOut, responses=_NOT_FOUND)
async def get_endpoint(name: EndpointName, session: SessionDep) -> EndpointOut:
    with _answer_errors():
        return await service.get_endpoint(session, name)


@ops_router.delete("/event-endpoints/{name}", status_code=204, responses=_NOT_FOUND)
async def delete_endpoint(name: EndpointName, session: SessionDep) -> Response:
    """Delete the endpoint; deliveries still queued for it are dropped."""
    with _answer_errors():
        await service.delete_endpoint(session, name)
    return Response(status_code=204)


@ops_router.post(
    "/event-endpoints/{name}/rotate-secret", response_model=SecretOut, responses=_NOT_FOUND
)
async def rotate_secret(name: EndpointName, session: SessionDep) -> SecretOut:
    """A new signing secret; for 24 hours events are signed with both the old and the new."""
    with _answer_errors():
        return await service.rotate_secret(session, name)


# --- deliveries -----------------------------------------------------------------------------


@ops_router.get("/event-deliveries", response_model=DeliveryList)
async def list_deliveries(
    session: SessionDep,
    status: DeliveryStatus | None = None,
    endpoint: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    event_type: EventType | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """Deliveries of events to endpoints, newest first; `status=failed` lists those given up."""
    return await service.list_deliveries(
        session,
        status=status,
        endpoint_name=endpoint,
        customer_id=customer_id,
        event_type=event_type,
        limit=limit,
    )


@ops_router.post(
    "/event-deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=202,
    responses=_NOT_FOUND | {409: {"model": ErrorOut, "description": "Being attempted right now."}},
)
async def redeliver(
    delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep
) -> DeliveryOut:
    """Send the event to the endpoint again now, with a fresh 24 hours of retries."""
    with _answer_errors():
        return await service.redeliver(session, delivery_id)


router.include_router(ops_router)  # one router for app/main.py to include

"""`/ops/`: the host app's event endpoints, the deliveries made to them, and a customer's
connection status for the host app's back end. (Its page asks `GET /connect-bank-feeds/status`
with the button's token: `app/connect/routes.py`.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response

from app.deps import CustomerId, ops_router, provided
from app.errors import NOT_FOUND, OPS_RESPONSES, ErrorOut
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
from app.events.service import EventService
from app.events.status import ConnectionStatus
from app.models import ID_PATTERN, MAX_ROW_ID

router = ops_router("events", responses=OPS_RESPONSES)
EventsDep = Annotated[EventService, provided(EventService)]
EndpointName = Annotated[str, Path(pattern=ID_PATTERN, description="Your name for the endpoint.")]


@router.get(
    "/customers/{customer_id}/connection-status",
    response_model=ConnectionStatus,
    responses=NOT_FOUND,
)
async def connection_status(customer_id: CustomerId, events: EventsDep) -> ConnectionStatus:
    """The customer's connection status, as `GET /connect-bank-feeds/status` answers it."""
    return await events.connection_status(customer_id)


# --- endpoints ------------------------------------------------------------------------------


@router.put(
    "/event-endpoints/{name}",
    response_model=EndpointOut,
    responses={201: {"model": EndpointOut, "description": "Created; the answer has the secret."}},
)
async def put_endpoint(
    name: EndpointName, body: EndpointIn, events: EventsDep, response: Response
) -> EndpointOut:
    """Create (201, with its `whsec_` signing secret, shown this once) or update (200) an
    endpoint: its URL and the event types it receives."""
    endpoint, created = await events.put_endpoint(name, body)
    response.status_code = 201 if created else 200
    return endpoint


@router.get("/event-endpoints", response_model=EndpointList)
async def list_endpoints(events: EventsDep) -> EndpointList:
    """Every endpoint, without secrets."""
    return await events.list_endpoints()


@router.get("/event-endpoints/{name}", response_model=EndpointOut, responses=NOT_FOUND)
async def get_endpoint(name: EndpointName, events: EventsDep) -> EndpointOut:
    return await events.get_endpoint(name)


@router.delete("/event-endpoints/{name}", status_code=204, responses=NOT_FOUND)
async def delete_endpoint(name: EndpointName, events: EventsDep) -> Response:
    """Delete the endpoint; deliveries still queued for it are dropped."""
    await events.delete_endpoint(name)
    return Response(status_code=204)


@router.post("/event-endpoints/{name}/rotate-secret", response_model=SecretOut, responses=NOT_FOUND)
async def rotate_secret(name: EndpointName, events: EventsDep) -> SecretOut:
    """A new signing secret; for 24 hours events are signed with both the old and the new."""
    return await events.rotate_secret(name)


# --- deliveries -----------------------------------------------------------------------------


@router.get("/event-deliveries", response_model=DeliveryList)
async def list_deliveries(
    events: EventsDep,
    status: DeliveryStatus | None = None,
    endpoint: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    event_type: EventType | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """Deliveries of events to endpoints, newest first; `status=failed` lists those given up."""
    return await events.list_deliveries(
        status=status,
        endpoint_name=endpoint,
        customer_id=customer_id,
        event_type=event_type,
        limit=limit,
    )


@router.post(
    "/event-deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=202,
    responses=NOT_FOUND | {409: {"model": ErrorOut, "description": "Being attempted right now."}},
)
async def redeliver(
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], events: EventsDep
) -> DeliveryOut:
    """Send the event to the endpoint again now, with a fresh 24 hours of retries."""
    return await events.redeliver(delivery_id)

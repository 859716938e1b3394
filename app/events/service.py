"""Endpoints, deliveries and connection status for the host app. Each write commits here."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_ignore, utcnow
from app.events import deliveries
from app.events.schemas import (
    DeliveryList,
    DeliveryOut,
    EndpointIn,
    EndpointList,
    EndpointOut,
    SecretOut,
)
from app.events.signing import new_secret
from app.events.status import ConnectionStatus, customer_status
from app.models import EventDelivery, EventEndpoint, OutboundEvent
from app.ops.errors import Conflict, NotFound

SECRET_OVERLAP = timedelta(hours=24)


def endpoint_out(endpoint: EventEndpoint, *, secret: str | None = None) -> EndpointOut:
    return EndpointOut(
        name=endpoint.name,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        secret=secret,
    )


async def put_endpoint(
    session: AsyncSession, name: str, body: EndpointIn
) -> tuple[EndpointOut, bool]:
    """Create the endpoint with a new secret (shown in this answer only), or change its URL
    and event types; True when created."""
    now = utcnow()
    secret = new_secret()
    values = {
        "name": name,
        "url": body.url,
        "event_types": list(body.event_types),
        "secret": secret,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    created = (await session.execute(insert_ignore(dialect, EventEndpoint, values))).rowcount == 1  # type: ignore[attr-defined]
    endpoint = await _endpoint(session, name)
    if not created:
        endpoint.url = body.url
        endpoint.event_types = list(body.event_types)
    await session.commit()
    return endpoint_out(endpoint, secret=secret if created else None), created


async def list_endpoints(session: AsyncSession) -> EndpointList:
    rows = await session.execute(select(EventEndpoint).order_by(EventEndpoint.name))
    return EndpointList(endpoints=[endpoint_out(e) for e in rows.scalars()])


async def get_endpoint(session: AsyncSession, name: str) -> EndpointOut:
    return endpoint_out(await _endpoint(session, name))


async def delete_endpoint(session: AsyncSession, name: str) -> None:
    """The endpoint goes, and with it the deliveries still queued for it."""
    await session.delete(await _endpoint(session, name))
    await session.commit()


async def rotate_secret(session: AsyncSession, name: str) -> SecretOut:
    """A new secret; the current one keeps signing for 24 hours (an older one stops now)."""
    endpoint = await _endpoint(session, name, lock=True)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + SECRET_OVERLAP
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    await session.commit()
    return SecretOut(
        name=name, secret=endpoint.secret, previous_secret_expires_at=now + SECRET_OVERLAP
    )


async def _endpoint(session: AsyncSession, name: str, *, lock: bool = False) -> EventEndpoint:
    query = (
        select(EventEndpoint)
        .where(EventEndpoint.name == name)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    endpoint = (await session.execute(query)).scalar_one_or_none()
    if endpoint is None:
        raise NotFound(f"Event endpoint {name!r} not found.")
    return endpoint


# --- deliveries -----------------------------------------------------------------------------


def delivery_out(delivery: EventDelivery, event: OutboundEvent) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        endpoint_name=delivery.endpoint_name,
        event_id=event.event_id,
        event_type=event.event_type,
        customer_id=delivery.customer_id,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        deliver_until=delivery.deliver_until,
        created_at=delivery.created_at,
        event=json.loads(event.body),
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    status: str | None = None,
    endpoint_name: str | None = None,
    customer_id: str | None = None,
    event_type: str | None = None,
    limit: int = 50,
) -> DeliveryList:
    rows = await deliveries.listed(
        session,
        status=status,
        endpoint_name=endpoint_name,
        customer_id=customer_id,
        event_type=event_type,
        limit=limit,
    )
    return DeliveryList(deliveries=[delivery_out(d, e) for d, e in rows])


async def redeliver(
    session: AsyncSession, delivery_id: int, now: datetime | None = None
) -> DeliveryOut:
    """Send the event again now, with a fresh 24 hours of retries."""
    queued = await deliveries.redeliver(session, delivery_id, now or utcnow())
    if queued is None:
        raise NotFound(f"Event delivery {delivery_id} not found.")
    if not queued:
        raise Conflict(f"Event delivery {delivery_id} is being attempted right now; try again.")
    await session.commit()
    found = await deliveries.get(session, delivery_id)
    assert found is not None
    return delivery_out(*found)


# --- connection status ----------------------------------------------------------------------


async def connection_status(session: AsyncSession, customer_id: str) -> ConnectionStatus:
    status = await customer_status(session, customer_id)
    if status is None:
        raise NotFound(f"Customer {customer_id!r} not found.")
    return status

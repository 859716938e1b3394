"""Endpoints, deliveries and connection status for the host app.

Each method is one unit of work: what it writes is committed before it returns, so no answer
goes out before what it reports is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import insert_ignore, utcnow
from app.errors import Conflict, CustomerNotFound, NotFound
from app.events import deliveries
from app.events.schemas import (
    DeliveryList,
    DeliveryOut,
    DeliveryStatus,
    EndpointIn,
    EndpointList,
    EndpointOut,
    SecretOut,
)
from app.events.signing import new_secret
from app.events.status import ConnectionStatus, customer_status
from app.models import EventDelivery, EventEndpoint, OutboundEvent

SECRET_OVERLAP = timedelta(hours=24)


@dataclass
class EventService:
    sessions: async_sessionmaker[AsyncSession]

    # --- endpoints ----------------------------------------------------------------------

    async def put_endpoint(self, name: str, body: EndpointIn) -> tuple[EndpointOut, bool]:
        """Create the endpoint with a new secret (shown in this answer only), or change its URL
        and event types; True when created."""
        async with self.sessions() as session:
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
            inserted = await session.execute(insert_ignore(dialect, EventEndpoint, values))
            created = inserted.rowcount == 1  # type: ignore[attr-defined]
            endpoint = await _endpoint(session, name)
            if not created:
                endpoint.url = body.url
                endpoint.event_types = list(body.event_types)
                await session.flush()
            out = endpoint_out(endpoint, secret=secret if created else None)
            await session.commit()
            return out, created

    async def list_endpoints(self) -> EndpointList:
        async with self.sessions() as session:
            rows = await session.execute(select(EventEndpoint).order_by(EventEndpoint.name))
            return EndpointList(endpoints=[endpoint_out(e) for e in rows.scalars()])

    async def get_endpoint(self, name: str) -> EndpointOut:
        async with self.sessions() as session:
            return endpoint_out(await _endpoint(session, name))

    async def delete_endpoint(self, name: str) -> None:
        """The endpoint goes, and with it the deliveries still queued for it."""
        async with self.sessions() as session:
            await session.delete(await _endpoint(session, name))
            await session.commit()

    async def rotate_secret(self, name: str) -> SecretOut:
        """A new secret; the current one keeps signing for 24 hours (an older one stops now)."""
        async with self.sessions() as session:
            endpoint = await _endpoint(session, name, lock=True)
            now = utcnow()
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = now + SECRET_OVERLAP
            endpoint.secret = new_secret()
            endpoint.updated_at = now
            out = SecretOut(
                name=name, secret=endpoint.secret, previous_secret_expires_at=now + SECRET_OVERLAP
            )
            await session.commit()
            return out

    # --- deliveries ---------------------------------------------------------------------

    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        endpoint_name: str | None = None,
        customer_id: str | None = None,
        event_type: str | None = None,
        limit: int = 50,
    ) -> DeliveryList:
        async with self.sessions() as session:
            rows = await deliveries.listed(
                session,
                status=status,
                endpoint_name=endpoint_name,
                customer_id=customer_id,
                event_type=event_type,
                limit=limit,
            )
            return DeliveryList(deliveries=[delivery_out(d, e) for d, e in rows])

    async def redeliver(self, delivery_id: int, now: datetime | None = None) -> DeliveryOut:
        """Send the event again now, with a fresh 24 hours of retries."""
        async with self.sessions() as session:
            queued = await deliveries.redeliver(session, delivery_id, now or utcnow())
            if queued is None:
                raise NotFound(f"Event delivery {delivery_id} not found.")
            if not queued:
                raise Conflict(
                    f"Event delivery {delivery_id} is being attempted right now; try again."
                )
            found = await deliveries.get(session, delivery_id)
            assert found is not None
            out = delivery_out(*found)
            await session.commit()
            return out

    # --- connection status --------------------------------------------------------------

    async def connection_status(self, customer_id: str) -> ConnectionStatus:
        async with self.sessions() as session:
            status = await customer_status(session, customer_id)
        if status is None:
            raise CustomerNotFound(customer_id)
        return status


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

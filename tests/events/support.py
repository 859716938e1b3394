"""A receiver for our events, registering endpoints, and reading the outbox back."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from app.events.catalog import EVENT_TYPES
from app.models import EventDelivery, OutboundEvent
from tests.conftest import Service
from tests.servers import free_port

HOOK_URL = "https://bank.test/hooks/bankfeeds"

Answer = httpx.Response | Exception


@dataclass
class Received:
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def verified(self, secret: str) -> dict[str, Any]:
        """The event, as a host app's Standard Webhooks library verifies it."""
        return dict(Webhook(secret).verify(self.body, self.headers))


@dataclass
class Receiver(httpx.AsyncBaseTransport):
    """The host app's endpoint: records each request and answers from `answers` (then 204)."""

    answers: list[Answer] = field(default_factory=list)
    answer: Callable[[httpx.Request], Answer] | None = None
    received: list[Received] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.received.append(Received(str(request.url), dict(request.headers), body))
        reply: Answer = httpx.Response(204)
        if self.answers:
            reply = self.answers.pop(0)
        elif self.answer is not None:
            reply = self.answer(request)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.received]


async def register(
    service: Service,
    name: str = "host-app",
    *,
    url: str = HOOK_URL,
    event_types: list[str] | None = None,
) -> str:
    """PUT the endpoint through the ops API; returns its signing secret."""
    response = await service.client.put(
        f"/ops/event-endpoints/{name}",
        json={"url": url, "event_types": event_types or list(EVENT_TYPES)},
        headers=service.ops_headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


async def outbox(
    sessions: async_sessionmaker[AsyncSession], customer_id: str | None = None
) -> list[dict[str, Any]]:
    """Every event stored, in order, as the JSON body sent."""
    query = select(OutboundEvent).order_by(OutboundEvent.id)
    if customer_id is not None:
        query = query.where(OutboundEvent.customer_id == customer_id)
    async with sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    return [json.loads(r.body) for r in rows]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """`type` of each event, with what it is about: account id or reasons."""
    described = []
    for event in events:
        data = event["data"]
        detail = data.get("account_id") or ",".join(data.get("reasons", []))
        described.append(f"{event['type']} {detail}".strip())
    return described


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> list[EventDelivery]:
    async with sessions() as session:
        query = select(EventDelivery).order_by(EventDelivery.id)
        return list((await session.execute(query)).scalars())


class Clock:
    """A movable clock for the delivery worker, starting now (signatures stay verifiable)."""

    def __init__(self) -> None:
        from app.db import utcnow

        self.now = utcnow()

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


async def emit(
    sessions: async_sessionmaker[AsyncSession], customer_id: str, *names: str
) -> list[str]:
    """One `transactions.pushed` event per name, each committed on its own; their ids."""
    from app.events.outbox import emit_transactions

    ids = []
    for name in names:
        async with sessions() as session:
            ids += await emit_transactions(session, "pushed", customer_id, "acc", [name])
            await session.commit()
    return ids


class HostApp:
    """The host app's endpoint on a real loopback port, in a thread: verifies each event with
    `secret`, answers after a few ms, and fails `failure_rate` of the attempts at random."""

    def __init__(self, rng: random.Random, failure_rate: float = 0.0) -> None:
        self.rng = rng
        self.failure_rate = failure_rate
        self.secret = ""
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.refused = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                time.sleep(host.rng.uniform(0, 0.02))
                try:
                    event = Webhook(host.secret).verify(body, dict(self.headers))
                except WebhookVerificationError:
                    with host.lock:  # a request cut short by a kill is refused, not counted
                        host.refused += len(body) == length
                    self.send_response(400)
                    self.end_headers()
                    return
                fail = host.rng.random() < host.failure_rate
                if not fail:
                    with host.lock:
                        host.events.append(event)
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

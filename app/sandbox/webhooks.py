"""Codat-style webhooks: Standard Webhooks signatures, retried, at least once, in no set order.

Svix promises neither order nor exactly-once: each message is held a random moment, so two
messages about one connection may cross, and a delivered message is sometimes sent again with
the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from app.sandbox.config import SandboxConfig, webhook_signing_key
from app.sandbox.state import SandboxClock
from app.sandbox.wire import Json, format_datetime

_MESSAGE_ID_ALPHABET = string.ascii_letters + string.digits
ATTEMPT_TIMEOUT = httpx.Timeout(5.0)
# Svix sends to one endpoint a bounded number at a time; the others wait their turn, and an
# attempt's timeout starts when it is sent, not while it waits.
MAX_CONCURRENT_ATTEMPTS = 20


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass
class WebhookAttempt:
    at: datetime
    status_code: int | None
    error: str | None


@dataclass
class WebhookDelivery:
    message_id: str
    event_type: str
    ordering_key: str
    envelope: Json
    body: bytes
    attempts: list[WebhookAttempt] = field(default_factory=list)
    delivered: bool = False
    finished: bool = False
    duplicated: bool = False  # delivered, then sent again

    def summary(self) -> Json:
        return {
            "messageId": self.message_id,
            "eventType": self.event_type,
            "envelope": self.envelope,
            "delivered": self.delivered,
            "finished": self.finished,
            "duplicated": self.duplicated,
            "attempts": [
                {"at": a.at.isoformat(), "statusCode": a.status_code, "error": a.error}
                for a in self.attempts
            ],
        }


class WebhookEmitter:
    """Queues an event per change and delivers it without holding up the API response."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        self.enabled = config.sends_webhooks
        self._url = config.webhook_url or ""
        self._key = webhook_signing_key(config.webhook_secret or "") if self.enabled else b""
        self._transport = config.webhook_transport
        self._retry_delays = config.webhook_retry_delays
        self._max_delay = config.webhook_max_delay
        self._duplicate_rate = config.webhook_duplicate_rate
        self._rng = random.Random(config.webhook_seed)
        self._clock = clock
        self.deliveries: list[WebhookDelivery] = []
        self._pending: list[WebhookDelivery] = []  # emitted outside the event loop
        self._workers: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._sending = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)

    def emit(self, event_type: str, ordering_key: str, payload: Json) -> None:
        if not self.enabled:
            return
        envelope: Json = {
            "id": str(uuid.uuid4()),
            "eventType": event_type,
            "generatedDate": format_datetime(self._clock.now()),
            "payload": payload,
        }
        message_id = "msg_" + "".join(secrets.choice(_MESSAGE_ID_ALPHABET) for _ in range(27))
        delivery = WebhookDelivery(
            message_id=message_id,
            event_type=event_type,
            ordering_key=ordering_key,
            envelope=envelope,
            body=json.dumps(envelope, separators=(",", ":")).encode(),
        )
        self.deliveries.append(delivery)
        self._pending.append(delivery)
        self._start_workers()

    def _start_workers(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # emitted outside the event loop; drain() starts it
        while self._pending:
            delivery = self._pending.pop(0)
            # Drawn now, in emission order, so a seed gives the same delays every run.
            hold = self._rng.uniform(0, self._max_delay)
            again = self._rng.random() < self._duplicate_rate
            task = loop.create_task(self._deliver_later(delivery, hold, again))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _deliver_later(self, delivery: WebhookDelivery, hold: float, again: bool) -> None:
        if hold:
            await asyncio.sleep(hold)
        await self._deliver(delivery)
        if again and delivery.delivered:
            if hold:
                await asyncio.sleep(hold)
            delivery.duplicated = True
            await self._attempt(delivery)
        delivery.finished = True

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        for delay in (*self._retry_delays, None):
            if await self._attempt(delivery):
                delivery.delivered = True
                return
            if delay is not None:
                await asyncio.sleep(delay)

    async def _attempt(self, delivery: WebhookDelivery) -> bool:
        async with self._sending:
            return await self._send(delivery)

    async def _send(self, delivery: WebhookDelivery) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=ATTEMPT_TIMEOUT,
                limits=httpx.Limits(max_connections=MAX_CONCURRENT_ATTEMPTS),
            )
        timestamp = int(time.time())
        headers = {
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, delivery.message_id, timestamp, delivery.body),
            "content-type": "application/json",
        }
        try:
            response = await self._client.post(self._url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.attempts.append(WebhookAttempt(self._clock.now(), None, repr(exc)))
            return False
        delivery.attempts.append(WebhookAttempt(self._clock.now(), response.status_code, None))
        return response.is_success

    async def drain(self) -> None:
        """Wait until every webhook has been delivered (and any duplicate sent) or given up."""
        self._start_workers()
        for _ in range(1000):  # each round waits for real work; new events start new rounds
            if not self._workers:
                return
            await asyncio.gather(*list(self._workers), return_exceptions=True)
            self._start_workers()

    async def aclose(self) -> None:
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

"""Codat-style webhooks: Standard Webhooks signatures, in order per connection, retried."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import string
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from app.sandbox.config import SandboxConfig, webhook_signing_key
from app.sandbox.state import SandboxClock
from app.sandbox.wire import Json, format_datetime

_MESSAGE_ID_ALPHABET = string.ascii_letters + string.digits
ATTEMPT_TIMEOUT = httpx.Timeout(5.0)


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

    def summary(self) -> Json:
        return {
            "messageId": self.message_id,
            "eventType": self.event_type,
            "envelope": self.envelope,
            "delivered": self.delivered,
            "finished": self.finished,
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
        self._clock = clock
        self.deliveries: list[WebhookDelivery] = []
        self._queues: dict[str, deque[WebhookDelivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

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
        self._queues.setdefault(ordering_key, deque()).append(delivery)
        self._start_worker(ordering_key)

    def _start_worker(self, ordering_key: str) -> None:
        if ordering_key in self._workers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # emitted outside the event loop; drain() starts it
        self._workers[ordering_key] = loop.create_task(self._deliver_in_order(ordering_key))

    async def _deliver_in_order(self, ordering_key: str) -> None:
        queue = self._queues[ordering_key]
        try:
            while queue:
                await self._deliver(queue[0])
                queue.popleft()
        finally:
            # No await between the last emptiness check and here, so no event is stranded.
            del self._workers[ordering_key]
            if not queue:
                del self._queues[ordering_key]

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=ATTEMPT_TIMEOUT)
        for delay in (*self._retry_delays, None):
            timestamp = int(time.time())
            headers = {
                "webhook-id": delivery.message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._key, delivery.message_id, timestamp, delivery.body),
                "content-type": "application/json",
            }
            try:
                response = await self._client.post(
                    self._url, content=delivery.body, headers=headers
                )
            except httpx.HTTPError as exc:
                delivery.attempts.append(WebhookAttempt(self._clock.now(), None, repr(exc)))
            else:
                delivery.attempts.append(
                    WebhookAttempt(self._clock.now(), response.status_code, None)
                )
                if response.is_success:
                    delivery.delivered = True
                    break
            if delay is not None:
                await asyncio.sleep(delay)
        delivery.finished = True

    async def drain(self) -> None:
        """Wait until every queued webhook has been delivered or has run out of retries."""
        for ordering_key in list(self._queues):
            self._start_worker(ordering_key)
        while self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def aclose(self) -> None:
        for worker in list(self._workers.values()):
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

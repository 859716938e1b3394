"""Codat's deliveries into the inbox, and the ops view of it. Each method is one unit of work:
a delivery is committed before Codat gets its 2xx, and only then does the worker wake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.codat.webhooks import (
    InvalidSecret,
    MalformedEnvelope,
    MissingHeaders,
    WebhookRejected,
    read_delivery,
    signing_key,
)
from app.db import utcnow
from app.errors import InvalidRequest, Misconfigured, NotFound, Unauthorized
from app.models import CodatEvent
from app.webhooks import inbox
from app.webhooks.handlers import HANDLERS

log = logging.getLogger("app.webhooks")


class WebhookService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: SecretStr | None,
        signal: asyncio.Event,
    ) -> None:
        self.sessions = sessions
        self.secret = secret
        self.signal = signal  # set after each new event is stored: this process's worker wakes

    async def receive(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Verify and store a delivery; False when it is a redelivery of a stored event."""
        if self.secret is None or not self.secret.get_secret_value():
            metrics.webhook_delivery("unknown", "not_configured")
            raise NotFound("Not Found")
        try:
            key = signing_key(self.secret.get_secret_value())
        except InvalidSecret:
            metrics.webhook_delivery("unknown", "not_configured")
            log.error("CODAT_WEBHOOK_SECRET is not whsec_<base64>: refusing webhooks")
            raise Misconfigured("The webhook receiver is misconfigured.") from None
        try:
            webhook_id, envelope = read_delivery(key, headers, body)
        except WebhookRejected as exc:
            log.warning("webhook refused: %s", exc)
            malformed = isinstance(exc, MissingHeaders | MalformedEnvelope)
            metrics.webhook_delivery("unknown", "malformed" if malformed else "bad_signature")
            raise (InvalidRequest if malformed else Unauthorized)(str(exc)) from exc
        async with self.sessions() as session:
            stored = await inbox.accept(session, webhook_id, envelope, utcnow())
            await session.commit()
        event_type = envelope.event_type if envelope.event_type in HANDLERS else "other"
        metrics.webhook_delivery(event_type, "accepted" if stored else "duplicate")
        if stored:
            self.signal.set()
        return stored

    async def events(
        self,
        status: inbox.EventStatus | None,
        event_type: str | None,
        limit: int,
        *,
        customer_id: str | None = None,
        before: int | None = None,
    ) -> list[CodatEvent]:
        async with self.sessions() as session:
            return await inbox.list_events(
                session, status, event_type, limit, customer_id=customer_id, before=before
            )

    async def retry(self, event_id: int) -> None:
        """Handle a settled event again (say, an unmatched one once its customer exists)."""
        async with self.sessions() as session:
            if not await inbox.requeue(session, event_id, utcnow()):
                raise NotFound("No settled webhook event with that id.")
            await session.commit()
        self.signal.set()

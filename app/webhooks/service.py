"""Codat's deliveries into the inbox, and the ops view of it. Each method is one unit of work:
a delivery is committed before Codat gets its 2xx, and only then does the worker wake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
            raise NotFound("Not Found")
        try:
            key = signing_key(self.secret.get_secret_value())
        except InvalidSecret:
            log.error("CODAT_WEBHOOK_SECRET is not whsec_<base64>: refusing webhooks")
            raise Misconfigured("The webhook receiver is misconfigured.") from None
        try:
            webhook_id, envelope = read_delivery(key, headers, body, utcnow())
        except WebhookRejected as exc:
            log.warning("webhook refused: %s", exc)
            malformed = isinstance(exc, MissingHeaders | MalformedEnvelope)
            raise (InvalidRequest if malformed else Unauthorized)(str(exc)) from exc
        async with self.sessions() as session:
            stored = await inbox.accept(session, webhook_id, envelope, utcnow())
            await session.commit()
        if stored:
            self.signal.set()
        return stored

    async def events(
        self, status: inbox.EventStatus | None, event_type: str | None, limit: int
    ) -> list[CodatEvent]:
        async with self.sessions() as session:
            return await inbox.list_events(session, status, event_type, limit)

    async def retry(self, event_id: int) -> None:
        """Handle a settled event again (say, an unmatched one once its customer exists)."""
        async with self.sessions() as session:
            if not await inbox.requeue(session, event_id, utcnow()):
                raise NotFound("No settled webhook event with that id.")
            await session.commit()
        self.signal.set()

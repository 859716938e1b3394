"""The inbox worker: handles stored events after the response, each in its own transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.bank_feeds import webhook_health
from app.db import utcnow
from app.webhooks import inbox
from app.webhooks.handlers import HANDLERS, Handler, MalformedPayload
from app.webhooks.inbox import InboxEvent, Outcome

log = logging.getLogger("app.webhooks")

BATCH_SIZE = 100
CLAIM_SECONDS = 60.0
MAX_ERROR_CHARS = 500
MAX_IDLE_BACKOFF = 30.0


class InboxWorker:
    """Claims due events (safe with other processes doing the same) and settles each one."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        handlers: Mapping[str, Handler] = HANDLERS,
        signal: asyncio.Event | None = None,
        max_attempts: int = 8,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 3600.0,
        poll_seconds: float = 1.0,
        claim_seconds: float = CLAIM_SECONDS,
        redact: Callable[[str], str] = lambda text: text,
        wakes: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        self.sessions = sessions
        # By event type: who to wake once such an event is handled and committed (the push
        # job, say, when Codat says a write settled).
        self.wakes = wakes or {}
        self.handlers = handlers
        self.signal = signal or asyncio.Event()
        self.max_attempts = max_attempts
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.poll_seconds = poll_seconds
        self.claim = timedelta(seconds=claim_seconds)
        self.redact = redact

    async def run(self) -> None:
        """Until cancelled: handle what is due, then wait for a wake-up or the next poll."""
        failures = 0
        while True:
            self.signal.clear()
            try:
                await self.run_once()
                failures = 0
            except Exception as exc:  # the database is away, say: back off, never busy-loop
                failures += 1
                log.warning("webhook inbox: %s; retrying", type(exc).__name__)
            timeout = min(self.poll_seconds * 2**failures, MAX_IDLE_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.signal.wait(), timeout)

    async def run_once(self) -> int:
        """Handle every event due now; returns how many attempts this process made."""
        attempted: set[int] = set()
        while True:
            async with self.sessions() as session:
                due = await inbox.due_events(session, utcnow(), BATCH_SIZE)
            fresh = [(i, a) for i, a in due if i not in attempted]
            for event_id, seen_attempts in fresh:
                attempted.add(event_id)
                await self._attempt(event_id, seen_attempts)
            if len(due) < BATCH_SIZE or not fresh:
                return len(attempted)

    async def _attempt(self, event_id: int, seen_attempts: int) -> None:
        async with self.sessions() as session:
            won = await inbox.claim(session, event_id, seen_attempts, utcnow(), self.claim)
            await session.commit()
        if not won:
            return  # another process has it
        async with self.sessions() as session:
            event = await inbox.load(session, event_id)
            if event is None:
                return
            try:
                outcome = await self._handle(session, event)
                if await inbox.settle(session, event, outcome, utcnow()):
                    await session.commit()
                    metrics.webhook_event(self._label(event), outcome.status)
                    if (wake := self.wakes.get(event.event_type)) is not None:
                        wake()
                else:
                    await session.rollback()  # our claim lapsed and someone else took it
                return
            except MalformedPayload as exc:
                await session.rollback()
                await self._fail(event, str(exc), retry=False)
            except Exception as exc:
                await session.rollback()
                log.warning(
                    "webhook %r (%r), attempt %d failed: %s",
                    event.webhook_id,
                    event.event_type,
                    event.attempts,
                    type(exc).__name__,
                )
                await self._fail(event, _describe(exc), retry=True)

    async def _handle(self, session: AsyncSession, event: InboxEvent) -> Outcome:
        handler = self.handlers.get(event.event_type)
        if handler is None:
            return Outcome("ignored")
        outcome = await handler(session, event)
        if outcome.status == "handled" and outcome.customer_id:
            await webhook_health.note_touched(session, outcome.customer_id, utcnow())
        return outcome

    async def _fail(self, event: InboxEvent, error: str, *, retry: bool) -> None:
        retry_at = self.retry_at(event.attempts, utcnow()) if retry else None
        async with self.sessions() as session:
            if await inbox.record_failure(
                session, event, self.redact(error)[:MAX_ERROR_CHARS], retry_at
            ):
                await session.commit()
        metrics.webhook_event(self._label(event), "retry" if retry_at else "failed")
        if retry_at is None:
            log.error("webhook %r (%r) failed for good", event.webhook_id, event.event_type)

    def _label(self, event: InboxEvent) -> str:
        """The event type as a metric label: `other` for the types no handler takes."""
        return event.event_type if event.event_type in self.handlers else "other"

    def retry_at(self, attempts: int, now: datetime) -> datetime | None:
        """Exponential backoff after the `attempts`-th failure; None once they are used up."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.retry_base * 2 ** (attempts - 1), self.retry_max)
        return now + timedelta(seconds=delay)


def _describe(exc: BaseException) -> str:
    # A database error's text includes the SQL and its parameters: keep the driver's message.
    if isinstance(exc, SQLAlchemyError):
        origin = getattr(exc, "orig", None)
        detail = str(origin) if origin is not None else ""
        return f"{type(exc).__name__}: {detail}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}".rstrip(": ")

"""Codat's idempotency: the first answer for an `Idempotency-Key` is replayed for 90 minutes.

POST and PATCH only. The same key with a different request gets 422; the same key while the
first request is still running gets 409; a 429 is not kept, so the client may retry with the
same key. Every other answer, errors and injected 5xx included, is kept and replayed; so is the
answer to a request whose response was lost or that ran on after the client gave up. Time is the
sandbox clock.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox.errors import error_response
from app.sandbox.faults import (
    BACKGROUND_SCOPE_KEY,
    FAULT_SCOPE_KEY,
    UNANSWERED,
    ClientGone,
    read_body,
)
from app.sandbox.state import SandboxClock

IDEMPOTENCY_WINDOW = timedelta(minutes=90)
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})
IDEMPOTENCY_SCOPE_KEY = "codat_sandbox.idempotency"
IN_PROGRESS_MESSAGE = "A request with this Idempotency-Key is still being processed."
_HEADER = b"idempotency-key"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Entry:
    fingerprint: bytes
    answer: Answer | None = None  # None while the first request is still running
    expires_at: datetime | None = None


class IdempotencyStore:
    """Keys seen in the last 90 minutes of sandbox time, with the answer each one got."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        self._expiries: deque[tuple[datetime, str]] = deque()  # in order: the window is fixed

    def lookup(self, key: str) -> Entry | None:
        now = self.clock.now()
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, expired = self._expiries.popleft()
            entry = self.entries.get(expired)
            if entry is not None and entry.expires_at == expires_at:
                del self.entries[expired]
        return self.entries.get(key)

    def begin(self, key: str, fingerprint: bytes) -> None:
        self.entries[key] = Entry(fingerprint)

    def finish(self, key: str, answer: Answer) -> None:
        expires_at = self.clock.now() + IDEMPOTENCY_WINDOW
        self.entries[key] = Entry(self.entries[key].fingerprint, answer, expires_at)
        self._expiries.append((expires_at, key))

    def release(self, key: str) -> None:
        self.entries.pop(key, None)


class IdempotencyMiddleware:
    """Between the rate-limit edge and the injected faults: a fault's answer is kept too."""

    def __init__(self, app: ASGIApp, store: IdempotencyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope["headers"]).get(_HEADER, b"").decode("latin-1").strip()
        if scope["method"] not in IDEMPOTENT_METHODS or not key:
            await self.app(scope, receive, send)
            return
        try:
            body, receive = await _read_body(receive)
        except ClientGone:
            return  # cut off before its body was whole: never run, and its key stays free
        fingerprint = hashlib.sha256(
            b"\0".join((scope["method"].encode(), scope["path"].encode(), body))
        ).digest()
        entry = self.store.lookup(key)
        if entry is not None:
            await self._answer_again(scope, receive, send, entry, fingerprint)
            return
        self.store.begin(key, fingerprint)
        started: Message | None = None
        parts: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            if scope.get(FAULT_SCOPE_KEY) not in UNANSWERED:
                await send(message)

        def settle() -> None:
            if started is None or started["status"] == 429:
                self.store.release(key)  # no answer, or one Codat does not keep: free again
                return
            headers = [(bytes(k), bytes(v)) for k, v in started.get("headers", [])]
            self.store.finish(key, Answer(started["status"], headers, b"".join(parts)))

        try:
            await self.app(scope, receive, keep)
        except BaseException:
            still_running = scope.get(BACKGROUND_SCOPE_KEY)
            if isinstance(still_running, asyncio.Task) and not still_running.done():
                still_running.add_done_callback(lambda _: settle())  # 409 to retries until then
            else:
                settle()  # a lost response: the work was done and its answer is kept
            raise
        settle()

    async def _answer_again(
        self, scope: Scope, receive: Receive, send: Send, entry: Entry, fingerprint: bytes
    ) -> None:
        if entry.fingerprint != fingerprint:
            scope[IDEMPOTENCY_SCOPE_KEY] = "mismatch"
            message = "This Idempotency-Key was already used with a different request."
            await error_response(422, message)(scope, receive, send)
        elif entry.answer is None:
            scope[IDEMPOTENCY_SCOPE_KEY] = "in_progress"
            await error_response(409, IN_PROGRESS_MESSAGE)(scope, receive, send)
        else:
            scope[IDEMPOTENCY_SCOPE_KEY] = "replayed"
            answer = entry.answer
            await send(
                {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
            )
            await send({"type": "http.response.body", "body": answer.body})


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands it to the app again."""
    body = await read_body(receive)
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay

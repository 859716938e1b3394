"""The delivery worker: sends due events to the host app's endpoints, signed, with backoff.

No transaction is open while a request is in flight. Redirects are never followed: a 3xx is a
failed attempt like any other answer that is not 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.events import deliveries
from app.events.deliveries import Due, Job, Result
from app.events.signing import signed_headers

log = logging.getLogger("app.events")

BATCH_SIZE = 100
MAX_ROUNDS = 50  # per run_once: each round may unblock the next event of a customer
MAX_IDLE_BACKOFF = 30.0
MAX_ERROR_CHARS = 300
USER_AGENT = "bankfeeds-connect-events/1"


class EventWorker:
    """Claims due deliveries (safe with other processes doing the same) and attempts each."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 10.0,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 3600.0,
        poll_seconds: float = 1.0,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.transport = transport
        self.timeout = timeout_seconds
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.clock = clock
        # A claim outlives the request's time limit; after a crash the delivery frees itself.
        self.lock = timedelta(seconds=timeout_seconds + 5)

    async def run(self) -> None:
        """Until cancelled: attempt what is due, then wait for the next poll."""
        failures = 0
        async with self._client() as http:
            while True:
                try:
                    await self._run_once(http)
                    failures = 0
                except Exception as exc:  # the database is away, say: back off, never busy-loop
                    failures += 1
                    log.warning("event delivery: %s; retrying", type(exc).__name__)
                await asyncio.sleep(min(self.poll_seconds * 2**failures, MAX_IDLE_BACKOFF))

    async def run_once(self) -> int:
        """Attempt every delivery due now; returns how many attempts this process made."""
        async with self._client() as http:
            return await self._run_once(http)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(
            transport=self.transport,
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
            limits=httpx.Limits(max_connections=self.concurrency * 2),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        ) as http:
            yield http

    async def _run_once(self, http: httpx.AsyncClient) -> int:
        attempted: set[int] = set()
        gate = asyncio.Semaphore(self.concurrency)

        async def in_order(queue: list[Due]) -> None:
            async with gate:
                for item in queue:
                    await self._attempt(http, item)

        for _ in range(MAX_ROUNDS):
            async with self.sessions() as session:
                due = await deliveries.due(session, self.clock(), BATCH_SIZE)
            fresh = [d for d in due if d.id not in attempted]
            if not fresh:
                break
            queues: dict[tuple[str, str], list[Due]] = {}
            for item in fresh:
                attempted.add(item.id)
                queues.setdefault((item.endpoint_name, item.customer_id), []).append(item)
            outcomes = await asyncio.gather(
                *(in_order(q) for q in queues.values()), return_exceptions=True
            )
            for outcome in outcomes:  # once every queue has stopped: the database is away, say
                if isinstance(outcome, BaseException):
                    raise outcome
        return len(attempted)

    async def _attempt(self, http: httpx.AsyncClient, item: Due) -> None:
        now = self.clock()
        async with self.sessions() as session:
            won = await deliveries.claim(session, item.id, item.attempts, now, self.lock)
            await session.commit()
        if not won:
            return  # another process has it, or an earlier event of the customer came first
        async with self.sessions() as session:
            job = await deliveries.load(session, item.id, now)
        if job is None:
            return  # the endpoint was deleted
        result = await self._send(http, job)
        now = self.clock()
        retry_at = None if result.delivered else self.retry_at(job, result, now)
        async with self.sessions() as session:
            if await deliveries.settle(session, job, result, now, retry_at):
                await session.commit()
        if not result.delivered:
            log.warning(
                "event %s to endpoint %r, attempt %d failed: %s%s",
                job.event_id,
                job.endpoint_name,
                job.attempts,
                result.error,
                "" if retry_at else "; giving up",
            )

    async def _send(self, http: httpx.AsyncClient, job: Job) -> Result:
        headers = signed_headers(job.event_id, job.body, job.secrets, self.clock())
        try:
            # One time limit for the whole request (httpx's applies to each step of it). The
            # answer is streamed and never read: its body is neither needed nor trusted.
            async with (
                asyncio.timeout(self.timeout),
                http.stream(
                    "POST", job.url, content=job.body.encode(), headers=headers
                ) as response,
            ):
                code = response.status_code
                retry_after = _seconds(response.headers.get("retry-after"))
        except (httpx.TimeoutException, TimeoutError):
            return Result(False, error=f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Result(False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
        if 200 <= code < 300:
            return Result(True, code)
        if 300 <= code < 400:
            return Result(False, code, f"HTTP {code}: redirects are not followed")
        return Result(False, code, f"HTTP {code}", retry_after)

    def retry_at(self, job: Job, result: Result, now: datetime) -> datetime | None:
        """Exponential backoff with jitter until the 24 hours are up; None then."""
        if now >= job.deliver_until:
            return None
        delay = min(self.retry_base * 2 ** (job.attempts - 1), self.retry_max)
        delay *= random.uniform(0.8, 1.0)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, self.retry_max))
        return min(now + timedelta(seconds=delay), job.deliver_until)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None

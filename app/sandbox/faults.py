"""Codat's failure modes, injected at the sandbox's edge before a request reaches its handler.

Codat's own limits are always on: the daily quota (1000 x (1 + connected companies), or the
`daily_quota` a test sets) and 10 concurrent requests per company (or `concurrency_limit`).
Every API response carries Codat's `X-Rate-Limit-*` headers. Faults are off by default:
`FaultConfig` says what to inject on which routes: 429/5xx at given rates, requests held until
the client gives up (Codat goes on working, then keeps the answer), dropped connections,
responses lost after the work was done, latency. Injected faults sit inside Codat's
idempotency, so a replayed 5xx stays a 5xx. Tests change the faults of a running sandbox with
`PUT /_sandbox/faults`; `bankfeeds sandbox --latency-ms ...` sets them at start.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import httpx
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox.errors import error_message
from app.sandbox.state import SandboxClock
from app.sandbox.wire import format_datetime

FAULT_SCOPE_KEY = "codat_sandbox.fault"
# The work of a request held past the client's patience, still running after it gave up.
BACKGROUND_SCOPE_KEY = "codat_sandbox.background"
# Faults after which the client gets no response at all.
UNANSWERED = frozenset({"timeout", "drop", "lost_response"})
INJECTABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CODAT_DAILY_REQUESTS_PER_ACC = 1000
CODAT_CONCURRENT_REQUESTS_PER_COMPANY = 10
_COMPANY_PATH = re.compile(r"^/companies/([^/]+)")
_MESSAGES = {
    408: "The request timed out.",
    429: "Rate limit exceeded. Retry after the time given in the Retry-After header.",
    500: "An unexpected error occurred. Please try again later.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable. Please try again later.",
    504: "The gateway timed out.",
}


class DroppedConnection(httpx.RemoteProtocolError):
    """The sandbox closed the connection without answering (seen in-process as a transport error).

    Under uvicorn, `DropConnections` turns it into a socket closed without a response.
    """


class HeldTooLong(httpx.ReadTimeout):
    """The sandbox held the request for `timeout_seconds` and never answered."""


@dataclass(frozen=True)
class FaultConfig:
    """What to inject, where. Rates are probabilities per request; together at most 1."""

    status_rates: Mapping[int, float] = field(default_factory=dict)  # {429: 0.15, 503: 0.15}
    # Held `timeout_seconds`, then closed unanswered; Codat goes on working for
    # `still_running_seconds` (its retry gets 409 meanwhile), then keeps the answer.
    timeout_rate: float = 0.0
    drop_rate: float = 0.0  # closed at once, unanswered; nothing done
    lost_response_rate: float = 0.0  # the handler runs, then the connection closes unanswered
    # Create-bank-transactions writes that end TimedOut (they still land, as Codat's may).
    push_timeout_rate: float = 0.0
    # Of those TimedOut writes, the share that never land: Codat says a TimedOut write "may"
    # still land, so an operator must look in QuickBooks before sending it again.
    push_timeout_lost_rate: float = 0.0
    latency_ms: float = 0.0  # added to every matching request...
    jitter_ms: float = 0.0  # ...plus a uniform random 0..jitter_ms
    methods: tuple[str, ...] = ()  # faults only for these methods; empty: all
    routes: tuple[str, ...] = ()  # route templates ("/companies/{companyId}") or path globs
    concurrency_limit: int = CODAT_CONCURRENT_REQUESTS_PER_COMPANY  # in flight per company
    daily_quota: int | None = None  # requests per sandbox day; None: Codat's 1000 x (1 + ACCs)
    retry_after_seconds: int = 1  # Retry-After on an injected 429
    timeout_seconds: float = 30.0
    still_running_seconds: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status_rates", {int(k): v for k, v in self.status_rates.items()})
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))
        object.__setattr__(self, "routes", tuple(self.routes))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting that makes no sense."""
        for status, rate in self.status_rates.items():
            if status not in INJECTABLE_STATUSES:
                allowed = ", ".join(str(s) for s in sorted(INJECTABLE_STATUSES))
                raise ValueError(f"status_rates: {status} is not one of {allowed}")
            _check_rate(f"status_rates[{status}]", rate)
        rates = ("timeout_rate", "drop_rate", "lost_response_rate", "push_timeout_rate")
        for name in (*rates, "push_timeout_lost_rate"):
            _check_rate(name, getattr(self, name))
        total = sum(self.status_rates.values()) + self.timeout_rate + self.drop_rate
        if total + self.lost_response_rate > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total + self.lost_response_rate}, over 1")
        for name in ("latency_ms", "jitter_ms", "timeout_seconds", "still_running_seconds"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number, at least 0")
        if not _is_int(self.concurrency_limit) or self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be a whole number, at least 1")
        if self.daily_quota is not None and (not _is_int(self.daily_quota) or self.daily_quota < 1):
            raise ValueError("daily_quota must be a whole number, at least 1, or null")
        if not _is_int(self.retry_after_seconds) or self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be a whole number, at least 0")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError("seed must be a whole number or null")

    @property
    def fault_rate(self) -> float:
        return (
            sum(self.status_rates.values())
            + self.timeout_rate
            + self.drop_rate
            + (self.lost_response_rate)
        )

    def applies_to(self, method: str, path: str, template: str | None) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        if not self.routes:
            return True
        return any(p == template or fnmatchcase(path, p) for p in self.routes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status_rates"] = {str(k): v for k, v in sorted(self.status_rates.items())}
        data["methods"], data["routes"] = list(self.methods), list(self.routes)
        return data

    @classmethod
    def from_json(cls, data: object) -> FaultConfig:
        """From `PUT /_sandbox/faults`; unknown keys and wrong types raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError("send a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        values = dict(data)
        rates = values.get("status_rates", {})
        if not isinstance(rates, dict):
            raise ValueError('status_rates must be an object like {"503": 0.2}')
        try:
            values["status_rates"] = {int(k): v for k, v in rates.items()}
        except ValueError:
            raise ValueError("status_rates keys must be HTTP statuses") from None
        for name in ("methods", "routes"):
            items = values.get(name, ())
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"{name} must be a list of strings")
            values[name] = tuple(items)
        return cls(**values)


def _check_rate(name: str, rate: object) -> None:
    if not _is_number(rate) or not 0 <= rate <= 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a probability between 0 and 1")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FaultInjector:
    """The running state behind a `FaultConfig`: its random draws, the quota, requests in flight."""

    def __init__(
        self,
        config: FaultConfig,
        clock: SandboxClock,
        routes: Sequence[BaseRoute],  # Codat's routes, for filters by template
        active_companies: Callable[[], int],
    ) -> None:
        self.clock = clock
        self.routes = routes
        self.active_companies = active_companies  # Codat's ACCs: companies with a Linked connection
        self.in_flight: dict[str, int] = {}
        self.background: set[asyncio.Task[None]] = set()  # work still running, client gone
        self.day = clock.today()
        self.used_today = 0
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Switch to `config` now; the random sequence restarts from its seed."""
        self.config = config
        self.rng = random.Random(config.seed)

    def template(self, scope: Scope) -> str | None:
        """The route template ("/companies/{companyId}") the request's path matches."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return getattr(route, "path", None)
        return None

    def count_request(self) -> None:
        today = self.clock.today()
        if today != self.day:
            self.day, self.used_today = today, 0
        self.used_today += 1

    @property
    def daily_limit(self) -> int:
        if self.config.daily_quota is not None:
            return self.config.daily_quota
        return CODAT_DAILY_REQUESTS_PER_ACC * (1 + self.active_companies())

    def quota_reset(self) -> datetime:
        now = self.clock.now()
        return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    def rate_limit_headers(self) -> list[tuple[bytes, bytes]]:
        limit = self.daily_limit
        return [
            (b"x-rate-limit-limit", str(limit).encode()),
            (b"x-rate-limit-remaining", str(max(0, limit - self.used_today)).encode()),
            (b"x-rate-limit-reset", format_datetime(self.quota_reset()).encode()),
        ]

    def over_quota(self) -> bool:
        return self.used_today > self.daily_limit

    def seconds_until_reset(self) -> int:
        return max(1, math.ceil((self.quota_reset() - self.clock.now()).total_seconds()))

    def draw(self) -> str | None:
        """The fault for one matching request, if any: "429", "503", "timeout", "drop", ..."""
        config = self.config
        if config.fault_rate <= 0:
            return None
        roll = self.rng.random()
        outcomes: list[tuple[str, float]] = [
            (str(status), rate) for status, rate in sorted(config.status_rates.items())
        ]
        outcomes += [
            ("timeout", config.timeout_rate),
            ("drop", config.drop_rate),
            ("lost_response", config.lost_response_rate),
        ]
        for outcome, rate in outcomes:
            if roll < rate:
                return outcome
            roll -= rate
        return None

    def push_times_out(self) -> bool:
        """Whether a new write is to end TimedOut; drawn only when such faults are asked for."""
        rate = self.config.push_timeout_rate
        return rate > 0 and self.rng.random() < rate

    def push_timeout_lands(self) -> bool:
        """Whether a write that ends TimedOut still lands; drawn only when some are to be lost."""
        rate = self.config.push_timeout_lost_rate
        return not (rate > 0 and self.rng.random() < rate)

    def latency(self) -> float:
        config = self.config
        if config.latency_ms <= 0 and config.jitter_ms <= 0:
            return 0.0
        return (config.latency_ms + self.rng.uniform(0, config.jitter_ms)) / 1000

    async def aclose(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)


class RateLimitEdge:
    """The edge of Codat's API: the daily quota, concurrency per company, rate-limit headers."""

    def __init__(
        self, app: ASGIApp, injector: FaultInjector, path_of: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.injector = injector
        self.path_of = path_of  # the path below the sandbox's mount point

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        injector = self.injector
        injector.count_request()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if not h[0].startswith(b"x-rate-limit-")
                ]
                message = {**message, "headers": headers + injector.rate_limit_headers()}
            await send(message)

        if injector.over_quota():
            scope[FAULT_SCOPE_KEY] = "quota"
            await _error(send_with_headers, 429, injector.seconds_until_reset())
            return
        company = _company_of(self.path_of(scope))
        limit = injector.config.concurrency_limit
        busy = injector.in_flight.get(company, 0) if company is not None else 0
        if busy >= limit:
            scope[FAULT_SCOPE_KEY] = "concurrency"
            await _error(send_with_headers, 429, 1)
            return
        if company is not None:
            injector.in_flight[company] = injector.in_flight.get(company, 0) + 1
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if company is not None:
                injector.in_flight[company] -= 1
                if not injector.in_flight[company]:
                    del injector.in_flight[company]


class FaultMiddleware:
    """Injected faults, inside Codat's idempotency: their answers are kept like any other."""

    def __init__(
        self, app: ASGIApp, injector: FaultInjector, path_of: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.injector = injector
        self.path_of = path_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        injector = self.injector
        path = self.path_of(scope)
        template = injector.template(scope) if injector.config.routes else None
        if not injector.config.applies_to(scope["method"], path, template):
            await self.app(scope, receive, send)
            return
        delay = injector.latency()
        fault = injector.draw()
        if delay:
            await asyncio.sleep(delay)
        if fault is None:
            await self.app(scope, receive, send)
            return
        scope[FAULT_SCOPE_KEY] = fault
        if fault == "timeout":
            config = injector.config

            try:
                body = await read_body(receive)  # the client will be gone when the work runs
            except ClientGone:
                return

            async def replay() -> Message:
                return {"type": "http.request", "body": body, "more_body": False}

            async def still_running() -> None:
                await asyncio.sleep(config.timeout_seconds + config.still_running_seconds)
                await self.app(scope, replay, send)  # unanswered: kept for the key only

            task = asyncio.get_running_loop().create_task(still_running())
            injector.background.add(task)
            task.add_done_callback(injector.background.discard)
            scope[BACKGROUND_SCOPE_KEY] = task
            await asyncio.sleep(config.timeout_seconds)
            raise HeldTooLong("the Codat sandbox held the request and never answered")
        if fault == "drop":
            raise DroppedConnection("the Codat sandbox closed the connection without answering")
        if fault == "lost_response":
            await self.app(scope, receive, send)  # unanswered: kept for the key only
            raise DroppedConnection("the Codat sandbox did the work, then lost the answer")
        status = int(fault)
        retry_after = injector.config.retry_after_seconds if status == 429 else None
        await _error(send, status, retry_after)


class ClientGone(Exception):
    """The client went away before its request was whole: a server runs nothing of it."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body, read to its last part; `ClientGone` if it never came whole."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _error(send: Send, status: int, retry_after: int | None) -> None:
    body = json.dumps(error_message(status, _MESSAGES[status])).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _company_of(path: str) -> str | None:
    match = _COMPANY_PATH.match(path)
    return match.group(1) if match else None


class DropConnections:
    """Outermost layer under uvicorn: an unanswered fault closes the socket, sending nothing.

    uvicorn answers 500 to an app that raises; this closes the connection instead, as a network
    failure would. Elsewhere (httpx.ASGITransport) the exception itself reaches the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_unless_unanswered(message: Message) -> None:
            if scope.get(FAULT_SCOPE_KEY) not in UNANSWERED:
                await send(message)

        try:
            await self.app(scope, receive, send_unless_unanswered)
        except (DroppedConnection, HeldTooLong):
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None:
                raise
            transport.close()
            await asyncio.sleep(0)  # let the server see the connection is gone

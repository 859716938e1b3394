"""httpx transports for tests: deliver in-process (client timeouts kept, as on a socket), and
make Codat fail on demand."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.codat.client import InProcess


class LateASGITransport(InProcess):
    """An in-process transport whose app is set after the transport is made."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None, "LateASGITransport used before its app was set"
        return await super().handle_async_request(request)


class FaultyCodat(httpx.AsyncBaseTransport):
    """Forwards to the sandbox, except where a rule says to fail or to tamper."""

    def __init__(self) -> None:
        self.sandbox: Any = None
        self.down_status: int | None = None  # every call answers this status
        self.lose_response_for: Callable[[httpx.Request], bool] | None = None
        self.rewrite_link_host: str | None = None
        self.seen: list[tuple[str, str]] = []
        self.codat = InProcess()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if self.down_status is not None:
            body = {
                "statusCode": self.down_status,
                "service": "PublicApi",
                "error": "down",
                "correlationId": "test",
                "canBeRetried": "Unknown",
                "detailedErrorCode": 0,
            }
            return httpx.Response(self.down_status, json=body)
        self.codat.app = self.sandbox
        response = await self.codat.handle_async_request(request)
        if self.lose_response_for is not None and self.lose_response_for(request):
            await response.aread()
            raise httpx.ReadError("connection dropped after the request was handled")
        if self.rewrite_link_host and response.status_code < 300:
            await response.aread()
            data = response.json()
            if isinstance(data, dict) and "linkUrl" in data:
                data["linkUrl"] = f"https://{self.rewrite_link_host}/start?otp=999999"
                return httpx.Response(response.status_code, json=data)
            return httpx.Response(
                response.status_code,
                content=json.dumps(data).encode(),
                headers={"content-type": "application/json"},
            )
        return response

    async def aclose(self) -> None:
        await self.codat.aclose()


class WatchedCodat(FaultyCodat):
    """A FaultyCodat that can also run a step while Codat is handling a write."""

    def __init__(self) -> None:
        super().__init__()
        self.during_write: Callable[[httpx.Request], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.during_write is not None and request.method in ("POST", "PATCH", "DELETE"):
            step, self.during_write = self.during_write, None
            await step(request)
        return await super().handle_async_request(request)

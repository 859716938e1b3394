"""A request id for every HTTP request: the caller's `X-Request-ID` when it is a plain token,
else a new one. It is echoed back on the response and stamped on every log line written while
the request is served (`app.logs`)."""

from __future__ import annotations

import contextvars
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
# Anything else (too long, spaces, quotes, control characters) could forge or break log lines.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def request_id_from(offered: str | None) -> str:
    """The caller's id if it is safe to log and echo; otherwise a fresh one."""
    if offered is not None and _ACCEPTED.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: outermost, so even a request refused at the door has its id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        request_id = request_id_from(offered)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = current.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current.reset(token)

"""Typed dependencies: what a route may ask for. Only this module reads `app.state`.

The long-lived objects are built once in `app/services.py`; a route names the one it needs by
type (`Annotated[CustomerService, provided(CustomerService)]`). "ops" is an audience, not a
domain: `ops_router` gives a package its `/ops` prefix, a tag and the bearer-token check.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import DomainError, NotFound, Unauthorized, json_error
from app.models import ID_PATTERN
from app.settings import Settings

T = TypeVar("T")


def provided(kind: type[T]) -> Any:
    """A dependency on the process's one `kind` (its services, settings or Codat client)."""

    async def dependency(request: Request) -> T:  # a plain def would run on a thread
        found: T = request.app.state.services.provide(kind)
        return found

    return Depends(dependency)


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for reading; closed, never committed, before the response (writes go through
    a service method, which commits its own unit of work)."""
    async with request.app.state.services.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, provided(Settings)]
SessionDep = Annotated[AsyncSession, Depends(read_session, scope="function")]
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="The host app's customer id.")]
AccountId = Annotated[str, Path(pattern=ID_PATTERN, description="Our id of the bank account.")]


# --- ops: the bearer token ---------------------------------------------------------------


def ops_access_refused(settings: Settings, authorization: str) -> DomainError | None:
    """Bearer OPS_API_TOKEN, compared in constant time; /ops/ does not exist without one."""
    if settings.ops_api_token is None or not settings.ops_api_token.get_secret_value():
        return NotFound("Not Found")
    scheme, _, supplied = authorization.partition(" ")
    expected = settings.ops_api_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        return Unauthorized(
            "A valid ops bearer token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    return None


def require_ops_token(request: Request, settings: SettingsDep) -> None:
    refused = ops_access_refused(settings, request.headers.get("authorization", ""))
    if refused is not None:
        raise refused


OpsAuth = Depends(require_ops_token)


def ops_router(tag: str, **options: Any) -> APIRouter:
    """A router under `/ops`, for ops staff holding the bearer token."""
    return APIRouter(prefix="/ops", tags=[tag], dependencies=[OpsAuth], **options)


class OpsGate:
    """Checks the ops token before anything reads the body, so a stranger always gets 401."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        gated = path.startswith("/ops/") or (
            path == "/openapi.json" and self.settings.docs_mode == "ops"
        )
        if scope["type"] == "http" and gated:
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            refused = ops_access_refused(self.settings, authorization)
            if refused is not None:
                await json_error(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)

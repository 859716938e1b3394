"""FastAPI dependencies shared by the routes: settings, sessions, Codat, ops auth."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from app.codat.client import CodatClient
from app.db import session_scope
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(request.app.state.sessions):
        yield session


def get_codat(request: Request) -> CodatClient:
    return request.app.state.codat


def ops_access_refused(settings: Settings, authorization: str) -> HTTPException | None:
    """Bearer OPS_API_TOKEN, compared in constant time; /ops/ does not exist without one."""
    if settings.ops_api_token is None or not settings.ops_api_token.get_secret_value():
        return HTTPException(status_code=404, detail="Not Found")
    scheme, _, supplied = authorization.partition(" ")
    expected = settings.ops_api_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        return HTTPException(
            status_code=401,
            detail="A valid ops bearer token is required.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def require_ops_token(request: Request) -> None:
    refused = ops_access_refused(
        request.app.state.settings, request.headers.get("authorization", "")
    )
    if refused is not None:
        raise refused


class OpsGate:
    """Checks the ops token before anything reads the body, so a stranger always gets 401."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/ops/"):
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            refused = ops_access_refused(self.settings, authorization)
            if refused is not None:
                response = JSONResponse(
                    {"detail": refused.detail}, refused.status_code, headers=refused.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CodatDep = Annotated[CodatClient, Depends(get_codat)]
OpsAuth = Depends(require_ops_token)

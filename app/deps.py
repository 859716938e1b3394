"""FastAPI dependencies shared by the routes: settings, sessions, Codat, ops auth."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

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


def require_ops_token(request: Request) -> None:
    """Bearer OPS_API_TOKEN, compared in constant time; /ops/ does not exist without one."""
    settings: Settings = request.app.state.settings
    if settings.ops_api_token is None or not settings.ops_api_token.get_secret_value():
        raise HTTPException(status_code=404, detail="Not Found")
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    expected = settings.ops_api_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        raise HTTPException(
            status_code=401,
            detail="A valid ops bearer token is required.",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CodatDep = Annotated[CodatClient, Depends(get_codat)]
OpsAuth = Depends(require_ops_token)

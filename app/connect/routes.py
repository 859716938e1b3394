"""`/connect-bank-feeds`: the host app's Connect to QuickBooks button lands here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from app import metrics
from app.connect.service import ConnectService
from app.deps import ops_router, provided
from app.errors import DomainError, Unauthorized
from app.pages import BROWSER_HEADERS

router = APIRouter(include_in_schema=False)
ops_connect_router = ops_router("connect")
ConnectDep = Annotated[ConnectService, provided(ConnectService)]


@router.get("/connect-bank-feeds")
async def connect_by_link(
    request: Request, connect: ConnectDep, token: str | None = None
) -> Response:
    return await _connect(request, connect, token, status_code=302)


@router.post("/connect-bank-feeds")
async def connect_by_form(
    request: Request,
    connect: ConnectDep,
    token: Annotated[str | None, Form(max_length=4096)] = None,
) -> Response:
    return await _connect(request, connect, token, status_code=303)


async def _connect(
    request: Request, connect: ConnectService, token: str | None, status_code: int
) -> Response:
    try:
        if request.headers.get("authorization"):
            # The browser route never accepts the ops token (or any other credential).
            raise Unauthorized("The connect page takes no Authorization header.")
        claims = connect.verify(token)
        request.state.lang = claims.lang  # every page of this click speaks the token's language
        link_url = await connect.click(claims)
    except DomainError as exc:
        metrics.click(exc.page)  # the page the customer sees instead
        raise
    except Exception:
        metrics.click("error")
        raise
    metrics.click("redirected")
    return RedirectResponse(link_url, status_code=status_code, headers=BROWSER_HEADERS)


class ConnectUrlRequest(BaseModel):
    lang: str | None = Field(default=None, pattern="^(en|fr)$")
    lifetime_seconds: int = Field(default=600, ge=30, le=900)


class ConnectUrlResponse(BaseModel):
    url: str
    expires_at: datetime


@ops_connect_router.post(
    "/customers/{customer_id}/connect-url",
    response_model=ConnectUrlResponse,
    responses={404: {"description": "No such customer"}},
)
async def create_connect_url(
    customer_id: str, connect: ConnectDep, body: ConnectUrlRequest | None = None
) -> ConnectUrlResponse:
    """A single-use connect URL for the customer, valid for up to 15 minutes."""
    body = body or ConnectUrlRequest()
    url, expires_at = await connect.connect_url(
        customer_id, lang=body.lang, lifetime=timedelta(seconds=body.lifetime_seconds)
    )
    return ConnectUrlResponse(url=url, expires_at=expires_at)

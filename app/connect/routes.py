"""`/connect-bank-feeds`: the host app's Connect to QuickBooks button lands here, and the
host app's page reads the customer's connection status with the button's token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from app import metrics
from app.connect.service import ConnectService
from app.deps import SettingsDep, ops_router, provided
from app.errors import OPS_RESPONSES, DomainError, ErrorOut, Forbidden, Unauthorized
from app.events.service import EventService
from app.events.status import ConnectionStatus
from app.pages import BROWSER_HEADERS

router = APIRouter(include_in_schema=False)
status_router = APIRouter(tags=["host app"])
ops_connect_router = ops_router("connect", responses=OPS_RESPONSES)
ConnectDep = Annotated[ConnectService, provided(ConnectService)]
EventsDep = Annotated[EventService, provided(EventService)]
# The host app's page may read the status from its own origin; nothing may keep it.
STATUS_HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


# A prefetch is answered so that the browser does not keep it (425 Too Early: not a 2xx),
# and nothing is spent or called: the customer's own click comes after.
PREFETCH_ANSWER = 425


@router.get("/connect-bank-feeds")
async def connect_by_link(
    request: Request, connect: ConnectDep, token: str | None = None
) -> Response:
    if is_prefetch(request):
        metrics.click("prefetch")
        return Response(status_code=PREFETCH_ANSWER, headers=BROWSER_HEADERS)
    return await _connect(request, connect, token, status_code=302)


@router.post("/connect-bank-feeds")
async def connect_by_form(
    request: Request,
    connect: ConnectDep,
    settings: SettingsDep,
    token: Annotated[str | None, Form(max_length=4096)] = None,
) -> Response:
    """The recommended button: a form on the host app's page (HOST_APP_ORIGINS) posts the
    token. A form from any other origin, or with no Origin at all, is refused."""
    origin = request.headers.get("origin", "").rstrip("/").lower()
    if origin not in settings.form_origins:
        metrics.click("request_invalid")
        raise Forbidden("The connect form must be sent from the host app's pages.")
    return await _connect(request, connect, token, status_code=303)


def is_prefetch(request: Request) -> bool:
    """A browser's prefetch or prerender (`Sec-Purpose`, or the older `Purpose`)."""
    purposes = (request.headers.get("sec-purpose", ""), request.headers.get("purpose", ""))
    return any("prefetch" in p.lower() or "prerender" in p.lower() for p in purposes)


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


@status_router.get(
    "/connect-bank-feeds/status",
    response_model=ConnectionStatus,
    responses={
        401: {"model": ErrorOut, "description": "The connect token is not valid."},
        404: {"model": ErrorOut, "description": "No such customer."},
    },
)
async def connection_status(
    connect: ConnectDep,
    events: EventsDep,
    response: Response,
    token: Annotated[str | None, Query(max_length=4096)] = None,
) -> ConnectionStatus:
    """The customer's connection status, for the host app's page: the same signed connect
    token as the button, which this call does not use up (its `jti` stays unspent)."""
    with _status_headers():
        claims = connect.verify(token)
        status = await events.connection_status(claims.customer_id)
    response.headers.update(STATUS_HEADERS)
    return status


@contextlib.contextmanager
def _status_headers() -> Iterator[None]:
    """A refusal carries the status headers too, so the host app's page can read it."""
    try:
        yield
    except DomainError as exc:
        exc.headers = {**(exc.headers or {}), **STATUS_HEADERS}
        raise


class ConnectUrlRequest(BaseModel):
    lang: str | None = Field(default=None, pattern="^(en|fr)$")
    lifetime_seconds: int = Field(default=600, ge=30, le=900)


class ConnectUrlResponse(BaseModel):
    url: str
    expires_at: datetime


@ops_connect_router.post(
    "/customers/{customer_id}/connect-url",
    response_model=ConnectUrlResponse,
    responses={404: {"model": ErrorOut, "description": "No such customer"}},
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

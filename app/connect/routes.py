"""`/connect-bank-feeds`: the host app's Connect to QuickBooks button lands here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from app.codat.errors import CodatError
from app.connect.service import CodatUnavailable, ConnectRefused, ConnectService, UnsafeLinkUrl
from app.connect.tokens import (
    ConnectClaims,
    InvalidConnectToken,
    connect_url,
    mint_connect_token,
    verify_connect_token,
)
from app.customers.repository import get_customer
from app.db import utcnow
from app.deps import OpsAuth, SessionDep, SettingsDep
from app.models import UsedConnectToken
from app.pages import BROWSER_HEADERS, message_page, pick_language

log = logging.getLogger("app.connect")
router = APIRouter(include_in_schema=False)
ops_router = APIRouter(prefix="/ops", tags=["connect"], dependencies=[OpsAuth])


@router.get("/connect-bank-feeds")
async def connect_by_link(request: Request, token: str | None = None) -> Response:
    return await _connect(request, token, status_code=302)


@router.post("/connect-bank-feeds")
async def connect_by_form(
    request: Request, token: Annotated[str | None, Form(max_length=4096)] = None
) -> Response:
    return await _connect(request, token, status_code=303)


async def _connect(request: Request, token: str | None, status_code: int) -> Response:
    settings = request.app.state.settings
    if request.headers.get("authorization"):
        # The browser route never accepts the ops token (or any other credential).
        return message_page(request, "token_invalid", 401, pick_language(request))
    try:
        claims = verify_connect_token(settings.connect_token_secret.get_secret_value(), token)
    except InvalidConnectToken as exc:
        log.info("connect token refused: %s", exc)
        return message_page(request, "token_invalid", 401, pick_language(request))
    lang = pick_language(request, claims.lang)
    if claims.jti is not None and not await _spend(request, claims):
        log.info("connect token replayed for customer %s", claims.customer_id)
        return message_page(request, "token_invalid", 401, lang)
    service: ConnectService = request.app.state.connect_service
    try:
        link_url = await service.connect(claims.customer_id)
    except ConnectRefused as exc:
        return message_page(request, exc.reason, exc.status_code, lang)
    except (CodatUnavailable, UnsafeLinkUrl) as exc:
        log.warning("connect for customer %s failed: %s", claims.customer_id, type(exc).__name__)
        key = "codat_unavailable" if isinstance(exc, CodatUnavailable) else "codat_failed"
        return message_page(request, key, 503 if key == "codat_unavailable" else 502, lang)
    except CodatError as exc:
        log.warning("connect for customer %s: Codat %s", claims.customer_id, exc)
        if exc.transient:
            return message_page(request, "codat_unavailable", 503, lang)
        return message_page(request, "codat_failed", 502, lang)
    return RedirectResponse(link_url, status_code=status_code, headers=BROWSER_HEADERS)


async def _spend(request: Request, claims: ConnectClaims) -> bool:
    """Record the token's jti; False if it was already used."""
    assert claims.jti is not None
    async with request.app.state.sessions() as session:
        session.add(
            UsedConnectToken(
                jti=claims.jti,
                customer_id=claims.customer_id,
                expires_at=claims.expires_at,
                used_at=utcnow(),
            )
        )
        try:
            await session.commit()
        except IntegrityError:
            return False
    return True


class ConnectUrlRequest(BaseModel):
    lang: str | None = Field(default=None, pattern="^(en|fr)$")
    lifetime_seconds: int = Field(default=600, ge=30, le=900)


class ConnectUrlResponse(BaseModel):
    url: str
    expires_at: datetime


@ops_router.post(
    "/customers/{customer_id}/connect-url",
    response_model=ConnectUrlResponse,
    responses={404: {"description": "No such customer"}},
)
async def create_connect_url(
    customer_id: str,
    session: SessionDep,
    settings: SettingsDep,
    body: ConnectUrlRequest | None = None,
) -> ConnectUrlResponse:
    """A single-use connect URL for the customer, valid for up to 15 minutes."""
    if await get_customer(session, customer_id) is None:
        raise HTTPException(status_code=404, detail=f"Customer {customer_id!r} not found.")
    body = body or ConnectUrlRequest()
    now = datetime.now(UTC).replace(microsecond=0)
    lifetime = timedelta(seconds=body.lifetime_seconds)
    assert settings.connect_token_secret is not None
    token = mint_connect_token(
        settings.connect_token_secret.get_secret_value(),
        customer_id,
        lang=body.lang,
        lifetime=lifetime,
        now=now,
    )
    return ConnectUrlResponse(
        url=connect_url(settings.public_base_url, token), expires_at=now + lifetime
    )

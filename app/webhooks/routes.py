"""POST /webhooks/codat (verify, store once, answer at once) and the ops view of the inbox."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from app.codat.webhooks import InvalidSecret, WebhookRejected, signing_key, verify
from app.db import utcnow
from app.deps import OpsAuth, SessionDep
from app.services import inbox_signal
from app.settings import Settings
from app.webhooks import inbox
from app.webhooks.inbox import MAX_WEBHOOK_ID, MalformedEnvelope, parse_envelope

log = logging.getLogger("app.webhooks")

router = APIRouter(tags=["webhooks"])
ops_router = APIRouter(prefix="/ops", tags=["webhooks"], dependencies=[OpsAuth])

EventStatus = Literal["pending", "handled", "ignored", "unmatched", "failed"]


@router.post(
    "/webhooks/codat",
    status_code=202,
    responses={
        200: {"description": "A redelivery of an event already stored"},
        400: {"description": "Missing signature headers, or not a Codat envelope"},
        401: {"description": "Bad signature, or a timestamp more than 5 minutes off"},
        404: {"description": "No CODAT_WEBHOOK_SECRET is configured"},
    },
)
async def receive_codat_webhook(request: Request) -> JSONResponse:
    """Codat's webhooks: verified on the raw body, stored once per `webhook-id`, handled later."""
    settings: Settings = request.app.state.settings
    secret = settings.codat_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise HTTPException(status_code=404, detail="Not Found")
    try:
        key = signing_key(secret.get_secret_value())
    except InvalidSecret:
        log.error("CODAT_WEBHOOK_SECRET is not whsec_<base64>: refusing webhooks")
        return JSONResponse({"detail": "The webhook receiver is misconfigured."}, 500)
    body = await request.body()
    try:
        webhook_id = verify(key, request.headers, body, utcnow())
        if len(webhook_id) > MAX_WEBHOOK_ID:
            raise MalformedEnvelope("webhook-id is too long")
        envelope = parse_envelope(body)
    except WebhookRejected as exc:
        log.warning("webhook refused: %s", exc)
        return JSONResponse({"detail": str(exc)}, exc.status_code)
    except MalformedEnvelope as exc:
        log.warning("webhook refused: %s", exc)
        return JSONResponse({"detail": str(exc)}, 400)
    async with request.app.state.sessions() as session:
        stored = await inbox.accept(session, webhook_id, envelope, utcnow())
        await session.commit()
    if not stored:
        return JSONResponse({"status": "duplicate"}, 200)
    inbox_signal(request.app).set()
    return JSONResponse({"status": "accepted"}, 202)


class WebhookEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: str
    event_type: str
    generated_date: datetime | None
    company_id: str | None
    customer_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    received_at: datetime
    handled_at: datetime | None
    payload: dict[str, Any]


class WebhookEventList(BaseModel):
    events: list[WebhookEventOut]


@ops_router.get("/webhook-events", response_model=WebhookEventList)
async def list_webhook_events(
    session: SessionDep,
    status: EventStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WebhookEventList:
    """Stored Codat events, newest first; `status=unmatched` lists those naming no customer.

    Payloads are as Codat sent them, less Link URLs (they carry one-time passwords).
    """
    events = await inbox.list_events(session, status, event_type, limit)
    return WebhookEventList(events=[WebhookEventOut.model_validate(e) for e in events])


@ops_router.post("/webhook-events/{event_id}/retry", status_code=202)
async def retry_webhook_event(
    event_id: int, request: Request, session: SessionDep
) -> dict[str, str]:
    """Handle a settled event again (say, an unmatched one once its customer exists)."""
    if not await inbox.requeue(session, event_id, utcnow()):
        raise HTTPException(status_code=404, detail="No settled webhook event with that id.")
    await session.commit()
    inbox_signal(request.app).set()
    return {"status": "queued"}


router.include_router(ops_router)  # one router for app/main.py to include

"""POST /webhooks/codat (verify, store once, answer at once) and the ops view of the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from app.deps import ops_router, provided
from app.errors import NOT_FOUND, OPS_RESPONSES
from app.models import MAX_ROW_ID
from app.webhooks.inbox import EventStatus
from app.webhooks.service import WebhookService

router = APIRouter(tags=["webhooks"])
ops_inbox_router = ops_router("webhooks", responses=OPS_RESPONSES)
WebhooksDep = Annotated[WebhookService, provided(WebhookService)]


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
async def receive_codat_webhook(request: Request, webhooks: WebhooksDep) -> JSONResponse:
    """Codat's webhooks: verified on the raw body, stored once per `webhook-id`, handled later."""
    if not await webhooks.receive(request.headers, await request.body()):
        return JSONResponse({"status": "duplicate"}, 200)
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


@ops_inbox_router.get("/webhook-events", response_model=WebhookEventList)
async def list_webhook_events(
    webhooks: WebhooksDep,
    status: EventStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WebhookEventList:
    """Stored Codat events, newest first; `status=unmatched` lists those naming no customer.

    Payloads are as Codat sent them, less Link URLs (they carry one-time passwords).
    """
    events = await webhooks.events(status, event_type, limit)
    return WebhookEventList(events=[WebhookEventOut.model_validate(e) for e in events])


@ops_inbox_router.post("/webhook-events/{event_id}/retry", status_code=202, responses=NOT_FOUND)
async def retry_webhook_event(
    event_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], webhooks: WebhooksDep
) -> dict[str, str]:
    """Handle a settled event again (say, an unmatched one once its customer exists)."""
    await webhooks.retry(event_id)
    return {"status": "queued"}


router.include_router(ops_inbox_router)  # one router for app/main.py to include

"""The demo host app's event receiver: it verifies each event as a host app would, keeps the
latest in memory, and its page shows them as they arrive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from standardwebhooks import Webhook, WebhookVerificationError

from app.db import utcnow
from app.demo.inbox import DemoInbox
from app.demo.seed import DEMO_ENDPOINT
from app.deps import SessionDep, provided
from app.errors import NotFound, Unauthorized
from app.events.deliveries import signing_secrets
from app.models import EventEndpoint

router = APIRouter(include_in_schema=False)
InboxDep = Annotated[DemoInbox, provided(DemoInbox)]

SCRIPT = Path(__file__).parent / "static" / "events.js"


@router.post("/demo/events")
async def receive_event(request: Request, session: SessionDep, inbox: InboxDep) -> Response:
    # This demo shares the service's database, so it reads its secret there; a real host app
    # keeps the secret it was shown when it registered.
    endpoint = await session.get(EventEndpoint, DEMO_ENDPOINT)
    if endpoint is None:
        raise NotFound("The demo host app is not registered for events.")
    body = await request.body()
    headers = dict(request.headers)
    for secret in signing_secrets(endpoint, utcnow()):
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            continue
        event = json.loads(body)
        inbox.add(_summary(event))
        return Response(status_code=204)
    raise Unauthorized("The event's signature is not valid.")


@router.get("/demo/events")
async def list_events(inbox: InboxDep) -> JSONResponse:
    return JSONResponse({"events": list(inbox.events)}, headers={"Cache-Control": "no-store"})


@router.get("/demo/events.js")
async def events_script() -> FileResponse:
    return FileResponse(SCRIPT, media_type="text/javascript")


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data") or {}
    detail = {
        "customer.connected": data.get("connection_status"),
        "customer.disconnected": data.get("connection_status"),
        "customer.needs_action": ", ".join(data.get("reasons") or []),
        "account.connected": data.get("account_id"),
        "account.disconnected": f"{data.get('account_id')} ({data.get('account_status')})",
    }.get(event.get("type", ""), f"{data.get('count')} transaction(s)")
    return {
        "id": event.get("id"),
        "type": event.get("type"),
        "timestamp": event.get("timestamp"),
        "customer_id": data.get("customer_id"),
        "account_id": data.get("account_id"),
        "account_status": data.get("account_status"),
        "detail": detail,
        "status": data.get("status"),
    }

"""The demo host app's event receiver: it verifies each event as a host app would, keeps the
latest in memory, and its page shows them as they arrive."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from standardwebhooks import Webhook, WebhookVerificationError

from app.db import utcnow
from app.demo.seed import DEMO_ENDPOINT
from app.deps import SessionDep
from app.events.deliveries import signing_secrets
from app.models import EventEndpoint

router = APIRouter(include_in_schema=False)

SCRIPT = Path(__file__).parent / "static" / "events.js"
KEPT = 50


class DemoInbox:
    """The events received, newest last; each event once, however often it is delivered."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=KEPT)

    def add(self, event: dict[str, Any]) -> bool:
        if any(e["id"] == event["id"] for e in self.events):
            return False
        self.events.append(event)
        return True


def demo_inbox(request: Request) -> DemoInbox:
    inbox: DemoInbox | None = getattr(request.app.state, "demo_inbox", None)
    if inbox is None:
        inbox = request.app.state.demo_inbox = DemoInbox()
    return inbox


@router.post("/demo/events")
async def receive_event(request: Request, session: SessionDep) -> Response:
    # This demo shares the service's database, so it reads its secret there; a real host app
    # keeps the secret it was shown when it registered.
    endpoint = await session.get(EventEndpoint, DEMO_ENDPOINT)
    if endpoint is None:
        return JSONResponse({"detail": "not registered"}, 404)
    body = await request.body()
    headers = dict(request.headers)
    for secret in signing_secrets(endpoint, utcnow()):
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            continue
        event = json.loads(body)
        demo_inbox(request).add(_summary(event))
        return Response(status_code=204)
    return JSONResponse({"detail": "bad signature"}, 401)


@router.get("/demo/events")
async def list_events(request: Request) -> JSONResponse:
    return JSONResponse(
        {"events": list(demo_inbox(request).events)}, headers={"Cache-Control": "no-store"}
    )


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

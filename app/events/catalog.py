"""The event types, the envelope every event shares, and each type's `data`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

CUSTOMER_CONNECTED = "customer.connected"
CUSTOMER_DISCONNECTED = "customer.disconnected"
CUSTOMER_NEEDS_ACTION = "customer.needs_action"
ACCOUNT_CONNECTED = "account.connected"
ACCOUNT_DISCONNECTED = "account.disconnected"
TRANSACTIONS_PUSHED = "transactions.pushed"
TRANSACTIONS_HELD = "transactions.held"
TRANSACTIONS_REJECTED = "transactions.rejected"

EventType = Literal[
    "customer.connected",
    "customer.disconnected",
    "customer.needs_action",
    "account.connected",
    "account.disconnected",
    "transactions.pushed",
    "transactions.held",
    "transactions.rejected",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
TRANSACTION_OUTCOMES = {
    "pushed": TRANSACTIONS_PUSHED,
    "held": TRANSACTIONS_HELD,
    "rejected": TRANSACTIONS_REJECTED,
}
# An account gone from our database is reported with this status.
DELETED = "deleted"


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def envelope(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The JSON body of an event, in Standard Webhooks' shape: id, type, timestamp, data."""
    body = {"id": event_id, "type": event_type, "timestamp": json_time(at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def json_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""The sandbox's webhook consumers: Codat's `/webhooks` endpoints, checked as strictly as Codat
would, and deliveries only for the event types a consumer of the webhook URL subscribes to."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from app.sandbox.webhook_consumers import EVENT_TYPES, MAX_CONSUMERS
from tests.sandbox.sandbox_support import ConnectionRef, WebhookReceiver

RECEIVER_URL = "http://receiver/webhooks/codat"  # the sandbox's configured webhook URL


async def consumers(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/webhooks")
    assert response.status_code == 200
    return list(response.json()["results"])


async def test_the_webhook_url_starts_subscribed_to_every_event_type(
    api: httpx.AsyncClient,
) -> None:
    [configured] = await consumers(api)
    assert configured["url"] == RECEIVER_URL and configured["disabled"] is False
    assert set(configured["eventTypes"]) == EVENT_TYPES
    assert "bankTransactions.write.successful" in EVENT_TYPES


async def test_create_list_delete(api: httpx.AsyncClient) -> None:
    body = {"url": "https://bank.example.com/hook", "eventTypes": ["connection.connected"]}
    created = await api.post("/webhooks", json=body)
    assert created.status_code == 201
    consumer = created.json()
    assert consumer["url"] == body["url"] and consumer["eventTypes"] == ["connection.connected"]
    assert consumer["disabled"] is False and consumer["companyTags"] is None
    assert consumer["id"] in {c["id"] for c in await consumers(api)}

    assert (await api.delete(f"/webhooks/{consumer['id']}")).status_code == 204
    assert consumer["id"] not in {c["id"] for c in await consumers(api)}
    assert (await api.delete(f"/webhooks/{consumer['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "item"),
    [
        ({"eventTypes": ["connection.connected"]}, "url"),
        ({"url": "https://x.example/h"}, "eventTypes"),
        ({"url": "https://x.example/h", "eventTypes": []}, "eventTypes"),
        ({"url": "not a url", "eventTypes": ["connection.connected"]}, "url"),
        ({"url": "ftp://x.example/h", "eventTypes": ["connection.connected"]}, "url"),
        ({"url": "https://x.example/h", "eventTypes": ["DataSyncCompleted"]}, "eventTypes[0]"),
        ({"url": "https://x.example/h", "eventTypes": ["connection.created", 7]}, "eventTypes[1]"),
        (
            {"url": "https://x.example/h", "eventTypes": ["company.created", "company.created"]},
            "eventTypes[1]",
        ),
        (
            {"url": "https://x.example/h", "eventTypes": ["read.completed"], "disabled": "no"},
            "disabled",
        ),
        (
            {"url": "https://x.example/h", "eventTypes": ["read.completed"], "companyTags": ["x"]},
            "companyTags[0]",
        ),
        (
            {"url": "https://x.example/h", "eventTypes": ["read.completed"], "secret": "s"},
            "secret",
        ),
    ],
)
async def test_a_bad_body_is_400_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], item: str
) -> None:
    response = await api.post("/webhooks", json=body)
    assert response.status_code == 400
    assert item in [e["itemId"] for e in response.json()["validation"]["errors"]]
    assert len(await consumers(api)) == 1


async def test_at_most_fifty_consumers(api: httpx.AsyncClient) -> None:
    body = {"url": "https://bank.example.com/hook", "eventTypes": ["connection.connected"]}
    for _ in range(MAX_CONSUMERS - 1):
        assert (await api.post("/webhooks", json=body)).status_code == 201
    refused = await api.post("/webhooks", json=body)
    assert refused.status_code == 400 and "50" in refused.json()["error"]
    assert len(await consumers(api)) == MAX_CONSUMERS


async def test_events_go_only_where_a_consumer_subscribes(
    api: httpx.AsyncClient, new_connection: Any, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    [configured] = await consumers(api)
    narrow = {"url": RECEIVER_URL, "eventTypes": ["connection.deleted"]}
    assert (await api.post("/webhooks", json=narrow)).status_code == 201
    assert (await api.delete(f"/webhooks/{configured['id']}")).status_code == 204

    ref: ConnectionRef = await new_connection()  # connection.created: nobody subscribes
    assert (await api.delete(ref.path)).status_code == 200  # connection.deleted
    await sandbox.webhooks.drain()

    # Svix may deliver a message twice (the same id): count messages, not deliveries.
    messages = {e["id"]: e["eventType"] for e in receiver.envelopes()}
    assert list(messages.values()) == ["connection.deleted"]


async def test_a_disabled_consumer_gets_nothing(
    api: httpx.AsyncClient, new_connection: Any, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    [configured] = await consumers(api)
    off = {"url": RECEIVER_URL, "eventTypes": sorted(EVENT_TYPES), "disabled": True}
    assert (await api.post("/webhooks", json=off)).status_code == 201
    assert (await api.delete(f"/webhooks/{configured['id']}")).status_code == 204

    await new_connection()
    await sandbox.webhooks.drain()
    assert receiver.requests == []

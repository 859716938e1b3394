"""Signed webhooks: what the sandbox sends, how it signs and retries them, out of order and
more than once, as Svix allows."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_oas import assert_valid
from tests.sandbox.sandbox_pages import Page, path_of
from tests.sandbox.sandbox_support import (
    WEBHOOK_SECRET,
    ConnectionRef,
    WebhookReceiver,
    get_credentials,
)

SCHEMAS = {
    "connection": ("platform", "/components/schemas/ConnectionWebhook"),
    "bankFeeds": ("bank-feeds", "/components/schemas/SourceAccountWebhook"),
}


def verify(headers: dict[str, str], body: bytes) -> None:
    """Standard Webhooks verification, written out as a receiver would."""
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s[:3] == "v1,"]
    assert any(hmac.compare_digest(expected, s) for s in offered), "signature does not verify"
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 300


def assert_codat_envelope(envelope: dict[str, Any]) -> None:
    spec, pointer = SCHEMAS[envelope["eventType"].split(".")[0]]
    assert_valid(spec, pointer, envelope)
    assert set(envelope) == {"id", "eventType", "generatedDate", "payload"}
    assert envelope["generatedDate"].endswith("Z")


async def test_create_connection_sends_a_signed_connection_created(
    api: httpx.AsyncClient, new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    ref: ConnectionRef = await new_connection()

    await sandbox.webhooks.drain()

    headers, body = receiver.requests[0]
    assert {h["webhook-id"] for h, _ in receiver.requests} == {headers["webhook-id"]}
    verify(headers, body)
    assert headers["webhook-id"].startswith("msg_")
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert_codat_envelope(envelope)
    assert envelope["eventType"] == "connection.created"
    payload = envelope["payload"]
    assert payload["connection"]["id"] == ref.connection_id
    assert payload["connection"]["status"] == "PendingAuth"
    assert payload["referenceCompany"]["id"] == ref.company_id
    assert payload["referenceCompany"]["name"] == "Acme Hardware"


async def test_a_tampered_body_fails_verification(
    new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    await new_connection()
    await sandbox.webhooks.drain()
    headers, body = receiver.requests[0]

    with pytest.raises(AssertionError):
        verify(headers, body.replace(b"PendingAuth", b"Linked"))


async def test_the_connect_journey_sends_every_codat_event_at_least_once(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    new_connection,
    sandbox: Sandbox,
    receiver: WebhookReceiver,
) -> None:
    ref: ConnectionRef = await new_connection(accounts=2)
    username, password = await get_credentials(browser, ref.link_url)
    sign_in = Page((await browser.get("/qbo")).text).form_with_button("Sign in")
    choose = Page(
        (
            await browser.post(
                path_of(sign_in.action),
                data={**sign_in.fields, "username": username, "password": password},
            )
        ).text
    )
    connect = choose.form_with_button("Connect")
    connected = Page(
        (
            await browser.post(
                path_of(connect.action),
                data={**connect.fields, "account": list(connect.checkboxes.values())},
            )
        ).text
    )
    for _ in range(2):
        disconnect = connected.form_with_button("Disconnect")
        connected = Page(
            (await browser.post(path_of(disconnect.action), data=disconnect.fields)).text
        )
    sandbox.clock.advance(sandbox.config.disconnect_delay)
    await api.delete(ref.path)

    await sandbox.webhooks.drain()

    by_id: dict[str, dict[str, Any]] = {}
    for headers, body in receiver.requests:
        verify(headers, body)
        envelope = json.loads(body)
        assert_codat_envelope(envelope)
        assert by_id.setdefault(headers["webhook-id"], envelope) == envelope  # a resend: same
    # In the order Codat generated them; they may have arrived in another, some twice.
    envelopes = [d.envelope for d in sandbox.webhooks.deliveries]
    assert sorted(e["id"] for e in envelopes) == sorted(e["id"] for e in by_id.values())
    assert [e["eventType"] for e in envelopes] == [
        "connection.created",
        "connection.connected",
        "bankFeeds.sourceAccount.connected",
        "bankFeeds.sourceAccount.connected",
        "bankFeeds.sourceAccount.disconnected",
        "bankFeeds.sourceAccount.disconnected",
        "connection.disconnected",
        "connection.deleted",
    ]
    connected_event = envelopes[2]["payload"]
    assert connected_event["connectionId"] == ref.connection_id
    assert connected_event["companyId"] == ref.company_id
    assert connected_event["sourceAccount"]["status"] == "connected"
    assert connected_event["sourceAccount"]["feedStartDate"]
    assert envelopes[1]["payload"]["connection"]["status"] == "Linked"
    assert envelopes[6]["payload"]["connection"]["status"] == "Unlinked"
    assert len({e["id"] for e in envelopes}) == len(envelopes)


@pytest.mark.parametrize(
    "config_overrides",
    [{"webhook_max_delay": 0.2, "webhook_duplicate_rate": 0.5, "webhook_seed": 7}],
)
async def test_webhooks_arrive_out_of_order_and_some_twice(
    api: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    company = (await api.post("/companies", json={"name": "Acme"})).json()
    for _ in range(12):
        created = await api.post(
            f"/companies/{company['id']}/connections", json={"platformKey": "hcws"}
        )
        assert created.status_code == 200

    await sandbox.webhooks.drain()

    emitted = [d.message_id for d in sandbox.webhooks.deliveries]
    arrived = [headers["webhook-id"] for headers, _ in receiver.requests]
    first_arrivals = list(dict.fromkeys(arrived))
    assert sorted(first_arrivals) == sorted(emitted)  # every message, at least once
    assert first_arrivals != emitted  # not in the order they were generated
    assert len(arrived) > len(emitted)  # some more than once, under the same webhook-id
    twice = [d for d in sandbox.webhooks.deliveries if d.duplicated]
    assert twice and all(arrived.count(d.message_id) == 2 for d in twice)


@pytest.mark.parametrize("receiver", [WebhookReceiver(fail_first=2)])
async def test_failed_deliveries_are_retried_with_the_same_webhook_id(
    new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    await new_connection()

    await sandbox.webhooks.drain()

    assert len(receiver.requests) in (3, 4)  # a 4th when Svix sends the message again
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 1
    for headers, body in receiver.requests:
        verify(headers, body)
    [delivery] = sandbox.webhooks.deliveries
    assert delivery.delivered
    assert [a.status_code for a in delivery.attempts][:3] == [500, 500, 204]


@pytest.mark.parametrize("receiver", [WebhookReceiver(fail_first=100)])
async def test_retries_are_bounded(
    new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    await new_connection()

    await sandbox.webhooks.drain()

    [delivery] = sandbox.webhooks.deliveries
    assert not delivery.delivered
    assert delivery.finished
    assert len(delivery.attempts) == 1 + len(sandbox.config.webhook_retry_delays)


class _FlakyTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)


@pytest.mark.parametrize("config_overrides", [{"webhook_transport": _FlakyTransport()}])
async def test_connection_errors_are_retried(new_connection, sandbox: Sandbox) -> None:
    await new_connection()

    await sandbox.webhooks.drain()

    [delivery] = sandbox.webhooks.deliveries
    assert delivery.delivered
    assert delivery.attempts[0].error is not None
    assert delivery.attempts[1].status_code == 200


class _BlockedReceiver:
    """Holds every webhook until released: the API must answer meanwhile."""

    def __init__(self) -> None:
        self.release: asyncio.Event | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.release is not None
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


_blocked = _BlockedReceiver()


@pytest.mark.parametrize(
    "config_overrides", [{"webhook_transport": httpx.ASGITransport(app=_blocked)}]
)
async def test_delivery_never_holds_up_the_api_response(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    _blocked.release = asyncio.Event()
    company = (await api.post("/companies", json={"name": "Acme"})).json()

    response = await asyncio.wait_for(
        api.post(f"/companies/{company['id']}/connections", json={"platformKey": "hcws"}), 2
    )

    assert response.status_code == 200
    assert not sandbox.webhooks.deliveries[0].finished
    _blocked.release.set()
    await sandbox.webhooks.drain()
    assert sandbox.webhooks.deliveries[0].delivered


@pytest.mark.parametrize("config_overrides", [{"webhook_url": None, "webhook_secret": None}])
async def test_no_webhooks_without_a_url_and_secret(
    new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    await new_connection()

    await sandbox.webhooks.drain()

    assert sandbox.webhooks.deliveries == []
    assert receiver.requests == []


async def test_deleting_a_company_sends_company_deleted_and_drops_its_connections(
    api: httpx.AsyncClient, new_connection, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    ref: ConnectionRef = await new_connection()

    deleted = await api.delete(f"/companies/{ref.company_id}")
    connection = await api.get(ref.path)
    listed = await api.get(f"/companies/{ref.company_id}/connections")
    await sandbox.webhooks.drain()

    assert deleted.status_code == 204
    assert connection.status_code == 404 and listed.status_code == 404
    assert not any(
        c.id == ref.connection_id
        for co in sandbox.store.companies.values()
        for c in co.connections.values()
    )
    events = {json.loads(body)["eventType"]: json.loads(body) for _, body in receiver.requests}
    event = events["company.deleted"]
    assert_valid("platform", "/components/schemas/CompanyWebhook", event)
    assert event["payload"]["id"] == ref.company_id
    assert "dataConnections" not in event["payload"]

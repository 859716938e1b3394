"""POST /webhooks/codat: what is refused (and leaves no trace), what is stored, and only once."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import SecretStr

from tests.conftest import OPS_TOKEN, WEBHOOK_SECRET, Service
from tests.webhooks.support import (
    at,
    connection_payload,
    deliver,
    envelope,
    events,
    feed,
    running,
    seed_feed,
    signed_headers,
)

OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LWtleS1mb3ItdGVzdHM="


def body_of(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


async def post(service: Service, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    response = await service.client.post("/webhooks/codat", content=body, headers=headers)
    return response.status_code, response.text


async def assert_untouched(service: Service) -> None:
    """No inbox row and the bank feed as seeded: a refusal changes nothing."""
    assert await events(service.sessions) == []
    row = await feed(service.sessions)
    assert (row.connection_status, row.connection_status_at) == ("PendingAuth", at(-3600))


CONNECTED = envelope("connection.connected", connection_payload("Linked"), at(10))


async def test_accepted_then_handled_and_a_replay_is_acknowledged_once(service: Service) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    headers = signed_headers(body, webhook_id="msg_replayed")
    assert (await post(service, body, headers))[0] == 202
    rows = await events(service.sessions)
    assert [(r.webhook_id, r.status, r.event_type) for r in rows] == [
        ("msg_replayed", "pending", "connection.connected")
    ]
    assert rows[0].company_id == CONNECTED["payload"]["referenceCompany"]["id"]  # type: ignore[index]
    assert (await feed(service.sessions)).connection_status == "PendingAuth"  # not yet handled

    assert await service.services.inbox_worker().run_once() == 1
    handled = await feed(service.sessions)
    assert (handled.connection_status, handled.connection_status_at) == ("Linked", at(10))

    # Codat retries with the same webhook-id (and a fresh timestamp and signature).
    status, text = await post(service, body, signed_headers(body, webhook_id="msg_replayed"))
    assert (status, json.loads(text)) == (200, {"status": "duplicate"})
    assert await service.services.inbox_worker().run_once() == 0
    rows = await events(service.sessions)
    assert [(r.status, r.attempts) for r in rows] == [("handled", 1)]


async def test_replay_with_a_newer_body_has_no_second_effect(service: Service) -> None:
    await seed_feed(service.sessions)
    await deliver(service.client, CONNECTED, webhook_id="msg_a")
    await deliver(
        service.client,
        envelope("connection.disconnected", connection_payload("Unlinked"), at(20)),
        webhook_id="msg_b",
    )
    await service.services.inbox_worker().run_once()
    assert (await feed(service.sessions)).connection_status == "Unlinked"
    # Were msg_a handled a second time, this later `connected` would win.
    response = await deliver(
        service.client,
        envelope("connection.connected", connection_payload("Linked"), at(30)),
        webhook_id="msg_a",
    )
    assert response.status_code == 200
    await service.services.inbox_worker().run_once()
    assert (await feed(service.sessions)).connection_status == "Unlinked"
    assert len(await events(service.sessions)) == 2


async def test_no_secret_configured_is_404(database_url: str) -> None:
    async with running(database_url, codat_webhook_secret=None) as service:
        await seed_feed(service.sessions)
        body = body_of(CONNECTED)
        status, text = await post(service, body, signed_headers(body))
        assert status == 404
        assert "Not Found" in text
        await assert_untouched(service)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_header_is_400(service: Service, missing: str) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    headers = signed_headers(body)
    del headers[missing]
    status, text = await post(service, body, headers)
    assert status == 400
    assert missing in text
    await assert_untouched(service)


@pytest.mark.parametrize(
    "tamper",
    [
        "other secret",
        "body changed",
        "id changed",
        "timestamp changed",
        "unknown version",
        "garbage",
    ],
)
async def test_bad_signature_is_401(service: Service, tamper: str) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    headers = signed_headers(
        body, secret=OTHER_SECRET if tamper == "other secret" else WEBHOOK_SECRET
    )
    if tamper == "body changed":
        body = body.replace(b"Linked", b"Linkex")
    elif tamper == "id changed":
        headers["webhook-id"] += "x"
    elif tamper == "timestamp changed":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    elif tamper == "unknown version":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    elif tamper == "garbage":
        headers["webhook-signature"] = "v1,not-base64!!"
    status, text = await post(service, body, headers)
    assert status == 401
    assert WEBHOOK_SECRET not in text and OTHER_SECRET not in text
    await assert_untouched(service)


async def test_any_matching_signature_in_the_list_is_enough(service: Service) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    good = signed_headers(body, webhook_id="msg_rotated")
    wrong = signed_headers(body, webhook_id="msg_rotated", secret=OTHER_SECRET)
    good["webhook-signature"] = f"{wrong['webhook-signature']} {good['webhook-signature']}"
    assert (await post(service, body, good))[0] == 202


@pytest.mark.parametrize("offset", [-305, 305, -3600, 86400])  # clear of second rounding
async def test_old_or_future_timestamp_is_401(service: Service, offset: int) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    status, text = await post(
        service, body, signed_headers(body, timestamp=int(time.time()) + offset)
    )
    assert status == 401
    assert "timestamp" in text
    await assert_untouched(service)


@pytest.mark.parametrize("offset", [-280, 280])
async def test_timestamp_within_five_minutes_is_accepted(service: Service, offset: int) -> None:
    body = body_of(CONNECTED)
    status, _ = await post(service, body, signed_headers(body, timestamp=int(time.time()) + offset))
    assert status == 202


async def test_non_numeric_timestamp_is_401(service: Service) -> None:
    await seed_feed(service.sessions)
    body = body_of(CONNECTED)
    headers = signed_headers(body)
    headers["webhook-timestamp"] = "yesterday"
    assert (await post(service, body, headers))[0] == 401
    await assert_untouched(service)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"connection.connected"',
        b"{}",
        b'{"eventType": ""}',
        b'{"eventType": 7}',
        b'{"eventType": "connection.connected", "payload": [1]}',
        b"\xff\xfe",
        b"",
    ],
)
async def test_not_a_codat_envelope_is_400(service: Service, body: bytes) -> None:
    await seed_feed(service.sessions)
    status, _ = await post(service, body, signed_headers(body))
    assert status == 400
    await assert_untouched(service)


async def test_unknown_event_type_is_stored_and_ignored(service: Service) -> None:
    event = envelope(
        "company.created",
        {"id": "c-1", "name": "Acme", "redirect": "https://link.codat.io/company/c-1"},
    )
    assert (await deliver(service.client, event)).status_code == 202
    await service.services.inbox_worker().run_once()
    [row] = await events(service.sessions)
    assert (row.event_type, row.status, row.last_error) == ("company.created", "ignored", None)
    assert row.handled_at is not None
    assert row.payload == {"id": "c-1", "name": "Acme"}  # Link URLs are never kept


async def test_link_urls_and_secrets_never_reach_the_inbox_or_the_ops_api(
    service: Service,
) -> None:
    await seed_feed(service.sessions)
    await deliver(service.client, CONNECTED)
    [row] = await events(service.sessions)
    assert "linkUrl" not in json.dumps(row.payload) and "otp" not in json.dumps(row.payload)
    response = await service.client.get("/ops/webhook-events", headers=service.ops_headers)
    assert response.status_code == 200
    for secret in ("otp=", "731902", WEBHOOK_SECRET, OPS_TOKEN, "linkUrl"):
        assert secret not in response.text
    [listed] = response.json()["events"]
    assert listed["payload"]["connection"]["status"] == "Linked"


async def test_ops_listing_needs_the_ops_token(service: Service) -> None:
    assert (await service.client.get("/ops/webhook-events")).status_code == 401
    bad = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    assert (await service.client.get("/ops/webhook-events", headers=bad)).status_code == 401
    invalid = await service.client.get(
        "/ops/webhook-events", params={"status": "bogus"}, headers=service.ops_headers
    )
    assert invalid.status_code == 422


async def test_a_malformed_secret_refuses_without_storing(database_url: str) -> None:
    async with running(database_url, codat_webhook_secret=None) as service:
        service.services.webhooks.secret = SecretStr("whsec_not base64!")
        body = body_of(CONNECTED)
        status, text = await post(service, body, signed_headers(body))
        assert status == 500
        assert "not base64" not in text
        assert await events(service.sessions) == []

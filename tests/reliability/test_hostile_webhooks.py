"""Proof 4b: fuzzed deliveries to POST /webhooks/codat are refused and change nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.main import MAX_WEBHOOK_BYTES
from tests.conftest import WEBHOOK_SECRET, Service, _truncate, start_service
from tests.reliability.hostile import FUZZ, Tally, database_state
from tests.reliability.support import db_name
from tests.webhooks.support import connection_payload, envelope, seed_feed, sign, signing_key

KEY = signing_key(WEBHOOK_SECRET)
EVENT_BODY = json.dumps(envelope("connection.connected", connection_payload("Linked"))).encode()
LEGIT_ID = "msg_legit_delivery"


def headers_for(
    body: bytes, *, webhook_id: str | None = None, stamp: str | None = None, key: bytes = KEY
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{time.perf_counter_ns()}"
    stamp = stamp or str(int(time.time()))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + sign(key, webhook_id, stamp, body),
        "content-type": "application/json",
    }


def missing_headers(drop: list[str]) -> tuple[str, bytes, dict[str, str]]:
    headers = headers_for(EVENT_BODY)
    return "missing headers", EVENT_BODY, {k: v for k, v in headers.items() if k not in drop}


def bad_signature(value: str) -> tuple[str, bytes, dict[str, str]]:
    return "bad signature", EVENT_BODY, {**headers_for(EVENT_BODY), "webhook-signature": value}


def wrong_secret(raw: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "signed with another secret", EVENT_BODY, headers_for(EVENT_BODY, key=raw)


def unsigned_body(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "body not the one signed", body, headers_for(EVENT_BODY)


def off_time(offset: int) -> tuple[str, bytes, dict[str, str]]:
    stamp = str(int(time.time()) + offset)
    return "timestamp over 5 minutes off", EVENT_BODY, headers_for(EVENT_BODY, stamp=stamp)


def odd_time(stamp: str) -> tuple[str, bytes, dict[str, str]]:
    return "timestamp not a number", EVENT_BODY, headers_for(EVENT_BODY, stamp=stamp)


def replay(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "replayed webhook-id", body, headers_for(body, webhook_id=LEGIT_ID)


def oversized(size: int) -> tuple[str, bytes, dict[str, str]]:
    event = json.loads(EVENT_BODY)
    event["payload"]["padding"] = "x" * size
    body = json.dumps(event).encode()
    return "oversized", body, headers_for(body)


def flip(position: int, bit: int) -> bytes:
    raw = bytearray(EVENT_BODY)
    raw[position % len(raw)] ^= 1 << bit
    return bytes(raw)


other_bodies = st.one_of(
    st.builds(flip, st.integers(0, 10_000), st.integers(0, 7)),
    st.just(EVENT_BODY + b" "),
    st.just(json.dumps(json.loads(EVENT_BODY), indent=2).encode()),
    st.binary(max_size=500),
)
signatures = st.one_of(
    st.text(max_size=200),
    st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
    st.just("v2," + sign(KEY, "msg_x", "0", EVENT_BODY)),
    st.just(sign(KEY, "msg_x", "0", EVENT_BODY)),
)
ATTACKS = st.one_of(
    st.lists(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
        min_size=1,
        unique=True,
    ).map(missing_headers),
    signatures.map(bad_signature),
    st.binary(min_size=1, max_size=64).filter(lambda k: k != KEY).map(wrong_secret),
    other_bodies.filter(lambda b: b != EVENT_BODY).map(unsigned_body),
    # 10 s clear of the 300 s tolerance: the stamp is whole seconds, drawn a moment before
    st.one_of(st.integers(310, 10**9), st.integers(-(10**9), -310)).map(off_time),
    st.text(min_size=1, max_size=20).filter(lambda s: not s.strip().isdigit()).map(odd_time),
    st.one_of(st.just(EVENT_BODY), other_bodies).map(replay),
    st.integers(MAX_WEBHOOK_BYTES, 3 * MAX_WEBHOOK_BYTES).map(oversized),
)


@pytest.fixture
async def receiver(database_url: str) -> AsyncIterator[Service]:
    """A bank feed, and one genuine delivery already accepted (so replays have a target)."""
    await _truncate(database_url)
    async for service in start_service(database_url):
        await seed_feed(service.sessions)
        accepted = await service.client.post(
            "/webhooks/codat",
            content=EVENT_BODY,
            headers=headers_for(EVENT_BODY, webhook_id=LEGIT_ID),
        )
        assert accepted.status_code == 202
        yield service
    await _truncate(database_url)


@FUZZ
@given(attack=ATTACKS)
async def test_fuzzed_webhook_deliveries_are_refused_and_change_nothing(
    receiver: Service, database_url: str, tally: Tally, attack: tuple[str, bytes, dict[str, str]]
) -> None:
    kind, body, headers = attack
    tally.tried[kind] += 1
    tally.tick()
    tally.proof, tally.variant, tally.figures = "hostile", db_name(database_url), _figures
    before = await database_state(receiver.sessions)
    raw_headers = {k.encode(): v.encode() for k, v in headers.items()}  # any text, as UTF-8 bytes
    response = await receiver.client.post("/webhooks/codat", content=body, headers=raw_headers)
    tally.answers[response.status_code] += 1

    if kind == "replayed webhook-id":  # acknowledged once more, or refused if not an envelope
        assert response.status_code in (200, 400), response.status_code
        if response.status_code == 200:
            assert response.json() == {"status": "duplicate"}
    else:
        assert response.status_code in (400, 401, 413), (kind, response.status_code)
    assert await database_state(receiver.sessions) == before


def _figures(tally: Tally) -> dict[str, Any]:
    return {
        "deliveries sent": sum(tally.tried.values()),
        **{f"- {k}": v for k, v in sorted(tally.tried.items())},
        "answers": tally.answered(),
    }


async def test_the_webhook_oracle_sees_a_genuine_delivery_stored(receiver: Service) -> None:
    before = await database_state(receiver.sessions)
    genuine = await receiver.client.post(
        "/webhooks/codat", content=EVENT_BODY, headers=headers_for(EVENT_BODY)
    )
    assert genuine.status_code == 202
    assert await database_state(receiver.sessions) != before  # the oracle sees a write


async def test_signed_but_absurdly_nested_body_is_refused_not_a_500(receiver: Service) -> None:
    body = b'{"eventType": "connection.connected", "payload": {"x": ' + b"[" * 100_000
    body += b"]" * 100_000 + b"}}"
    before = await database_state(receiver.sessions)
    response = await receiver.client.post(
        "/webhooks/codat", content=body, headers=headers_for(body)
    )

    assert response.status_code == 400
    assert await database_state(receiver.sessions) == before

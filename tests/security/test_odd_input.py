"""Input that is odd but not malicious gets a clear 4xx, never a 500: huge numbers, token
times out of range, deeply nested webhooks, ids past 64 bits; and ids are logged quoted."""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from app.connect.tokens import AUDIENCE
from app.models import CodatEvent
from tests.conftest import CONNECT_SECRET, Service
from tests.factories import add_customer
from tests.webhooks.support import connection_payload, envelope, seed_feed, signed_headers

HUGE_INTEGER = "9" * 5000


@pytest.mark.parametrize(
    ("method", "path", "media_type"),
    [
        ("PUT", "/ops/customers/cus-1", "application/json"),
        ("POST", "/ops/customers:import", "application/json"),
        ("POST", "/ops/customers/cus-1/connect-url", "application/json"),
    ],
)
async def test_json_with_a_5000_digit_integer_is_a_4xx(
    service: Service, method: str, path: str, media_type: str
) -> None:
    await add_customer(service.sessions)
    body = '{"name": "Acme", "country": "US", "lifetime_seconds": ' + HUGE_INTEGER + "}"
    if path.endswith(":import"):
        body = '[{"customer_id": "c1", "name": "A", "country": "US", "balance": ' + (
            HUGE_INTEGER + "}]"
        )
    response = await service.client.request(
        method, path, content=body, headers={**service.ops_headers, "Content-Type": media_type}
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    assert "detail" in response.json()


async def test_a_webhook_with_a_5000_digit_integer_is_a_4xx_or_stored(service: Service) -> None:
    body = json.dumps(envelope("connection.connected", {"n": 1})).replace("1}", HUGE_INTEGER + "}")
    response = await service.client.post(
        "/webhooks/codat", content=body.encode(), headers=signed_headers(body.encode())
    )
    assert response.status_code < 500, response.text[:300]


def _token_with(**claims: Any) -> str:
    base: dict[str, Any] = {"sub": "cus-1", "aud": AUDIENCE, "jti": "j-1", "exp": 4102444800}
    base.update(claims)
    # The JSON a careless minter might send: Python's json writes NaN and Infinity as such.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(json.dumps(base).encode())
    signing_input = header + b"." + payload
    import hashlib
    import hmac

    signature = hmac.new(CONNECT_SECRET.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


@pytest.mark.parametrize("iat", [1e20, float("nan"), float("inf"), float("-inf"), 10**400])
async def test_a_token_whose_iat_is_out_of_range_is_a_401(service: Service, iat: Any) -> None:
    await add_customer(service.sessions)
    value = _token_with(iat=iat)
    for response in (
        await service.client.get("/connect-bank-feeds", params={"token": value}),
        await service.client.get("/connect-bank-feeds/status", params={"token": value}),
    ):
        assert response.status_code == 401, response.text[:300]
    assert service.codat_calls() == []


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"deeper": value}
    return value


async def test_a_signed_webhook_nested_900_deep_is_stored_and_settled(service: Service) -> None:
    event = envelope("connection.connected", {"companyId": "c-1", "extra": _nested(900)})
    body = json.dumps(event).encode()
    response = await service.client.post(
        "/webhooks/codat", content=body, headers=signed_headers(body)
    )
    assert response.status_code == 202, response.text[:300]
    await service.services.inbox_worker().run_once()
    async with service.sessions() as session:
        stored = (await session.scalars(select(CodatEvent))).all()
    assert len(stored) == 1
    assert stored[0].status not in ("pending", "retrying"), stored[0].status
    listing = await service.client.get("/ops/webhook-events", headers=service.ops_headers)
    assert listing.status_code == 200


@pytest.mark.parametrize(
    "event_id", ["9223372036854775808", "99999999999999999999999", "-9223372036854775809"]
)
async def test_an_event_id_past_64_bits_is_a_4xx(service: Service, event_id: str) -> None:
    response = await service.client.post(
        f"/ops/webhook-events/{event_id}/retry", headers=service.ops_headers
    )
    assert 400 <= response.status_code < 500, response.text[:300]


@pytest.mark.parametrize("path", ["/ops/customers/{}", "/ops/customers/{}/accounts"])
async def test_huge_ids_in_paths_are_a_4xx(service: Service, path: str) -> None:
    for bad in ("x" * 5000, "9" * 5000, "cus-1%0A", "cus-1%0D%0Aforged"):
        response = await service.client.get(path.format(bad), headers=service.ops_headers)
        assert 400 <= response.status_code < 500, (bad[:20], response.status_code)


async def test_a_newline_in_what_codat_sent_cannot_forge_a_log_line(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_feed(service.sessions)
    errors = [{"statusCode": "401", "errorMessage": "refused\nERROR app forged line"}]
    event = envelope(
        "connection.failed", connection_payload("Deauthorized", dataConnectionErrors=errors)
    )
    body = json.dumps(event).encode()
    with caplog.at_level(logging.WARNING, logger="app.webhooks"):
        response = await service.client.post(
            "/webhooks/codat", content=body, headers=signed_headers(body)
        )
        assert response.status_code == 202
        await service.services.inbox_worker().run_once()
    [logged] = [r.getMessage() for r in caplog.records if "failed for customer" in r.getMessage()]
    assert "\n" not in logged and "refused\\nERROR" in logged

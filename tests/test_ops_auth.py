"""Everything under /ops/ needs the ops bearer token, and never shows a secret."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from app.connect.tokens import mint_connect_token
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    WEBHOOK_SECRET,
    Service,
    _truncate,
    start_service,
)
from tests.ops_api import account_body, put_customer, with_bank_feed

OPS_CALLS = [
    ("GET", "/ops/bank-feeds", None),
    ("GET", "/ops/customers/cus-1", None),
    ("PUT", "/ops/customers/cus-1", {"name": "Acme", "country": "US", "locale": "en"}),
    ("DELETE", "/ops/customers/cus-1", None),
    ("GET", "/ops/customers/cus-1/accounts", None),
    ("GET", "/ops/customers/cus-1/accounts/acc-1", None),
    ("PUT", "/ops/customers/cus-1/accounts/acc-1", account_body()),
    ("DELETE", "/ops/customers/cus-1/accounts/acc-1", None),
    ("GET", "/ops/customers/cus-1/bank-feed", None),
    ("POST", "/ops/customers/cus-1/bank-feed/sync", None),
    ("POST", "/ops/customers:import", []),
]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {OPS_TOKEN}x",
        f"Basic {OPS_TOKEN}",
        OPS_TOKEN,
        "Bearer " + mint_connect_token(CONNECT_SECRET, "cus-1"),
    ],
    ids=["none", "wrong", "not-bearer", "bare", "connect-token"],
)
async def test_every_ops_route_refuses_without_the_ops_token(
    service: Service, authorization: str | None
) -> None:
    await put_customer(service)
    headers = {"Authorization": authorization} if authorization else {}
    for method, path, body in OPS_CALLS:
        response = await service.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": "A valid ops bearer token is required."}
        assert response.headers["www-authenticate"] == "Bearer"
    # Nothing was changed: the customer is still there, and Codat was never called.
    response = await service.client.get("/ops/customers/cus-1", headers=service.ops_headers)
    assert response.status_code == 200
    assert service.codat_calls() == []


async def test_ops_does_not_exist_without_a_configured_token(database_url: str) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, ops_api_token=None):
        for method, path, body in OPS_CALLS:
            response = await service.client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {OPS_TOKEN}"}
            )
            assert response.status_code == 404, (method, path)
            assert response.json() == {"detail": "Not Found"}


async def test_no_secret_in_any_ops_response_or_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await with_bank_feed(service)
    responses = [
        await service.client.get("/ops/customers/cus-1", headers=service.ops_headers),
        await service.client.get(
            "/ops/customers/cus-1/bank-feed?refresh=true", headers=service.ops_headers
        ),
        await service.client.get("/ops/bank-feeds", headers=service.ops_headers),
        await service.client.get("/openapi.json"),
    ]
    settings = service.settings
    assert isinstance(settings.ops_api_token, SecretStr)
    texts = [r.text for r in responses] + [r.getMessage() for r in caplog.records]
    for secret in (OPS_TOKEN, CONNECT_SECRET, WEBHOOK_SECRET, settings.codat_key):
        assert not any(secret in text for text in texts), secret

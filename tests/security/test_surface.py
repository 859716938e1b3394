"""The production surface: the API's docs, the Host names answered, no redirect built from the
Host header, forwarded headers only from known proxies, page headers, and what start-up
prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import SecretStr

from app.main import create_app
from tests.conftest import OPS_TOKEN, Service, make_settings
from tests.servers import run_service

REAL_KEY = SecretStr("k3y-real-codat-api-key-0123456789")
PUBLIC = "https://bankfeeds.example.com"
AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}


def app_with(**overrides: Any) -> FastAPI:
    """The app as configured, without its lifespan: these answers need no database."""
    return create_app(
        make_settings("sqlite+aiosqlite:///:memory:", **overrides), run_background=False
    )


def client(app: FastAPI, base_url: str = PUBLIC) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def test_with_a_key_the_docs_are_behind_the_ops_token() -> None:
    async with client(app_with(codat_api_key=REAL_KEY, public_base_url=PUBLIC)) as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/redoc")).status_code == 404
        refused = await c.get("/openapi.json")
        assert refused.status_code == 401
        assert "/ops/customers/{customer_id}" not in refused.text
        schema = await c.get("/openapi.json", headers=AUTH)
        assert schema.status_code == 200
        assert "/ops/customers/{customer_id}" in schema.json()["paths"]


async def test_api_docs_off_serves_no_schema_at_all() -> None:
    app = app_with(codat_api_key=REAL_KEY, public_base_url=PUBLIC, api_docs="off")
    async with client(app) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await c.get(path, headers=AUTH)).status_code == 404, path


async def test_the_sandbox_shows_its_docs_to_everyone() -> None:
    async with client(app_with(), "http://127.0.0.1:8000") as c:
        assert (await c.get("/openapi.json")).status_code == 200
        assert (await c.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "host", "answered"),
    [
        ({}, "bankfeeds.example.com", True),
        ({}, "127.0.0.1:8000", True),  # the image's own health check
        ({}, "evil.example", False),
        ({}, "bankfeeds.example.com.evil.example", False),
        ({"allowed_hosts": ["feeds.bank.example"]}, "feeds.bank.example", True),
        ({"allowed_hosts": ["feeds.bank.example"]}, "bankfeeds.example.com", False),
    ],
)
async def test_only_the_configured_hosts_are_answered(
    overrides: dict[str, Any], host: str, answered: bool
) -> None:
    app = app_with(codat_api_key=REAL_KEY, public_base_url=PUBLIC, **overrides)
    async with client(app) as c:
        response = await c.get("/healthz", headers={"Host": host})
    assert (response.status_code == 200) is answered
    if not answered:
        assert response.status_code == 400


async def test_no_trailing_slash_redirect_is_built_from_the_host_header() -> None:
    app = app_with(
        codat_api_key=REAL_KEY, public_base_url=PUBLIC, allowed_hosts=["evil.example", "*"]
    )
    async with client(app) as c:
        response = await c.get(
            "/connect-bank-feeds/?token=abc",
            headers={"Host": "evil.example", "X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 404
    assert "location" not in response.headers


def _probe(app: FastAPI) -> FastAPI:
    @app.get("/probe-forwarded")
    async def probe(request: Request) -> dict[str, Any]:
        client = request.client
        return {"scheme": request.url.scheme, "client": client.host if client else None}

    return app


@pytest.mark.parametrize(("proxies", "believed"), [(["10.0.0.9"], False), (["127.0.0.1"], True)])
async def test_forwarded_headers_are_believed_only_from_configured_proxies(
    proxies: list[str], believed: bool
) -> None:
    app = _probe(app_with(forwarded_allow_ips=proxies))
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    async with client(app, "http://127.0.0.1:8000") as c:  # the test client is 127.0.0.1
        seen = (await c.get("/probe-forwarded", headers=headers)).json()
    if believed:
        assert seen == {"scheme": "https", "client": "203.0.113.7"}
    else:
        assert seen == {"scheme": "http", "client": "127.0.0.1"}


async def _assert_page_headers(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_message_pages_and_the_demo_send_the_page_security_headers(
    service: Service,
) -> None:
    html = {"Accept": "text/html"}
    await _assert_page_headers(await service.client.get("/connect-bank-feeds", headers=html))
    await _assert_page_headers(await service.client.get("/no-such-page", headers=html))
    await _assert_page_headers(await service.client.get("/", headers=html))


def test_serve_sends_no_server_header_and_never_prints_an_ops_token_from_the_environment(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
    with run_service(url, tmp_path) as process:
        response = httpx.get(process.url + "/healthz", timeout=10)
        assert response.status_code == 200
        assert "server" not in response.headers
        log = process.log()
    assert OPS_TOKEN not in log

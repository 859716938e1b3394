"""Fixtures for the sandbox tests: an in-process sandbox, clients, a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox import create_sandbox_app
from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_oas import check_response
from tests.sandbox.sandbox_support import (
    AUTH,
    BASE_URL,
    WEBHOOK_SECRET,
    ConnectionRef,
    WebhookReceiver,
    account_body,
    sandbox_config,
)

_NOT_CODAT = ("/link/", "/qbo", "/logos/", "/_sandbox/")


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change how its sandbox is set up."""
    return {}


@pytest.fixture
def app(receiver: WebhookReceiver, config_overrides: dict[str, Any]) -> FastAPI:
    settings: dict[str, Any] = {
        "webhook_url": "http://receiver/webhooks/codat",
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_transport": httpx.ASGITransport(app=receiver),
        "webhook_retry_delays": (0.01, 0.01),
        "disconnect_delay": timedelta(minutes=10),
        **config_overrides,
    }
    return create_sandbox_app(sandbox_config(**settings))


@pytest.fixture
def sandbox(app: FastAPI) -> Sandbox:
    sandbox: Sandbox = app.state.sandbox
    return sandbox


async def _check_against_spec(response: httpx.Response) -> None:
    path = response.request.url.path
    if path.startswith(_NOT_CODAT):
        return
    await response.aread()
    check_response(response.request.method, path, response.status_code, response.content)


@pytest.fixture
async def api(app: FastAPI, sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A Codat API client whose every response is checked against Codat's spec."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers=AUTH,
        event_hooks={"response": [_check_against_spec]},
    ) as client:
        yield client
    await sandbox.aclose()


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the HTML pages: no API key, like the SMB's browser."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client


@pytest.fixture
def new_connection(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def create(name: str = "Acme Hardware", accounts: int = 0) -> ConnectionRef:
        company = (await api.post("/companies", json={"name": name})).json()
        created = await api.post(
            f"/companies/{company['id']}/connections", json={"platformKey": "hcws"}
        )
        connection = created.json()
        ref = ConnectionRef(company["id"], connection["id"], connection["linkUrl"])
        if accounts:
            bodies = [account_body(f"acc-{n}") for n in range(1, accounts + 1)]
            assert (await api.post(f"{ref.accounts}/batch", json=bodies)).status_code == 201
        return ref

    return create

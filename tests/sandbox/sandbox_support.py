"""What the sandbox tests share: the test configuration, request bodies, page walks."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.sandbox import SandboxConfig
from tests.sandbox.sandbox_pages import Page, path_of

API_KEY = "sandbox-key"
BASE_URL = "http://sandbox"
AUTH = {"Authorization": "Basic " + base64.b64encode(API_KEY.encode()).decode()}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"sandbox-test-signing-key-32bytes").decode()


@dataclass
class WebhookReceiver:
    """An ASGI endpoint that records raw webhook requests; it can fail the first few."""

    fail_first: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        status = 500 if len(self.requests) <= self.fail_first else 204
        await Response(status_code=status)(scope, receive, send)

    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


def sandbox_config(**overrides: Any) -> SandboxConfig:
    settings: dict[str, Any] = {"api_key": API_KEY, "public_url": BASE_URL, **overrides}
    return SandboxConfig(**settings)


def account_body(account_id: str = "acc-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": account_id,
        "accountName": f"Business checking {account_id}",
        "accountType": "checking",
        "accountNumber": "12345678",
        "currency": "USD",
        "balance": 1250.75,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class ConnectionRef:
    company_id: str
    connection_id: str
    link_url: str

    @property
    def path(self) -> str:
        return f"/companies/{self.company_id}/connections/{self.connection_id}"

    @property
    def accounts(self) -> str:
        return f"{self.path}/connectionInfo/bankFeedAccounts"


async def get_credentials(browser: httpx.AsyncClient, link_url: str) -> tuple[str, str]:
    """Walk the Link page: permissions, then Get credentials; return the one-time pair."""
    start = Page((await browser.get(path_of(link_url))).text)
    allow = start.form_with_button("Continue")
    setup = Page((await browser.get(path_of(allow.action), params=allow.fields)).text)
    get = setup.form_with_button("Get credentials")
    issued = Page((await browser.post(path_of(get.action), data=get.fields)).text)
    return issued.text("username"), issued.text("password")

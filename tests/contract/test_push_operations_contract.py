"""Contract: the sandbox's create-bank-transactions, push operations and write webhooks validate
against Codat's own OpenAPI files, in both the Bank Feeds and the Platform spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox import create_sandbox_app
from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_oas import OAS_DIR, assert_valid, find_operation
from tests.sandbox.sandbox_support import (
    AUTH,
    BASE_URL,
    WEBHOOK_SECRET,
    WebhookReceiver,
    account_body,
    sandbox_config,
)
from tests.sandbox.sandbox_transactions import dumps, push_body, transaction

CONNECTION = "/companies/{companyId}/connections/{connectionId}"
CREATE = CONNECTION + "/push/bankAccounts/{accountId}/bankTransactions"
GET_ONE = "/companies/{companyId}/push/{pushOperationKey}"
HISTORY = "/companies/{companyId}/push"
# The same operations under their names in each spec.
OPERATIONS = {
    ("bank-feeds", "post", CREATE): "create-bank-transactions",
    ("bank-feeds", "get", GET_ONE): "get-create-operation",
    ("platform", "get", GET_ONE): "get-push-operation",
    ("bank-feeds", "get", HISTORY): "list-create-operations",
    ("platform", "get", HISTORY): "get-company-push-history",
}


def _pointer(template: str, method: str, tail: str) -> str:
    return f"/paths/{template.replace('~', '~0').replace('/', '~1')}/{method}/{tail}"


class PushContract(httpx.AsyncBaseTransport):
    """Checks each create body, and each 200 answer against every spec that defines it."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.checked: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method.lower()
        if request.url.path.startswith("/_sandbox/"):  # the test's own knobs
            return await self.inner.handle_async_request(request)
        found = find_operation(request.method, request.url.path)
        assert found is not None, f"{request.method} {request.url.path} is not in Codat's spec"
        _, template, _ = found
        body = await request.aread()
        if (("bank-feeds", method, template)) in OPERATIONS and method == "post":
            tail = "requestBody/content/application~1json/schema"
            assert_valid("bank-feeds", _pointer(template, method, tail), json.loads(body))
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        if response.status_code == 200:
            for (spec, m, path), operation_id in OPERATIONS.items():
                if (m, path) == (method, template):
                    tail = "responses/200/content/application~1json/schema"
                    assert_valid(spec, _pointer(path, m, tail), json.loads(content))
                    self.checked.add(operation_id)
        return httpx.Response(response.status_code, headers=response.headers, content=content)


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver()


@pytest.fixture
async def setup(
    receiver: WebhookReceiver,
) -> AsyncIterator[tuple[httpx.AsyncClient, PushContract, Sandbox]]:
    assert OAS_DIR.exists()
    app = create_sandbox_app(
        sandbox_config(
            webhook_url="http://receiver/webhooks/codat",
            webhook_secret=WEBHOOK_SECRET,
            webhook_transport=httpx.ASGITransport(app=receiver),
            webhook_retry_delays=(0.01,),
            push_delay=timedelta(minutes=1),
        )
    )
    transport = PushContract(app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH) as client:
        yield client, transport, app.state.sandbox
    await app.state.sandbox.aclose()


async def test_writes_and_push_operations_validate_in_both_specs(
    setup: tuple[httpx.AsyncClient, PushContract, Sandbox], receiver: WebhookReceiver
) -> None:
    client, transport, sandbox = setup
    company = (await client.post("/companies", json={"name": "Maple Street Bakery"})).json()
    connection = (
        await client.post(f"/companies/{company['id']}/connections", json={"platformKey": "hcws"})
    ).json()
    base = f"/companies/{company['id']}/connections/{connection['id']}"
    await client.post(f"{base}/connectionInfo/bankFeedAccounts", json=account_body("acc-1"))
    linked = sandbox.store.connection(company["id"], connection["id"])
    today = sandbox.clock.today()
    sandbox.bank_feeds.connect_accounts(linked, ["acc-1"], today - timedelta(days=2))
    path = f"{base}/push/bankAccounts/acc-1/bankTransactions"
    headers = {"content-type": "application/json"}
    keys: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {
        "Success": push_body(
            [
                transaction("t-1", today - timedelta(days=1), "-12.5", "987.5"),
                transaction("t-2", today, "1500.75", "2488.25"),
            ]
        ),
        "Failed": push_body([transaction("t-3", today + timedelta(days=1), "-1", "2487.25")]),
    }
    for outcome, body in bodies.items():
        created = await client.post(path, content=dumps(body), headers=headers)
        assert created.status_code == 200 and created.json()["status"] == "Pending"
        keys[outcome] = created.json()["pushOperationKey"]
        sandbox.settle(all_writes=True)
    await client.put("/_sandbox/faults", json={"push_timeout_rate": 1.0})
    timed_out = push_body([transaction("t-4", today, "-2", "2486.25")])
    created = await client.post(path, content=dumps(timed_out), headers=headers)
    keys["TimedOut"] = created.json()["pushOperationKey"]
    sandbox.settle(all_writes=True)

    for status, key in keys.items():
        push = (await client.get(f"/companies/{company['id']}/push/{key}")).json()
        assert push["status"] == status
    history = (await client.get(f"/companies/{company['id']}/push")).json()
    assert [p["status"] for p in history["results"]] == ["Success", "Failed", "TimedOut"]
    assert transport.checked == set(OPERATIONS.values())

    await sandbox.webhooks.drain()
    envelopes = {
        json.loads(body)["payload"]["id"]: json.loads(body)
        for _, body in receiver.requests
        if b".write." in body
    }
    for status, key in keys.items():
        envelope = envelopes[key]
        assert_valid("platform", "/components/schemas/DataTypeWriteWebhook", envelope)
        result = "successful" if status == "Success" else "unsuccessful"
        assert envelope["eventType"] == f"bankTransactions.write.{result}"
        assert envelope["payload"]["status"] == status
        assert envelope["payload"]["connectionId"] == connection["id"]
        assert envelope["payload"]["referenceCompany"]["id"] == company["id"]

"""The admin routes, the sandbox mounted inside another app, and the sandbox as a process."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.sandbox import create_sandbox_app
from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_pages import Page, path_of
from tests.sandbox.sandbox_support import (
    AUTH,
    ConnectionRef,
    account_body,
    get_credentials,
    sandbox_config,
)

REPO = Path(__file__).resolve().parents[2]


async def test_admin_routes_need_the_api_key(api: httpx.AsyncClient) -> None:
    anonymous = httpx.AsyncClient(transport=api._transport, base_url="http://sandbox")

    assert (await anonymous.get("/_sandbox/calls")).status_code == 401
    assert (await anonymous.get("/_sandbox/state")).status_code == 401


async def test_admin_calls_list_and_reset(api: httpx.AsyncClient, new_connection) -> None:
    ref: ConnectionRef = await new_connection()

    calls = (await api.get("/_sandbox/calls")).json()
    reset = await api.delete("/_sandbox/calls")
    after = (await api.get("/_sandbox/calls")).json()

    assert [(c["method"], c["route"], c["status"]) for c in calls] == [
        ("POST", "/companies", 200),
        ("POST", "/companies/{companyId}/connections", 200),
    ]
    assert calls[1]["path"] == f"/companies/{ref.company_id}/connections"
    assert reset.status_code == 204
    assert after == []


async def test_admin_state_shows_tags_and_statuses(api: httpx.AsyncClient) -> None:
    company = (await api.post("/companies", json={"name": "Acme", "tags": {"uid": "c1"}})).json()
    connection = (
        await api.post(f"/companies/{company['id']}/connections", json={"platformKey": "hcws"})
    ).json()
    accounts = f"/companies/{company['id']}/connections/{connection['id']}"
    await api.post(f"{accounts}/connectionInfo/bankFeedAccounts", json=account_body("a"))

    state = (await api.get("/_sandbox/state")).json()

    [listed] = state["companies"]
    assert listed["tags"] == {"uid": "c1"}
    assert listed["connections"][0]["status"] == "PendingAuth"
    assert listed["connections"][0]["sourceAccounts"][0]["status"] == "pending"


async def test_admin_clock_advance_expires_link_urls(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, new_connection
) -> None:
    ref: ConnectionRef = await new_connection()

    refused = await api.post("/_sandbox/clock/advance", json={"seconds": -5})
    advanced = await api.post("/_sandbox/clock/advance", json={"seconds": 3601})

    assert refused.status_code == 400
    assert advanced.status_code == 200
    assert (await browser.get(path_of(ref.link_url))).status_code == 401


async def test_admin_webhooks_lists_deliveries(
    api: httpx.AsyncClient, new_connection, sandbox: Sandbox
) -> None:
    await new_connection()
    await sandbox.webhooks.drain()

    deliveries = (await api.get("/_sandbox/webhooks")).json()

    assert [d["eventType"] for d in deliveries] == ["connection.created"]
    assert deliveries[0]["delivered"] is True


async def test_mounted_under_a_prefix_it_records_paths_without_the_prefix() -> None:
    sandbox_app = create_sandbox_app(sandbox_config(public_url="http://service/sandbox/codat"))
    service = FastAPI()
    service.mount("/sandbox/codat", sandbox_app)
    sandbox: Sandbox = sandbox_app.state.sandbox
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service), base_url="http://service", headers=AUTH
    ) as client:
        company = (await client.post("/sandbox/codat/companies", json={"name": "Acme"})).json()
        connection = (
            await client.post(
                f"/sandbox/codat/companies/{company['id']}/connections",
                json={"platformKey": "hcws"},
            )
        ).json()
        username, _ = await get_credentials(client, connection["linkUrl"])
        missing = await client.get("/sandbox/codat/nothing-here")

    assert connection["linkUrl"].startswith("http://service/sandbox/codat/link/companies/")
    assert username
    assert missing.status_code == 404
    assert [c.path for c in sandbox.calls] == [
        "/companies",
        f"/companies/{company['id']}/connections",
        "/nothing-here",
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_runs_as_its_own_process() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app.sandbox", "--port", str(port), "--api-key", "sandbox-key"),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:
            for _ in range(100):
                try:
                    response = await client.get("/integrations/hcws")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the sandbox process did not start")
            company = (await client.post("/companies", json={"name": "Acme"})).json()
            connection = (
                await client.post(
                    f"/companies/{company['id']}/connections", json={"platformKey": "hcws"}
                )
            ).json()
            page = await client.get(connection["linkUrl"])
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)

    assert response.status_code == 200
    assert connection["linkUrl"].startswith(f"http://127.0.0.1:{port}/link/companies/")
    assert Page(page.text).text("title") == "Connect to QuickBooks Online Bank Feeds"

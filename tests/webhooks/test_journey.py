"""The whole journey on webhooks alone: click, Link page, QuickBooks, and never a refresh."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from app.models import BankFeed, BankFeedConnection
from tests.conftest import Service
from tests.factories import add_customer
from tests.webhooks.support import accounts, events

SANDBOX = "/sandbox/codat"
BANK_FEED_ROUTE = "/ops/customers/{customer_id}/bank-feed"


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def field(html: str, pattern: str) -> str:
    match = re.search(pattern, html)
    assert match is not None, f"{pattern!r} not in the page"
    return match.group(1)


def hidden(html: str, name: str) -> str:
    return field(html, rf'name="{name}" value="([^"]*)"')


async def connect_in_quickbooks(client: httpx.AsyncClient, link_url: str) -> str:
    """What the customer does: Link page, one-time credentials, QuickBooks; returns the session."""
    start = await client.get(path(link_url))
    assert start.status_code == 200
    otp = dict(p.split("=") for p in urlsplit(link_url).query.split("&"))["otp"]
    credentials_url = link_url.split("/start?")[0] + "/credentials"
    credentials = await client.post(path(credentials_url), data={"otp": otp, "lang": "en"})
    assert credentials.status_code == 200
    username = field(credentials.text, r'id="username">([^<]+)<')
    password = field(credentials.text, r'id="password">([^<]+)<')
    chosen = await client.post(
        f"{SANDBOX}/qbo/sign-in", data={"username": username, "password": password}
    )
    assert chosen.status_code == 200
    session = hidden(chosen.text, "session")
    account_ids = re.findall(r'name="account" value="([^"]+)"', chosen.text)
    start_date = field(chosen.text, r'name="start_date" type="date" value="([^"]+)"')
    connected = await client.post(
        f"{SANDBOX}/qbo/connect",
        data={"session": session, "account": account_ids, "start_date": start_date},
    )
    assert connected.status_code == 200
    assert len(account_ids) == 2
    return session


async def ops_bank_feed(service: Service) -> dict[str, Any] | None:
    """The ops view of the feed, once the ops routes are mounted in the app."""
    if not any(getattr(r, "path", None) == BANK_FEED_ROUTE for r in service.app.routes):
        return None
    response = await service.client.get(
        "/ops/customers/cus-1/bank-feed", headers=service.ops_headers
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def assert_delivered(service: Service) -> None:
    failed = [
        (d.event_type, [a.status_code or a.error for a in d.attempts])
        for d in service.sandbox.webhooks.deliveries
        if not d.delivered
    ]
    assert failed == []


def source_account_reads(service: Service) -> list[str]:
    return [
        c.path
        for c in service.codat_calls("GET")
        if c.path.endswith("/bankFeedAccounts") or "/bankFeedAccounts/" in c.path
    ]


async def test_only_webhooks_bring_the_feed_to_connected_and_back(service: Service) -> None:
    # Without it the sandbox posts to PUBLIC_BASE_URL over the network and retries for minutes.
    assert service.sandbox.config.webhook_transport is not None, (
        "create_app(sandbox_webhook_transport=...) must reach SandboxConfig.webhook_transport"
    )
    await add_customer(service.sessions, accounts=2)
    link_url = await service.services.connect.connect("cus-1")
    calls_after_click = len(service.codat_calls())

    session = await connect_in_quickbooks(service.client, link_url)
    await service.sandbox.webhooks.drain()
    assert_delivered(service)
    await service.services.inbox_worker().run_once()

    stored = await events(service.sessions)
    assert sorted(e.event_type for e in stored) == [
        "bankFeeds.sourceAccount.connected",
        "bankFeeds.sourceAccount.connected",
        "connection.connected",
        "connection.created",
    ]
    assert {e.status for e in stored} == {"handled"}
    async with service.sessions() as db:
        feed = (await db.execute(select(BankFeed))).scalar_one()
        history = (await db.execute(select(BankFeedConnection))).scalars().all()
    assert (feed.connection_status, feed.last_refreshed_at) == ("Linked", None)
    assert feed.linked_at is not None
    assert [(h.connection_id, h.status) for h in history] == [(feed.connection_id, "Linked")]
    rows = await accounts(service.sessions)
    assert {a.codat_status for a in rows.values()} == {"connected"}
    assert all(a.feed_start_date is not None for a in rows.values())
    view = await ops_bank_feed(service)
    if view is not None:
        assert view["connection_status"] == "Linked" and view["refreshed"] is False
        assert {a["status"] for a in view["accounts"]} == {"connected"}

    # Nothing asked Codat for the feed after the click: the webhooks alone did it.
    assert source_account_reads(service) == []
    assert len(service.codat_calls()) == calls_after_click

    # The customer disconnects both accounts in QuickBooks; Codat says so later.
    for account_id in rows:
        response = await service.client.post(
            f"{SANDBOX}/qbo/disconnect", data={"session": session, "account": account_id}
        )
        assert response.status_code == 200
    service.sandbox.clock.advance(timedelta(days=1))
    service.sandbox.settle()
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()

    async with service.sessions() as db:
        feed = (await db.execute(select(BankFeed))).scalar_one()
    assert feed.connection_status == "Unlinked"
    assert {a.codat_status for a in (await accounts(service.sessions)).values()} == {"disconnected"}
    assert {e.status for e in await events(service.sessions)} == {"handled"}
    assert source_account_reads(service) == []

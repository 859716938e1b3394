"""`bankfeeds worker --once`: the inbox handled by a process that serves no HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.cli import main
from app.codat.webhooks import parse_envelope
from app.db import create_engine, session_factory, utcnow
from app.models import BankFeed
from app.webhooks import inbox
from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET, _truncate
from tests.factories import add_customer
from tests.webhooks.support import at, connection_payload, envelope, events, feed, seed_feed


async def accept_one(database_url: str) -> None:
    await _truncate(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    await seed_feed(sessions)
    body = json.dumps(envelope("connection.connected", connection_payload("Linked"), at(5)))
    async with sessions() as session:
        assert await inbox.accept(session, "msg_cli", parse_envelope(body.encode()), utcnow())
        await session.commit()
    await engine.dispose()


async def outcome(database_url: str) -> tuple[list[str], str | None]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        return [e.status for e in await events(sessions)], (await feed(sessions)).connection_status
    finally:
        await engine.dispose()


def test_worker_once_handles_pending_events(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(accept_one(database_url))
    for name, value in {
        "DATABASE_URL": database_url,
        "CODAT_API_KEY": "",
        "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CONNECT_TOKEN_SECRET": CONNECT_SECRET,
        "OPS_API_TOKEN": OPS_TOKEN,
        "BACKGROUND_WORKERS": "off",  # as on the web replicas; the worker runs regardless
        "RECONCILER_ENABLED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--once"]) == 0
    assert "Handled 1 webhook event(s)" in capsys.readouterr().out
    assert asyncio.run(outcome(database_url)) == (["handled"], "Linked")


async def add_unprovisioned_customer(database_url: str) -> None:
    await _truncate(database_url)
    engine = create_engine(database_url)
    try:
        await add_customer(session_factory(engine), accounts=2)
    finally:
        await engine.dispose()


async def provisioned_feed(database_url: str) -> tuple[str | None, str | None]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            row = await session.get(BankFeed, "cus-1")
            return (row.company_id, row.connection_id) if row else (None, None)
    finally:
        await engine.dispose()


def test_worker_once_provisions_ahead_of_the_click_when_on(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(add_unprovisioned_customer(database_url))
    for name, value in {
        "DATABASE_URL": database_url,
        "CODAT_API_KEY": "",
        "CONNECT_TOKEN_SECRET": CONNECT_SECRET,
        "OPS_API_TOKEN": OPS_TOKEN,
        "RECONCILER_ENABLED": "false",
        "PROVISION_AHEAD": "true",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--once"]) == 0
    assert "Provisioned 1 customer(s) ahead of a click." in capsys.readouterr().out
    company_id, connection_id = asyncio.run(provisioned_feed(database_url))
    assert company_id and connection_id

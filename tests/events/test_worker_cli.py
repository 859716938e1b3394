"""`bankfeeds worker --once` delivers the events its inbox handling emitted."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.cli import main
from app.db import create_engine, session_factory
from app.events.catalog import EVENT_TYPES
from app.events.schemas import EndpointIn
from app.events.service import EventService
from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET
from tests.events.support import HostApp, deliveries
from tests.test_worker_command import accept_one


async def prepare(database_url: str, url: str) -> str:
    await accept_one(database_url)  # a Codat `connection.connected` waiting in the inbox
    engine = create_engine(database_url)
    body = EndpointIn.model_validate({"url": url, "event_types": list(EVENT_TYPES)})
    try:
        endpoint, _ = await EventService(session_factory(engine)).put_endpoint("host-app", body)
    finally:
        await engine.dispose()
    assert endpoint.secret is not None
    return endpoint.secret


async def statuses(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return {d.status for d in await deliveries(session_factory(engine))}
    finally:
        await engine.dispose()


def test_worker_once_delivers_events(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = HostApp(random.Random(1))
    host.thread.start()
    try:
        host.secret = asyncio.run(prepare(database_url, host.url))
        for name, value in {
            "DATABASE_URL": database_url,
            "CODAT_API_KEY": "",
            "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CONNECT_TOKEN_SECRET": CONNECT_SECRET,
            "OPS_API_TOKEN": OPS_TOKEN,
            "BACKGROUND_WORKERS": "off",
            "RECONCILER_ENABLED": "false",
        }.items():
            monkeypatch.setenv(name, value)
        assert main(["worker", "--once"]) == 0
    finally:
        host.server.shutdown()
    assert "Made 2 event delivery attempt(s)." in capsys.readouterr().out
    assert [e["type"] for e in host.received()] == ["customer.connected", "customer.needs_action"]
    assert asyncio.run(statuses(database_url)) == {"delivered"}

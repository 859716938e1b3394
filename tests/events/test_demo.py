"""The demo host app registers itself for events, verifies what it receives and lists it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.demo.seed import DEMO_ENDPOINT, register_demo_endpoint
from tests.conftest import Service, _truncate, start_service
from tests.events.support import emit


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Service]:
    await _truncate(database_url)
    async for service in start_service(database_url, seed_demo=True):
        yield service


async def test_the_demo_receives_and_shows_events(demo: Service) -> None:
    listed = await demo.client.get("/ops/event-endpoints", headers=demo.ops_headers)
    [endpoint] = listed.json()["endpoints"]
    assert (endpoint["name"], endpoint["url"]) == (
        DEMO_ENDPOINT,
        "http://127.0.0.1:8000/demo/events",
    )
    assert len(endpoint["event_types"]) == 8

    [event_id] = await emit(demo.sessions, "demo-us-bakery", "txn-1")
    sender = demo.services.event_worker(transport=httpx.ASGITransport(app=demo.app))
    assert await sender.run_once() == 1
    shown = (await demo.client.get("/demo/events")).json()["events"]
    assert [(e["id"], e["type"], e["customer_id"]) for e in shown] == [
        (event_id, "transactions.pushed", "demo-us-bakery")
    ]

    page = await demo.client.get("/", headers={"accept": "text/html"})
    assert '<ul id="events" data-source="/demo/events"' in page.text
    assert '<script src="/demo/events.js" defer></script>' in page.text
    assert "<script>" not in page.text  # no inline script
    script = await demo.client.get("/demo/events.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "fetch(source" in script.text


async def test_the_demo_refuses_an_unsigned_event(demo: Service) -> None:
    forged = await demo.client.post(
        "/demo/events",
        content=b'{"id":"evt_1","type":"customer.connected","data":{}}',
        headers={"webhook-id": "evt_1", "webhook-timestamp": "1", "webhook-signature": "v1,AA=="},
    )
    assert forged.status_code == 401
    assert (await demo.client.get("/demo/events")).json() == {"events": []}


async def test_no_demo_endpoint_on_a_public_http_address(demo: Service) -> None:
    assert not await register_demo_endpoint(demo.services.events, "http://bank.test")
    assert await register_demo_endpoint(demo.services.events, "https://bank.test")
    one = await demo.client.get(f"/ops/event-endpoints/{DEMO_ENDPOINT}", headers=demo.ops_headers)
    assert one.json()["url"] == "https://bank.test/demo/events"

"""GET /metrics: Prometheus' text format, behind the ops token or on a port of its own, counting
clicks, Codat calls, webhooks and reconciler rounds, with the inbox read at scrape time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.connect.tokens import mint_connect_token
from app.db import utcnow
from app.models import CodatEvent
from app.sandbox.faults import FaultConfig
from tests.conftest import CONNECT_SECRET, Service, _truncate, start_service
from tests.factories import add_customer
from tests.servers import _spawn, free_port, service_env
from tests.webhooks.support import connection_payload, deliver, envelope, seed_feed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(service: Service) -> Samples:
    response = await service.client.get("/metrics", headers=service.ops_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_metrics_need_the_ops_token(service: Service) -> None:
    assert (await service.client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    refused = await service.client.get("/metrics", headers=wrong)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "A valid ops bearer token is required."}


async def test_without_an_ops_token_there_are_no_metrics(database_url: str) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, ops_api_token=None):
        assert (await service.client.get("/metrics")).status_code == 404


async def test_clicks_and_codat_calls_are_counted(service: Service) -> None:
    await add_customer(service.sessions, "cus-1")
    before = await scrape(service)

    good = mint_connect_token(CONNECT_SECRET, "cus-1")
    assert (
        await service.client.get("/connect-bank-feeds", params={"token": good})
    ).status_code == 302
    assert (
        await service.client.get("/connect-bank-feeds", params={"token": "garbage"})
    ).status_code == 401
    unknown = mint_connect_token(CONNECT_SECRET, "nobody")
    assert (
        await service.client.get("/connect-bank-feeds", params={"token": unknown})
    ).status_code == 404
    after = await scrape(service)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    clicks = "bankfeeds_connect_clicks_total"
    assert grew(clicks, outcome="redirected") == 1
    assert grew(clicks, outcome="token_invalid") == 1
    assert grew(clicks, outcome="customer_unknown") == 1
    requests = "bankfeeds_codat_requests_total"
    for operation in ("create-company", "create-connection", "create-batch-source-account"):
        assert (
            grew(requests, operation=operation, status="200" if "batch" not in operation else "201")
            == 1
        )
    latency = "bankfeeds_codat_request_duration_seconds_count"
    assert grew(latency, operation="create-company") == 1
    assert value(after, "bankfeeds_codat_quota_limit") > 0
    assert (
        0
        < value(after, "bankfeeds_codat_quota_remaining")
        <= value(after, "bankfeeds_codat_quota_limit")
    )


async def test_retries_and_429s_are_counted(service: Service) -> None:
    await add_customer(service.sessions, "cus-1")
    before = await scrape(service)
    faults = service.app.state.sandbox_app.state.faults
    config = faults.config
    faults.configure(FaultConfig(status_rates={429: 1.0}, retry_after_seconds=0, seed=1))
    service.services.connect.budget = 3.0  # room for several jittered retries on a busy machine
    good = mint_connect_token(CONNECT_SECRET, "cus-1")
    response = await service.client.get("/connect-bank-feeds", params={"token": good})
    faults.configure(config)
    assert response.status_code == 503
    after = await scrape(service)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    rate_limited = grew("bankfeeds_codat_rate_limited_total", operation="create-company")
    assert rate_limited >= 2
    assert grew("bankfeeds_codat_requests_total", operation="create-company", status="429") == (
        rate_limited
    )
    assert grew("bankfeeds_codat_retries_total", operation="create-company", reason="429") == (
        rate_limited - 1
    )
    assert grew("bankfeeds_connect_clicks_total", outcome="codat_unavailable") == 1


async def test_webhooks_and_the_inbox_are_measured(service: Service) -> None:
    await seed_feed(service.sessions)
    before = await scrape(service)
    assert value(before, "bankfeeds_webhook_inbox_events", status="pending") == 0
    assert value(before, "bankfeeds_webhook_last_received_timestamp_seconds") == 0

    event = envelope("connection.connected", connection_payload("Linked"))
    assert (await deliver(service.client, event, webhook_id="msg_1")).status_code == 202
    assert (await deliver(service.client, event, webhook_id="msg_1")).status_code == 200
    other = envelope("company.created", {"id": "c-1", "name": "Acme"})
    assert (await deliver(service.client, other, webhook_id="msg_2")).status_code == 202
    quota = {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": "2099-01-01T00:00:00Z"}
    limited = envelope("client.rateLimit.reached", quota)
    assert (await deliver(service.client, limited, webhook_id="msg_3")).status_code == 202
    refused = await service.client.post(
        "/webhooks/codat",
        content=json.dumps(event).encode(),
        headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
    )
    assert refused.status_code == 401
    async with service.sessions() as session:  # the first event has waited ten minutes
        await session.execute(
            CodatEvent.__table__.update()
            .where(CodatEvent.webhook_id == "msg_1")
            .values(received_at=utcnow() - timedelta(minutes=10))
        )
        await session.commit()
    waiting = await scrape(service)

    def grew(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    deliveries = "bankfeeds_webhook_deliveries_total"
    assert grew(waiting, deliveries, event_type="connection.connected", outcome="accepted") == 1
    assert grew(waiting, deliveries, event_type="connection.connected", outcome="duplicate") == 1
    assert grew(waiting, deliveries, event_type="other", outcome="accepted") == 1
    assert grew(waiting, deliveries, event_type="unknown", outcome="bad_signature") == 1
    assert value(waiting, "bankfeeds_webhook_inbox_events", status="pending") == 3
    assert value(waiting, "bankfeeds_codat_rate_limit_paused") == 0
    age = value(waiting, "bankfeeds_webhook_inbox_oldest_pending_age_seconds")
    assert 600 <= age < 3600
    assert (
        abs(value(waiting, "bankfeeds_webhook_last_received_timestamp_seconds") - time.time()) < 600
    )

    assert await service.services.inbox_worker().run_once() == 3
    handled = await scrape(service)
    events = "bankfeeds_webhook_events_total"
    assert grew(handled, events, event_type="connection.connected", outcome="handled") == 1
    assert grew(handled, events, event_type="other", outcome="ignored") == 1
    assert grew(handled, events, event_type="client.rateLimit.reached", outcome="handled") == 1
    assert value(handled, "bankfeeds_codat_quota_remaining") == 0
    assert value(handled, "bankfeeds_codat_quota_limit") == 12000
    assert value(handled, "bankfeeds_codat_rate_limit_paused") == 1
    assert value(handled, "bankfeeds_webhook_inbox_events", status="pending") == 0
    assert value(handled, "bankfeeds_webhook_inbox_oldest_pending_age_seconds") == 0
    assert value(handled, "bankfeeds_metrics_database_read_ok") == 1


async def test_reconciler_rounds_are_counted(service: Service) -> None:
    before = await scrape(service)
    task = asyncio.create_task(service.services.reconciler().run())
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = await scrape(service)
            rounds = value(after, "bankfeeds_reconciler_cycles_total", outcome="ok")
            if rounds > value(before, "bankfeeds_reconciler_cycles_total", outcome="ok"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("no reconciler round was counted")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert value(after, "bankfeeds_reconciler_last_cycle_timestamp_seconds") > 0


@pytest.fixture
async def on_its_own_port(database_url: str) -> AsyncIterator[tuple[Service, int]]:
    await _truncate(database_url)
    port = free_port()
    async for service in start_service(database_url, metrics_port=port):
        yield service, port


async def test_a_metrics_port_serves_them_without_a_token(
    on_its_own_port: tuple[Service, int],
) -> None:
    service, port = on_its_own_port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert "bankfeeds_webhook_inbox_events" in response.text
    assert (await service.client.get("/metrics", headers=service.ops_headers)).status_code == 404


def test_the_worker_serves_its_metrics_on_the_metrics_port(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(database_url, free_port(), METRICS_PORT=str(port))
    with _spawn(["worker"], tmp_path, port, "worker", "/metrics", env) as worker:
        response = httpx.get(f"{worker.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert "bankfeeds_webhook_inbox_events" in response.text

"""SIGKILL the service while it handles Codat's webhooks and delivers our events, restart it,
and every event still arrives, signed, each change emitted once."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.events.outbox import announce
from app.models import BankFeed, CodatEvent, EventDelivery, SourceAccount
from tests.conftest import OPS_TOKEN
from tests.events.support import HostApp
from tests.servers import Process, free_port, run_service
from tests.webhooks.support import (
    account_payload,
    at,
    connection_payload,
    envelope,
    seed_feed,
    signed_headers,
)

CUSTOMERS = 10
KILLS = 3
SEED = 1717
ENDPOINT = "crash-test"
SERVICE_ENV = {
    "RECONCILER_ENABLED": "false",  # the seeded feeds exist only in our database
    "WEBHOOK_POLL_SECONDS": "0.2",
    "EVENT_POLL_SECONDS": "0.2",
    "EVENT_TIMEOUT_SECONDS": "1",
    "EVENT_RETRY_BASE_SECONDS": "0.2",
    "EVENT_RETRY_MAX_SECONDS": "1",
}


def key(event: dict[str, Any]) -> str:
    """What changed: one event id per key means each change was emitted once."""
    data = event["data"]
    detail = data.get("account_id") or ",".join(data.get("reasons", []))
    return f"{data['customer_id']} {event['type']} {detail}".strip()


@pytest.mark.slow
async def test_sigkill_while_handling_and_delivering_loses_no_event(
    database_url: str, sessions: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    customers = [f"crash-{n}" for n in range(CUSTOMERS)]
    for customer_id in customers:
        await seed_feed(
            sessions,
            customer_id,
            company_id=str(uuid.uuid4()),
            connection_id=str(uuid.uuid4()),
        )
        async with sessions() as session:  # what the click told the host app
            await announce(session, customer_id)
            await session.commit()
    codat_webhooks = []  # in Codat's order per customer; customers interleaved
    for customer_id in customers:
        async with sessions() as session:
            feed = await session.get(BankFeed, customer_id)
            assert feed is not None and feed.company_id and feed.connection_id
        ids = dict(company_id=feed.company_id, connection_id=feed.connection_id)
        codat_webhooks.append(
            [
                ("connection.connected", connection_payload("Linked", **ids)),
                *[
                    (
                        "bankFeeds.sourceAccount.connected",
                        account_payload(f"{customer_id}-acc-{n}", "connected", **ids),
                    )
                    for n in range(2)
                ],
            ]
        )

    host = HostApp(rng, failure_rate=0.2)
    host.thread.start()
    port = free_port()
    pending_at_kill: list[tuple[int, int]] = []
    processes: list[Process] = []
    running = ExitStack()

    def start() -> Process:
        process = running.enter_context(
            run_service(database_url, tmp_path, port=port, **SERVICE_ENV)
        )
        processes.append(process)
        return process

    async def post_codat_webhooks(client: httpx.AsyncClient) -> None:
        """Codat's deliveries: each retried until the service accepts it (it may be down)."""
        queues = [list(q) for q in codat_webhooks]
        n = 0
        while any(queues):
            queue = rng.choice([q for q in queues if q])
            event_type, payload = queue.pop(0)
            n += 1
            body = json.dumps(envelope(event_type, payload, at(n))).encode()
            headers = signed_headers(body, webhook_id=f"msg_{uuid.uuid4().hex}")
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = await client.post(
                        f"http://127.0.0.1:{port}/webhooks/codat", content=body, headers=headers
                    )
                    if response.status_code in (200, 202):
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the service did not come back"
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0, 0.05))

    try:
        process = start()
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.put(
                f"{process.url}/ops/event-endpoints/{ENDPOINT}",
                json={
                    "url": host.url,
                    "event_types": [
                        "customer.connected",
                        "customer.needs_action",
                        "account.connected",
                    ],
                },
                headers={"Authorization": f"Bearer {OPS_TOKEN}"},
            )
            assert response.status_code == 201
            host.secret = response.json()["secret"]
            poster = asyncio.create_task(post_codat_webhooks(client))
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                process.kill()  # SIGKILL: no shutdown, no finally, claims left held
                pending_at_kill.append(await _pending(sessions))
                running.close()
                process = start()
            await poster

            deadline = time.monotonic() + 150  # an inbox claim cut by a kill lapses after 60 s
            while time.monotonic() < deadline:
                handled, undelivered = await _progress(sessions)
                if handled == 3 * CUSTOMERS and undelivered == 0:
                    break
                await asyncio.sleep(0.5)
    finally:
        running.close()
        host.server.shutdown()
    logs = "".join(p.log() for p in processes)

    received = host.received()
    by_key: dict[str, set[str]] = {}
    for event in received:
        by_key.setdefault(key(event), set()).add(event["id"])
    for customer_id in customers:
        for expected in (
            f"{customer_id} customer.connected",
            f"{customer_id} account.connected {customer_id}-acc-0",
            f"{customer_id} account.connected {customer_id}-acc-1",
        ):
            assert expected in by_key, (expected, sorted(by_key))
    assert all(len(ids) == 1 for ids in by_key.values()), by_key  # each change emitted once
    async with sessions() as session:
        statuses = Counter(
            (
                await session.execute(
                    select(EventDelivery.status).where(EventDelivery.endpoint_name == ENDPOINT)
                )
            ).scalars()
        )
        linked = await session.scalar(
            select(func.count()).where(BankFeed.connection_status == "Linked")
        )
        connected = await session.scalar(
            select(func.count()).where(SourceAccount.codat_status == "connected")
        )
    assert statuses == {"delivered": len(by_key)}  # no delivery left behind or given up
    assert (linked, connected) == (CUSTOMERS, 2 * CUSTOMERS)
    assert host.refused == 0  # every whole request's signature verified
    assert "Traceback" not in logs
    # The kills landed with work in hand: Codat events or deliveries not done yet.
    assert sum(inbox + outbox for inbox, outbox in pending_at_kill) > 0, pending_at_kill


async def _pending(sessions: Any) -> tuple[int, int]:
    async with sessions() as session:
        inbox = await session.scalar(select(func.count()).where(CodatEvent.status == "pending"))
        outbox = await session.scalar(
            select(func.count()).where(
                EventDelivery.endpoint_name == ENDPOINT, EventDelivery.status == "pending"
            )
        )
    return int(inbox or 0), int(outbox or 0)


async def _progress(sessions: Any) -> tuple[int, int]:
    async with sessions() as session:
        handled = await session.scalar(select(func.count()).where(CodatEvent.status == "handled"))
        undelivered = await session.scalar(
            select(func.count()).where(
                EventDelivery.endpoint_name == ENDPOINT, EventDelivery.status != "delivered"
            )
        )
    return int(handled or 0), int(undelivered or 0)

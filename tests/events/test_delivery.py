"""Delivery: signed as Standard Webhooks, retried with backoff for 24 hours, never following
a redirect, in order per customer, and each attempt made by one process only."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.events import deliveries as queue
from app.events.worker import EventWorker
from tests.conftest import Service
from tests.events.support import Clock, Receiver, deliveries, emit, outbox, register
from tests.factories import add_customer


def worker(service: Service, receiver: Receiver, clock: Clock | None = None) -> EventWorker:
    return service.services.event_worker(transport=receiver, clock=clock or Clock())


async def test_delivered_signed_as_standard_webhooks(service: Service) -> None:
    secret = await register(service)
    await add_customer(service.sessions, accounts=0)
    [event_id] = await emit(service.sessions, "cus-1", "txn-1")
    receiver = Receiver()
    assert await worker(service, receiver).run_once() == 1

    [request] = receiver.received
    stored = (await outbox(service.sessions))[0]
    assert request.url == "https://bank.test/hooks/bankfeeds"
    assert request.verified(secret) == stored  # what any Standard Webhooks library does
    assert request.headers["webhook-id"] == event_id == stored["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body + b" ", request.headers)
    [row] = await deliveries(service.sessions)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 204)
    assert row.delivered_at is not None and row.locked_until is None
    assert await worker(service, receiver).run_once() == 0  # delivered once, not again


async def test_retried_with_backoff_after_the_receiver_fails(service: Service) -> None:
    secret = await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "txn-1")
    receiver = Receiver(
        answers=[httpx.Response(500), httpx.Response(503, headers={"retry-after": "120"})]
    )
    clock = Clock()
    start = clock.now
    sender = worker(service, receiver, clock)

    assert await sender.run_once() == 1
    [row] = await deliveries(service.sessions)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    assert row.next_attempt_at is not None
    assert start + timedelta(seconds=4) <= row.next_attempt_at <= start + timedelta(seconds=5)
    assert await sender.run_once() == 0  # not due yet

    clock.advance(6)
    assert await sender.run_once() == 1
    [row] = await deliveries(service.sessions)
    assert row.attempts == 2 and row.last_status_code == 503
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= clock.now + timedelta(seconds=120)  # Retry-After honoured

    clock.advance(121)
    assert await sender.run_once() == 1
    [row] = await deliveries(service.sessions)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    for request in receiver.received:
        request.verified(secret)


def test_backoff_doubles_up_to_its_cap_and_stops_at_24_hours() -> None:
    clock = Clock()
    sender = EventWorker(None, retry_base_seconds=5, retry_max_seconds=3600, clock=clock)  # type: ignore[arg-type]
    until = clock.now + timedelta(hours=24)
    failed = queue.Result(False, 500, "HTTP 500")

    def job(attempts: int) -> queue.Job:
        return queue.Job(1, attempts, "evt_1", "{}", "ep", "https://x.test/", ["s"], until)

    delays = []
    for attempts in (1, 2, 3, 12, 13):
        retry = sender.retry_at(job(attempts), failed, clock.now)
        assert retry is not None
        delays.append((retry - clock.now).total_seconds())
    assert 4 <= delays[0] <= 5 and 8 <= delays[1] <= 10 and 16 <= delays[2] <= 20
    assert 2880 <= delays[3] <= 3600 and 2880 <= delays[4] <= 3600
    assert sender.retry_at(job(40), failed, until - timedelta(seconds=10)) == until
    assert sender.retry_at(job(40), failed, until) is None


async def test_given_up_after_24_hours_then_redelivered_by_hand(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "txn-1")
    receiver = Receiver(answer=lambda request: httpx.Response(500))
    clock = Clock()
    sender = worker(service, receiver, clock)
    for _ in range(40):  # bounded: the backoff reaches 24 hours well within this
        await sender.run_once()
        [row] = await deliveries(service.sessions)
        if row.status != "pending":
            break
        assert row.next_attempt_at is not None
        clock.now = row.next_attempt_at
    assert row.status == "failed" and row.next_attempt_at is None
    assert row.last_attempt_at == row.deliver_until
    attempts = len(receiver.received)
    assert 15 < attempts < 40

    listed = await service.client.get(
        "/ops/event-deliveries", params={"status": "failed"}, headers=service.ops_headers
    )
    assert [d["id"] for d in listed.json()["deliveries"]] == [row.id]
    assert listed.json()["deliveries"][0]["last_error"] == "HTTP 500"

    receiver.answer = None
    again = await service.client.post(
        f"/ops/event-deliveries/{row.id}/redeliver", headers=service.ops_headers
    )
    assert again.status_code == 202
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    assert await worker(service, receiver).run_once() == 1
    [row] = await deliveries(service.sessions)
    assert row.status == "delivered" and len(receiver.received) == attempts + 1


async def test_redirects_are_never_followed(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "txn-1")
    moved = httpx.Response(307, headers={"location": "https://elsewhere.test/hook"})
    receiver = Receiver(answers=[moved])
    await worker(service, receiver).run_once()
    assert [r.url for r in receiver.received] == ["https://bank.test/hooks/bankfeeds"]
    [row] = await deliveries(service.sessions)
    assert row.status == "pending" and row.last_status_code == 307
    assert row.last_error == "HTTP 307: redirects are not followed"


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.ReadTimeout("slow"), "no answer within 10s"),
        (httpx.ConnectError("refused"), "ConnectError: refused"),
    ],
)
async def test_no_answer_is_a_failed_attempt(
    service: Service, failure: Exception, error: str
) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "txn-1")
    await worker(service, Receiver(answers=[failure])).run_once()
    [row] = await deliveries(service.sessions)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "pending",
        1,
        None,
        error,
    )


async def test_a_slow_receiver_is_cut_off_at_the_time_limit(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "txn-1")

    class Slow(Receiver):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(5)
            return await super().handle_async_request(request)

    sender = service.services.event_worker(transport=Slow(), timeout_seconds=0.2)
    assert sender.lock == timedelta(seconds=5.2)
    await asyncio.wait_for(sender.run_once(), 3)
    [row] = await deliveries(service.sessions)
    assert (row.status, row.last_error) == ("pending", "no answer within 0.2s")


async def test_in_order_per_customer_unless_an_earlier_one_is_retrying(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, "cus-a", accounts=0)
    await add_customer(service.sessions, "cus-b", accounts=0)
    a1 = await emit(service.sessions, "cus-a", "a1")
    b1 = await emit(service.sessions, "cus-b", "b1")
    a2 = await emit(service.sessions, "cus-a", "a2", "a3")
    b2 = await emit(service.sessions, "cus-b", "b2")
    receiver = Receiver()
    await worker(service, receiver).run_once()
    order = [r.headers["webhook-id"] for r in receiver.received]
    assert [i for i in order if i in a1 + a2] == a1 + a2
    assert [i for i in order if i in b1 + b2] == b1 + b2

    # The first event of a customer fails: the next ones go on, it follows on its retry.
    first = await emit(service.sessions, "cus-a", "a4")
    rest = await emit(service.sessions, "cus-a", "a5", "a6")
    receiver = Receiver(answers=[httpx.Response(500)])
    clock = Clock()
    await worker(service, receiver, clock).run_once()
    assert [r.headers["webhook-id"] for r in receiver.received] == first + rest
    clock.advance(10)
    await worker(service, receiver, clock).run_once()
    assert [r.headers["webhook-id"] for r in receiver.received] == first + rest + first


async def test_an_event_waits_while_the_one_before_is_being_attempted(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "t1", "t2")
    clock = Clock()
    async with service.sessions() as session:
        first, second = await queue.due(session, clock.now, 10) + [None]  # type: ignore[list-item]
        assert second is None  # the second waits for the first's first attempt
        assert await queue.claim(session, first.id, 0, clock.now, timedelta(seconds=20))
        await session.commit()
        assert await queue.due(session, clock.now, 10) == []  # in flight: still waiting
        assert not await queue.claim(session, first.id, 0, clock.now, timedelta(seconds=20))
    clock.advance(21)  # the process that claimed it died: the claim lapses
    receiver = Receiver()
    assert await worker(service, receiver, clock).run_once() == 2
    assert [r.event["data"]["transaction_ids"] for r in receiver.received] == [["t1"], ["t2"]]


async def test_two_processes_deliver_each_event_once_and_in_order(service: Service) -> None:
    await register(service)
    customers = [f"cus-{n}" for n in range(4)]
    for customer_id in customers:
        await add_customer(service.sessions, customer_id, accounts=0)
    emitted = {
        c: await emit(service.sessions, c, *[f"{c}-t{n}" for n in range(5)]) for c in customers
    }

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(204)

    class SlowReceiver(Receiver):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await slow(request)
            return await super().handle_async_request(request)

    receiver = SlowReceiver()
    one, two = worker(service, receiver), worker(service, receiver)
    for _ in range(10):  # bounded; both look at the same queue at the same time
        await asyncio.gather(one.run_once(), two.run_once())
        if len(receiver.received) >= 20:
            break
    order = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(order) == sorted(i for ids in emitted.values() for i in ids)
    for customer_id, ids in emitted.items():
        assert [i for i in order if i in ids] == ids, customer_id
    assert {d.attempts for d in await deliveries(service.sessions)} == {1}


async def test_a_rotated_secret_keeps_signing_for_24_hours(service: Service) -> None:
    old = await register(service)
    rotated = await service.client.post(
        "/ops/event-endpoints/host-app/rotate-secret", headers=service.ops_headers
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "t1", "t2")
    receiver = Receiver()
    clock = Clock()
    await worker(service, receiver, clock).run_once()
    [during, _] = receiver.received
    assert len(during.headers["webhook-signature"].split()) == 2
    assert during.verified(old) == during.verified(new)

    # A day later only the new secret signs (checked without the library's 5-minute window).
    later = clock.now + timedelta(hours=24, seconds=1)
    first = (await deliveries(service.sessions))[0]
    async with service.sessions() as session:
        assert await queue.redeliver(session, first.id, later)
        await session.commit()
    clock.now = later
    await worker(service, receiver, clock).run_once()
    after = receiver.received[-1]
    signature = Webhook(new).sign(after.headers["webhook-id"], later, after.body.decode())
    assert after.headers["webhook-signature"] == signature


async def test_a_deleted_endpoint_takes_its_queued_deliveries(service: Service) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "t1")
    response = await service.client.delete(
        "/ops/event-endpoints/host-app", headers=service.ops_headers
    )
    assert response.status_code == 204
    assert await deliveries(service.sessions) == []
    assert len(await outbox(service.sessions)) == 1
    assert await worker(service, Receiver()).run_once() == 0


async def test_secrets_never_reach_the_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = await register(service, url="https://bank.test/hooks?key=private-query-token")
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "t1")
    await worker(service, Receiver(answers=[httpx.ConnectError("refused")])).run_once()
    assert "failed" in caplog.text
    assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text
    assert "private-query-token" not in caplog.text

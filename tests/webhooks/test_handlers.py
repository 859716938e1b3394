"""What each event does once handled: statuses move forward only, unknown ones are reported."""

from __future__ import annotations

import asyncio
import logging
from datetime import date

import pytest

from tests.conftest import Service
from tests.webhooks.support import (
    COMPANY,
    CONNECTION,
    account_payload,
    accounts,
    at,
    connection_payload,
    deliver,
    envelope,
    events,
    feed,
    history,
    seed_feed,
    service_state,
)

OLD_CONNECTION = "9f1c0c55-3f5e-4d59-8e56-0a8f3c1d7b20"


async def handle(service: Service, *deliveries: dict[str, object]) -> list[str]:
    for event in deliveries:
        assert (await deliver(service.client, event)).status_code == 202
    await service.services.inbox_worker().run_once()
    return [e.status for e in await events(service.sessions)]


@pytest.mark.parametrize(
    ("event_type", "reported", "expected"),
    [
        ("connection.created", "PendingAuth", "PendingAuth"),
        ("connection.connected", "Linked", "Linked"),
        ("connection.reconnected", "Linked", "Linked"),
        ("connection.disconnected", "Deauthorized", "Deauthorized"),
        ("connection.disconnected", "Unlinked", "Unlinked"),
        ("connection.failed", "PendingAuth", "PendingAuth"),
        ("connection.deleted", "Linked", "Deauthorized"),
    ],
)
async def test_connection_events_set_the_status(
    service: Service,
    event_type: str,
    reported: str,
    expected: str,
) -> None:
    await seed_feed(
        service.sessions, status="Linked" if event_type != "connection.connected" else "PendingAuth"
    )
    assert await handle(service, envelope(event_type, connection_payload(reported), at(5))) == [
        "handled"
    ]
    row = await feed(service.sessions)
    assert (row.connection_status, row.connection_status_at) == (expected, at(5))
    assert row.connection_id == CONNECTION  # kept even when deleted: the history stays
    assert await history(service.sessions) == {CONNECTION: expected}
    [stored] = await events(service.sessions)
    assert stored.customer_id == "cus-1"


async def test_connected_generated_before_a_disconnect_does_not_win(service: Service) -> None:
    await seed_feed(service.sessions)
    statuses = await handle(
        service,
        envelope("connection.disconnected", connection_payload("Unlinked"), at(20)),
        envelope("connection.connected", connection_payload("Linked"), at(10)),
    )
    assert statuses == ["handled", "handled"]
    row = await feed(service.sessions)
    assert (row.connection_status, row.connection_status_at) == ("Unlinked", at(20))


async def test_account_connected_generated_before_a_disconnect_does_not_win(
    service: Service,
) -> None:
    await seed_feed(service.sessions)
    await handle(
        service,
        envelope(
            "bankFeeds.sourceAccount.disconnected",
            account_payload("cus-1-acc-0", "disconnected", feed_start=None),
            at(20),
        ),
        envelope(
            "bankFeeds.sourceAccount.connected", account_payload("cus-1-acc-0", "connected"), at(10)
        ),
    )
    account = (await accounts(service.sessions))["cus-1-acc-0"]
    assert (account.codat_status, account.status_changed_at) == ("disconnected", at(20))
    assert account.last_heard_at == at(20)


@pytest.mark.parametrize("legacy", [False, True], ids=["since-2025-01-10", "unwrapped"])
async def test_account_connected_sets_status_feed_start_and_last_heard(
    service: Service,
    legacy: bool,
) -> None:
    await seed_feed(service.sessions)
    # Codat's own example of this event says "pending": the event type is what counts.
    payload = account_payload("cus-1-acc-1", "pending", legacy=legacy)
    await handle(service, envelope("bankFeeds.sourceAccount.connected", payload, at(5)))
    rows = await accounts(service.sessions)
    connected = rows["cus-1-acc-1"]
    assert connected.codat_status == "connected"
    assert connected.feed_start_date == date(2026, 11, 18)
    assert (connected.status_changed_at, connected.last_heard_at) == (at(5), at(5))
    assert rows["cus-1-acc-0"].codat_status == "pending"  # the other account is untouched


async def test_account_disconnected(service: Service) -> None:
    await seed_feed(service.sessions)
    await handle(
        service,
        envelope(
            "bankFeeds.sourceAccount.connected", account_payload("cus-1-acc-0", "connected"), at(5)
        ),
        envelope(
            "bankFeeds.sourceAccount.disconnected",
            account_payload("cus-1-acc-0", "disconnected", feed_start=None),
            at(9),
        ),
    )
    account = (await accounts(service.sessions))["cus-1-acc-0"]
    assert (account.codat_status, account.status_changed_at) == ("disconnected", at(9))


async def test_event_for_an_earlier_connection_updates_only_its_history(
    service: Service,
) -> None:
    await seed_feed(service.sessions, connection_id=OLD_CONNECTION, status="Unlinked")
    async with service.sessions() as session:  # the customer clicked again: a new connection
        from app.bank_feeds.repository import get_bank_feed, record_connection

        row = await get_bank_feed(session, "cus-1")
        assert row is not None
        record_connection(row, session, CONNECTION, "PendingAuth", at(0))
        await session.commit()
    statuses = await handle(
        service,
        envelope(
            "connection.deleted",
            connection_payload("Unlinked", connection_id=OLD_CONNECTION),
            at(5),
        ),
        envelope(
            "bankFeeds.sourceAccount.disconnected",
            account_payload("cus-1-acc-0", "disconnected", connection_id=OLD_CONNECTION),
            at(6),
        ),
    )
    assert statuses == ["handled", "ignored"]
    row = await feed(service.sessions)
    assert (row.connection_id, row.connection_status) == (CONNECTION, "PendingAuth")
    assert await history(service.sessions) == {
        OLD_CONNECTION: "Deauthorized",
        CONNECTION: "PendingAuth",
    }
    assert (await accounts(service.sessions))["cus-1-acc-0"].codat_status == "pending"


async def test_found_by_connection_when_the_company_is_not_named(service: Service) -> None:
    await seed_feed(service.sessions)
    payload = account_payload("cus-1-acc-0", "connected", company_id="unknown-company")
    del payload["referenceCompany"]
    del payload["companyId"]
    assert await handle(service, envelope("bankFeeds.sourceAccount.connected", payload)) == [
        "handled"
    ]
    assert (await accounts(service.sessions))["cus-1-acc-0"].codat_status == "connected"


async def test_unknown_company_connection_or_account_is_unmatched_and_listed(
    service: Service,
) -> None:
    await seed_feed(service.sessions)
    stranger = "5d0c2b8e-0000-4000-8000-000000000001"
    statuses = await handle(
        service,
        envelope(
            "connection.connected",
            connection_payload("Linked", company_id=stranger, connection_id=stranger),
        ),
        envelope("connection.connected", connection_payload("Linked", connection_id=stranger)),
        envelope("bankFeeds.sourceAccount.connected", account_payload("no-such-acc", "connected")),
    )
    assert statuses == ["unmatched", "unmatched", "unmatched"]
    assert (await feed(service.sessions)).connection_status == "PendingAuth"
    response = await service.client.get(
        "/ops/webhook-events",
        headers=service.ops_headers,
        params={"status": "unmatched", "limit": 2},
    )
    assert response.status_code == 200
    listed = response.json()["events"]
    assert len(listed) == 2
    assert {e["status"] for e in listed} == {"unmatched"}
    assert listed[0]["id"] > listed[1]["id"]  # newest first
    assert listed[0]["customer_id"] == "cus-1" and listed[0]["last_error"] is None


async def test_unmatched_event_can_be_retried_once_its_customer_exists(service: Service) -> None:
    assert await handle(
        service, envelope("connection.connected", connection_payload("Linked"), at(5))
    ) == ["unmatched"]
    await seed_feed(service.sessions)
    [event] = await events(service.sessions)
    retried = await service.client.post(
        f"/ops/webhook-events/{event.id}/retry", headers=service.ops_headers
    )
    assert retried.status_code == 202
    await service.services.inbox_worker().run_once()
    assert [e.status for e in await events(service.sessions)] == ["handled"]
    assert (await feed(service.sessions)).connection_status == "Linked"
    again = await service.client.post(
        "/ops/webhook-events/999999/retry", headers=service.ops_headers
    )
    assert again.status_code == 404


async def test_connection_failed_records_the_error(
    service: Service,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await seed_feed(service.sessions)
    errors = [
        {
            "statusCode": "401",
            "statusText": "Unauthorized",
            "errorMessage": "QuickBooks refused the credentials",
            "erroredOnUtc": "2026-11-20T12:00:00Z",
            "status": "Active",
        }
    ]
    with caplog.at_level(logging.WARNING, logger="app.webhooks"):
        await handle(
            service,
            envelope(
                "connection.failed",
                connection_payload("Deauthorized", dataConnectionErrors=errors),
                at(5),
            ),
        )
    assert (await feed(service.sessions)).connection_status == "Deauthorized"
    assert "QuickBooks refused the credentials" in caplog.text
    [stored] = await events(service.sessions)
    assert stored.payload["connection"]["dataConnectionErrors"][0]["statusCode"] == "401"


async def test_a_payload_missing_what_its_type_needs_fails_without_retrying(
    service: Service,
) -> None:
    await seed_feed(service.sessions)
    await handle(service, envelope("connection.connected", {"referenceCompany": {"id": COMPANY}}))
    [stored] = await events(service.sessions)
    assert (stored.status, stored.attempts) == ("failed", 1)
    assert stored.last_error == "connection.connected payload: invalid connection"
    assert (await feed(service.sessions)).connection_status == "PendingAuth"


async def test_rate_limit_pause_and_resume_in_generated_order(service: Service) -> None:
    reached = {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": "2026-11-21T00:00:00Z"}
    await handle(service, envelope("client.rateLimit.reached", reached, at(0)))
    state = await service_state(service.sessions, "codat_rate_limit")
    assert state is not None and state["paused_until"] == "2026-11-21T00:00:00+00:00"
    assert state["quota_remaining"] == 0

    await handle(
        service,
        envelope("client.rateLimit.reset", {"dailyQuota": 12000, "quotaRemaining": 12000}, at(60)),
    )
    state = await service_state(service.sessions, "codat_rate_limit")
    assert state is not None and state["paused_until"] is None

    # A `reached` generated before the reset, delivered after it, does not pause again.
    await handle(service, envelope("client.rateLimit.reached", reached, at(30)))
    state = await service_state(service.sessions, "codat_rate_limit")
    assert state is not None and state["paused_until"] is None
    assert [e.status for e in await events(service.sessions)] == ["handled"] * 3


@pytest.mark.parametrize(("stamped", "expected"), [(-3, "Linked"), (-60, "PendingAuth")])
async def test_leaving_pending_auth_allows_for_codats_clock_against_ours(
    service: Service, stamped: int, expected: str
) -> None:
    # We recorded PendingAuth at at(0) on our clock (the click); Codat's stamp may be a bit behind.
    await seed_feed(service.sessions, status_at=at(0))
    await handle(
        service, envelope("connection.connected", connection_payload("Linked"), at(stamped))
    )
    row = await feed(service.sessions)
    assert (row.connection_status, row.connection_status_at) == (expected, at(0))


@pytest.mark.parametrize(("stamped", "expected"), [(-3, "connected"), (-60, "pending")])
async def test_leaving_pending_allows_for_codats_clock_against_ours(
    service: Service, stamped: int, expected: str
) -> None:
    await seed_feed(service.sessions, status_at=at(0))
    await handle(
        service,
        envelope(
            "bankFeeds.sourceAccount.connected",
            account_payload("cus-1-acc-0", "connected"),
            at(stamped),
        ),
    )
    account = (await accounts(service.sessions))["cus-1-acc-0"]
    assert (account.codat_status, account.status_changed_at) == (expected, at(0))


async def test_a_linked_connection_never_goes_back_to_pending_auth_on_a_late_created(
    service: Service,
) -> None:
    await seed_feed(service.sessions, status_at=at(0))
    await handle(
        service,
        envelope("connection.connected", connection_payload("Linked"), at(5)),
        envelope("connection.created", connection_payload("PendingAuth"), at(4)),
    )
    assert (await feed(service.sessions)).connection_status == "Linked"


async def test_connection_announced_before_the_click_records_it_is_retried(
    service: Service,
) -> None:
    from app.bank_feeds.repository import get_bank_feed, record_connection
    from app.db import utcnow
    from app.models import BankFeed
    from tests.factories import add_customer

    await add_customer(service.sessions)
    async with service.sessions() as session:  # the click has asked Codat for a connection
        session.add(
            BankFeed(customer_id="cus-1", company_id=COMPANY, connection_requested_at=utcnow())
        )
        await session.commit()
    await deliver(
        service.client, envelope("connection.created", connection_payload("PendingAuth"), at(0))
    )
    worker = service.services.inbox_worker(retry_base_seconds=0.05)
    await worker.run_once()
    [event] = await events(service.sessions)
    assert (event.status, event.attempts) == ("pending", 1)
    assert event.last_error == f"NotRecordedYet: connection {CONNECTION} is not recorded yet"

    async with service.sessions() as session:  # the click records it
        row = await get_bank_feed(session, "cus-1")
        assert row is not None
        record_connection(row, session, CONNECTION, "PendingAuth", utcnow())
        await session.commit()
    await asyncio.sleep(0.15)
    await worker.run_once()
    [event] = await events(service.sessions)
    assert (event.status, event.customer_id) == ("handled", "cus-1")

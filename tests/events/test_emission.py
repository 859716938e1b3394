"""Each status change of a customer is stored once as an event, in the transaction of the
change, whichever way it is learnt: Codat's webhooks, a click, a refresh or the ops API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.events.outbox import announce, emit_transactions
from app.models import CustomerEventState, EventDelivery
from tests.conftest import Service
from tests.events.support import deliveries, kinds, outbox, register
from tests.factories import add_customer
from tests.webhooks.support import (
    COMPANY,
    CONNECTION,
    account_payload,
    at,
    connection_payload,
    deliver,
    envelope,
    seed_feed,
)
from tests.webhooks.test_journey import SANDBOX, connect_in_quickbooks

ACC0, ACC1 = "cus-1-acc-0", "cus-1-acc-1"


async def handle(service: Service, event_type: str, payload: dict, seconds: float) -> None:
    """Codat's webhook, received and handled."""
    response = await deliver(service.client, envelope(event_type, payload, at(seconds)))
    assert response.status_code == 202
    await service.services.inbox_worker().run_once()


async def new_events(service: Service, seen: int) -> list[str]:
    return kinds((await outbox(service.sessions))[seen:])


async def test_codat_webhooks_emit_each_change_once(service: Service) -> None:
    await seed_feed(service.sessions)
    async with service.sessions() as session:  # the click that made the feed announced it
        await announce(session, "cus-1")
        await session.commit()
    assert await new_events(service, 0) == ["customer.needs_action connection_pending_auth"]
    seen = 1

    steps = [
        (
            "connection.connected",
            connection_payload("Linked"),
            ["customer.connected", "customer.needs_action accounts_pending"],
        ),
        ("connection.reconnected", connection_payload("Linked"), []),  # no change: nothing
        (
            "bankFeeds.sourceAccount.connected",
            account_payload(ACC0, "connected"),
            [f"account.connected {ACC0}"],
        ),
        (
            "bankFeeds.sourceAccount.connected",
            account_payload(ACC1, "connected"),
            [f"account.connected {ACC1}"],
        ),
        ("bankFeeds.sourceAccount.connected", account_payload(ACC1, "connected"), []),
        (
            "bankFeeds.sourceAccount.disconnected",
            account_payload(ACC0, "disconnected"),
            [f"account.disconnected {ACC0}"],
        ),
        (
            "connection.disconnected",
            connection_payload("Unlinked"),
            ["customer.disconnected", "customer.needs_action connection_unlinked"],
        ),
        ("connection.disconnected", connection_payload("Unlinked"), []),
    ]
    for n, (event_type, payload, expected) in enumerate(steps, start=1):
        await handle(service, event_type, payload, n)
        assert await new_events(service, seen) == expected, event_type
        seen += len(expected)

    events = await outbox(service.sessions)
    connected = next(e for e in events if e["type"] == "customer.connected")
    assert connected["id"].startswith("evt_") and connected["timestamp"].endswith("Z")
    assert connected["data"] == {
        "customer_id": "cus-1",
        "connection_status": "Linked",
        "previous_connection_status": "PendingAuth",
        "status": {
            "customer_id": "cus-1",
            "connected": True,
            "connection_status": "Linked",
            "accounts_connected": 0,
            "accounts_total": 2,
            "needs_action": True,
            "reasons": ["accounts_pending"],
        },
    }
    account = next(e for e in events if e["type"] == "account.disconnected")["data"]
    assert (account["account_status"], account["previous_account_status"]) == (
        "disconnected",
        "connected",
    )
    assert account["status"]["accounts_connected"] == 1
    last = events[-1]["data"]
    assert last["reasons"] == ["connection_unlinked"] and last["status"]["connected"] is False
    # Our ids and statuses only: nothing of Codat's Link URL or its one-time password.
    text = json.dumps(events)
    assert "731902" not in text and "linkUrl" not in text and "link-api" not in text
    assert COMPANY not in text and CONNECTION not in text


async def test_out_of_order_and_duplicate_webhooks_emit_nothing_more(service: Service) -> None:
    await seed_feed(service.sessions, status="Linked")
    await handle(service, "connection.disconnected", connection_payload("Unlinked"), 10)
    seen = len(await outbox(service.sessions))
    # An older `connected` arrives late: the status does not move back, so no event.
    await handle(service, "connection.connected", connection_payload("Linked"), 5)
    assert await new_events(service, seen) == []


async def test_each_endpoint_gets_the_types_it_asked_for(service: Service) -> None:
    await register(service, "everything")
    await register(service, "connections", event_types=["customer.connected"])
    await seed_feed(service.sessions)
    await handle(service, "connection.connected", connection_payload("Linked"), 1)
    await handle(
        service, "bankFeeds.sourceAccount.connected", account_payload(ACC0, "connected"), 2
    )
    rows = await deliveries(service.sessions)
    by_endpoint = {
        name: [d.event_id for d in rows if d.endpoint_name == name]
        for name in ("everything", "connections")
    }
    events = await outbox(service.sessions)
    assert len(by_endpoint["everything"]) == len(events) == 3
    assert len(by_endpoint["connections"]) == 1
    assert {d.status for d in rows} == {"pending"}
    assert all(d.deliver_until - d.created_at == timedelta(hours=24) for d in rows)


async def test_the_whole_journey_by_click_and_webhooks(service: Service) -> None:
    await add_customer(service.sessions, accounts=2)
    link_url = await service.services.connect.connect("cus-1")
    assert await new_events(service, 0) == ["customer.needs_action connection_pending_auth"]
    await service.services.connect.connect("cus-1")  # the same click again: no event
    assert len(await outbox(service.sessions)) == 1

    session = await connect_in_quickbooks(service.client, link_url)
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()
    told = await new_events(service, 1)
    # Codat's webhooks may come in any order: only when the connection's comes before the
    # accounts' is there a moment when the customer still has accounts to connect.
    assert sorted(e for e in told if e != "customer.needs_action accounts_pending") == [
        f"account.connected {ACC0}",
        f"account.connected {ACC1}",
        "customer.connected",
    ]
    assert told.count("customer.needs_action accounts_pending") <= 1
    seen = 1 + len(told)

    # The customer disconnects an account in QuickBooks; Codat says so a while later.
    response = await service.client.post(
        f"{SANDBOX}/qbo/disconnect", data={"session": session, "account": ACC0}
    )
    assert response.status_code == 200
    service.sandbox.clock.advance(timedelta(days=1))
    service.sandbox.settle()
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()
    assert await new_events(service, seen) == [f"account.disconnected {ACC0}"]


async def test_a_refresh_and_the_late_webhook_for_the_same_change_emit_once(
    service: Service,
) -> None:
    await add_customer(service.sessions, accounts=1)
    link_url = await service.services.connect.connect("cus-1")
    await connect_in_quickbooks_one(service, link_url)
    seen = len(await outbox(service.sessions))
    store = service.sandbox.store
    company = next(iter(store.companies.values()))
    connection = next(iter(company.connections.values()))
    store.set_connection_status(connection, type(connection.status)("Deauthorized"))

    response = await service.client.get(
        "/ops/customers/cus-1/bank-feed", params={"refresh": "true"}, headers=service.ops_headers
    )
    assert response.status_code == 200
    expected = ["customer.disconnected", "customer.needs_action connection_deauthorized"]
    assert await new_events(service, seen) == expected
    await service.sandbox.webhooks.drain()  # Codat's own word on it comes afterwards
    await service.services.inbox_worker().run_once()
    assert await new_events(service, seen) == expected


async def connect_in_quickbooks_one(service: Service, link_url: str) -> None:
    """The QuickBooks step for a customer with one account, then Codat's webhooks handled."""
    from tests.webhooks.test_journey import field, hidden, path

    start = await service.client.get(path(link_url))
    assert start.status_code == 200
    otp = link_url.rsplit("otp=", 1)[1]
    credentials = await service.client.post(
        path(link_url.split("/start?")[0] + "/credentials"), data={"otp": otp, "lang": "en"}
    )
    username = field(credentials.text, r'id="username">([^<]+)<')
    password = field(credentials.text, r'id="password">([^<]+)<')
    chosen = await service.client.post(
        f"{SANDBOX}/qbo/sign-in", data={"username": username, "password": password}
    )
    start_date = field(chosen.text, r'name="start_date" type="date" value="([^"]+)"')
    connected = await service.client.post(
        f"{SANDBOX}/qbo/connect",
        data={
            "session": hidden(chosen.text, "session"),
            "account": ["cus-1-acc-0"],
            "start_date": start_date,
        },
    )
    assert connected.status_code == 200
    await service.sandbox.webhooks.drain()
    await service.services.inbox_worker().run_once()
    # Codat's webhooks arrive in any order: the account's event is among the last ones.
    assert "account.connected" in [e["type"] for e in await outbox(service.sessions)]


async def test_ops_changes_emit_events(service: Service) -> None:
    await add_customer(service.sessions, accounts=1)
    link_url = await service.services.connect.connect("cus-1")
    await connect_in_quickbooks_one(service, link_url)
    seen = len(await outbox(service.sessions))
    headers = service.ops_headers

    # A new account reaches Codat as pending: the customer must connect it in QuickBooks.
    account = {
        "accountName": "Savings",
        "accountType": "savings",
        "accountNumber": "55554444",
        "currency": "USD",
        "balance": "10.00",
    }
    put = await service.client.put(
        "/ops/customers/cus-1/accounts/cus-1-acc-9", json=account, headers=headers
    )
    assert put.status_code == 201, put.text
    assert await new_events(service, seen) == ["customer.needs_action accounts_pending"]
    seen += 1

    # A connected account deleted: it no longer feeds QuickBooks.
    deleted = await service.client.delete(
        "/ops/customers/cus-1/accounts/cus-1-acc-0", headers=headers
    )
    assert deleted.status_code == 200
    assert await new_events(service, seen) == ["account.disconnected cus-1-acc-0"]
    event = (await outbox(service.sessions))[-1]["data"]
    assert event["account_status"] == "deleted"
    seen += 1

    # Offboarding unlinks the connection.
    offboard = await service.client.delete("/ops/customers/cus-1", headers=headers)
    assert offboard.status_code == 200, offboard.text
    assert await new_events(service, seen) == [
        "customer.disconnected",
        "customer.needs_action connection_unlinked",
    ]


async def test_closing_an_account_emits_its_disconnection(service: Service) -> None:
    await add_customer(service.sessions, accounts=1)
    link_url = await service.services.connect.connect("cus-1")
    await connect_in_quickbooks_one(service, link_url)
    seen = len(await outbox(service.sessions))

    # Closed by the bank: Codat marks it disconnected, and it no longer feeds QuickBooks.
    closed = await service.client.post(
        "/ops/customers/cus-1/accounts/cus-1-acc-0:close", headers=service.ops_headers
    )
    assert closed.status_code == 200, closed.text
    assert await new_events(service, seen) == ["account.disconnected cus-1-acc-0"]
    assert (await outbox(service.sessions))[-1]["data"]["account_status"] == "closed"


async def test_a_deleted_company_emits_that_the_customer_must_connect_again(
    service: Service,
) -> None:
    await seed_feed(service.sessions, status="Linked")
    async with service.sessions() as session:
        await announce(session, "cus-1")
        await session.commit()
    seen = len(await outbox(service.sessions))

    await handle(service, "company.deleted", {"id": COMPANY}, 60)
    assert await new_events(service, seen) == [
        "customer.disconnected",
        "customer.needs_action no_connection",
    ]


async def test_a_purge_deletes_the_customers_events_and_queued_deliveries(
    service: Service,
) -> None:
    await register(service)
    await add_customer(service.sessions, accounts=1)
    await add_customer(service.sessions, "cus-2", accounts=1)
    for customer_id in ("cus-1", "cus-2"):
        async with service.sessions() as session:
            await emit_transactions(session, "pushed", customer_id, "acc", ["t1"])
            await session.commit()
    response = await service.client.delete(
        "/ops/customers/cus-1", params={"purge": "true"}, headers=service.ops_headers
    )
    assert response.status_code == 200, response.text
    assert [e["data"]["customer_id"] for e in await outbox(service.sessions)] == ["cus-2"]
    assert [d.customer_id for d in await deliveries(service.sessions)] == ["cus-2"]


async def test_an_imported_account_for_a_connected_customer_needs_action(
    service: Service,
) -> None:
    await add_customer(service.sessions, accounts=1)
    link_url = await service.services.connect.connect("cus-1")
    await connect_in_quickbooks_one(service, link_url)
    await add_customer(service.sessions, "cus-2", accounts=0)
    seen = len(await outbox(service.sessions))
    csv = (
        "customer_id,name,country,locale,account_id,accountName,accountType,accountNumber,"
        "currency,balance\n"
        "cus-1,Acme Plumbing LLC,US,en,cus-1-acc-7,Reserve,savings,77776666,USD,1.00\n"
        "cus-2,Acme Plumbing LLC,US,en,cus-2-acc-7,Reserve,savings,77776667,USD,1.00\n"
    )
    response = await service.client.post(
        "/ops/customers:import",
        content=csv,
        headers={**service.ops_headers, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert await new_events(service, seen) == ["customer.needs_action accounts_not_pushed"]
    async with service.sessions() as session:  # cus-2 never clicked: nothing to tell
        assert await session.get(CustomerEventState, "cus-2") is None


async def test_transaction_events_from_the_feed(service: Service) -> None:
    await register(service)
    await register(service, "pushes-only", event_types=["transactions.pushed"])
    await add_customer(service.sessions, accounts=1)
    ids = [f"txn-{n}" for n in range(501)]
    async with service.sessions() as session:
        pushed = await emit_transactions(session, "pushed", "cus-1", "cus-1-acc-0", ids)
        held = await emit_transactions(
            session, "held", "cus-1", "cus-1-acc-0", ["txn-9"], reason="date before feed start"
        )
        rejected = await emit_transactions(
            session, "rejected", "cus-1", "cus-1-acc-0", ["txn-8"], reason="duplicate"
        )
        await session.commit()
    assert len(pushed) == 2 and len(held) == len(rejected) == 1
    events = await outbox(service.sessions)
    assert [e["type"] for e in events] == [
        "transactions.pushed",
        "transactions.pushed",
        "transactions.held",
        "transactions.rejected",
    ]
    assert [e["id"] for e in events] == pushed + held + rejected
    assert [e["data"]["count"] for e in events] == [500, 1, 1, 1]
    assert events[0]["data"]["transaction_ids"] + events[1]["data"]["transaction_ids"] == ids
    assert events[2]["data"] == {
        "customer_id": "cus-1",
        "account_id": "cus-1-acc-0",
        "transaction_ids": ["txn-9"],
        "count": 1,
        "reason": "date before feed start",
    }
    async with service.sessions() as session:
        fanned = await session.execute(
            select(EventDelivery.endpoint_name, func.count()).group_by(EventDelivery.endpoint_name)
        )
        assert dict(fanned.all()) == {"host-app": 4, "pushes-only": 2}


async def test_a_status_change_not_told_yet_goes_before_the_transactions(
    service: Service,
) -> None:
    await seed_feed(service.sessions, status="Linked", accounts=1)  # no announce yet
    async with service.sessions() as session:
        await emit_transactions(session, "pushed", "cus-1", "cus-1-acc-0", ["t1"])
        await session.commit()
    assert await new_events(service, 0) == [
        "customer.connected",
        "customer.needs_action accounts_pending",
        "transactions.pushed cus-1-acc-0",
    ]


@pytest.mark.parametrize(
    ("outcome", "ids", "reason", "message"),
    [
        ("lost", ["t"], None, "outcome must be one of"),
        ("pushed", [], None, "one or more"),
        ("pushed", [""], None, "one or more"),
        ("pushed", ["t"], "why", "only for them"),
        ("held", ["t"], None, "required"),
        ("rejected", ["t"], "x" * 501, "1 to 500"),
        ("pushed", ["t"], None, "no customer 'cus-9'"),
    ],
)
async def test_transaction_events_refuse_bad_input(
    service: Service, outcome: str, ids: list[str], reason: str | None, message: str
) -> None:
    await add_customer(service.sessions, accounts=1)
    async with service.sessions() as session:
        with pytest.raises(ValueError, match=message):
            customer_id = "cus-9" if "cus-9" in message else "cus-1"
            await emit_transactions(session, outcome, customer_id, "acc", ids, reason=reason)
    assert await outbox(service.sessions) == []


async def test_the_event_is_in_the_transaction_of_the_change(service: Service) -> None:
    """Rolled back with its change; committed with it."""
    await seed_feed(service.sessions)
    async with service.sessions() as session:
        state_before = await session.get(CustomerEventState, "cus-1")
        assert state_before is None
        from app.bank_feeds.repository import get_bank_feed, set_connection_status

        feed = await get_bank_feed(session, "cus-1")
        assert feed is not None
        set_connection_status(feed, "Linked", at(1))
        assert "customer.connected" in await announce(session, "cus-1")
        await session.rollback()
    assert await outbox(service.sessions) == []
    async with service.sessions() as session:
        feed = await get_bank_feed(session, "cus-1")
        assert feed is not None
        set_connection_status(feed, "Linked", at(1))
        await announce(session, "cus-1")
        await session.commit()
    assert "customer.connected" in [e["type"] for e in await outbox(service.sessions)]

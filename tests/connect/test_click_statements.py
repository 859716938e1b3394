"""How many SQL statements a click sends: a first click's and a returning click's, pinned with a
little headroom, so that a change which adds round trips to the click shows here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.conftest import Service
from tests.connect.test_connect_flow import click
from tests.factories import add_customer

# Today: 21 for a first click with one account, 3 for a returning click.
FIRST_CLICK_AT_MOST = 23
RETURNING_CLICK_AT_MOST = 3


async def click_statements(service: Service, customer_id: str) -> list[str]:
    """The statements one click sends; the sandbox's webhooks, delivered into the service as
    the click goes, are requests of their own and are not counted."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        if "codat_events" not in statement:
            statements.append(statement)

    engine = service.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = await click(service, customer_id)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 302
    return statements


async def test_a_first_and_a_returning_click_send_few_statements(service: Service) -> None:
    await add_customer(service.sessions, "cus-0", accounts=1)
    await add_customer(service.sessions, "cus-1", accounts=3)
    await click_statements(service, "cus-0")  # the first click of the process warms it

    first = await click_statements(service, "cus-1")
    assert 15 <= len(first) <= FIRST_CLICK_AT_MOST, first
    # the lease is one upsert; the customer, accounts, feed and history one query
    assert sum(s.startswith("INSERT INTO bank_feeds ") for s in first) == 1
    assert not any(s.startswith("UPDATE bank_feeds SET last_click_at") for s in first)
    assert sum(s.startswith("SELECT customers.id") for s in first) == 1
    assert not any(s.startswith("SELECT bank_feeds.customer_id") for s in first)
    assert not any(s.startswith("SELECT bank_feed_connections.") for s in first)
    assert not any(s.startswith("SELECT source_accounts.") for s in first)
    # the outbox reads the feed and the accounts' statuses in one query, twice
    assert sum(s.startswith("SELECT bank_feeds.connection_id") for s in first) == 2
    # three accounts are marked pushed in one statement
    assert sum(s.startswith("UPDATE source_accounts") for s in first) == 1

    returning = await click_statements(service, "cus-1")
    assert len(returning) <= RETURNING_CLICK_AT_MOST, returning

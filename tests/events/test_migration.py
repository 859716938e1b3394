"""Customers already connected when the events migration runs are recorded as told: their next
change emits only what changed, not their whole history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from app.db import create_engine, session_factory
from app.events.outbox import announce
from app.migrate import upgrade
from tests.events.support import outbox
from tests.test_migrations import empty_database  # noqa: F401  (the fixture)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def seed_before_events(url: str) -> None:
    engine = create_engine(url)
    rows = {
        "customers": "INSERT INTO customers (id, name, country, locale, created_at, updated_at) "
        "VALUES ('cus-1', 'Acme', 'US', 'en', :now, :now), "
        "('cus-2', 'Bee', 'US', 'en', :now, :now)",
        "bank_feeds": "INSERT INTO bank_feeds (customer_id, company_id, connection_id, "
        "connection_status, created_at, updated_at) "
        "VALUES ('cus-1', 'co-1', 'cn-1', 'Linked', :now, :now)",
        "source_accounts": "INSERT INTO source_accounts (customer_id, id, account_name, "
        "account_type, account_number, currency, balance, created_at, updated_at, pushed_at, "
        "codat_status) VALUES "
        "('cus-1', 'a', 'A', 'checking', '1', 'USD', '0', :now, :now, :now, 'connected'), "
        "('cus-1', 'b', 'B', 'checking', '2', 'USD', '0', :now, :now, NULL, NULL), "
        "('cus-2', 'c', 'C', 'checking', '3', 'USD', '0', :now, :now, NULL, NULL)",
    }
    now = NOW.replace(tzinfo=None) if url.startswith("sqlite") else NOW  # as the column stores it
    async with engine.begin() as conn:
        for statement in rows.values():
            await conn.execute(text(statement), {"now": now})
    await engine.dispose()


async def announced(url: str) -> tuple[list[str], list[str], list[str]]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions() as session:
        state = (
            await session.execute(text("SELECT customer_id FROM customer_event_states"))
        ).scalars()
        recorded = sorted(state)
        first = await announce(session, "cus-1")
        await session.execute(text("UPDATE bank_feeds SET connection_status = 'Unlinked'"))
        second = await announce(session, "cus-1")
        await session.commit()
    assert len(await outbox(sessions)) == len(second)
    await engine.dispose()
    return recorded, first, second


def test_connected_customers_are_recorded_as_told(empty_database: str) -> None:  # noqa: F811
    upgrade(empty_database, "0001")
    asyncio.run(seed_before_events(empty_database))
    upgrade(empty_database)
    recorded, first, second = asyncio.run(announced(empty_database))
    assert recorded == ["cus-1"]  # cus-2 never clicked: nothing to record
    assert first == []  # nothing changed since the migration
    assert second == ["customer.disconnected", "customer.needs_action"]

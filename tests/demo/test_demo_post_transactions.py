"""The demo host app's Post today's transactions: through the service's ingest, balances
carried on from the last posted, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.demo.transactions import local_today
from app.models import BankTransaction, SourceAccount
from tests.conftest import Service, _truncate, start_service


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Service]:
    await _truncate(database_url)
    async for service in start_service(database_url, seed_demo=True):
        yield service


async def _stored(demo: Service, account_id: str) -> list[BankTransaction]:
    async with demo.sessions() as session:
        rows = await session.scalars(
            select(BankTransaction)
            .where(BankTransaction.account_id == account_id)
            .order_by(BankTransaction.seq)
        )
        return list(rows)


async def test_posting_twice_carries_each_account_balance_on(demo: Service) -> None:
    page = (await demo.client.get("/", headers={"accept": "text/html"})).text
    assert 'id="post-demo-us-bakery"' in page
    assert "Post today&#39;s transactions" in page

    first = await demo.client.post("/demo/customers/demo-us-bakery/transactions")
    second = await demo.client.post(
        "/demo/customers/demo-us-bakery/transactions", data={"lang": "fr"}
    )

    assert first.status_code == second.status_code == 303
    assert first.headers["location"].startswith("/?lang=en&posted=")
    for account_id, opening in (("us-bakery-chk", "12450.32"), ("us-bakery-cc", "-842.17")):
        rows = await _stored(demo, account_id)
        assert len(rows) >= 4
        balance = Decimal(opening)
        for row in rows:
            balance += row.amount
            assert row.balance == balance
            assert (row.amount < 0) == (row.transaction_type == "Debit")
            assert row.cleared_on <= demo.services.transactions.today()
        assert len({row.id for row in rows}) == len(rows)
    shown = await demo.client.get(second.headers["location"], headers={"accept": "text/html"})
    assert "pour Maple Street Bakery LLC" in shown.text
    assert 'id="notice"' in shown.text


async def test_an_unknown_customer_posts_nothing(demo: Service) -> None:
    response = await demo.client.post(
        "/demo/customers/nobody/transactions", headers={"accept": "text/html"}
    )

    assert response.status_code == 404
    assert await _stored(demo, "us-bakery-chk") == []


async def test_a_post_is_never_dated_before_the_accounts_feed_start_date(demo: Service) -> None:
    """At 01:00 UTC the business's local date is still yesterday in America, while the feed
    started today (UTC): the demo posts for the feed's first day, which QuickBooks takes."""
    clock = demo.sandbox.clock
    now = clock.now()
    clock.advance((now + timedelta(days=1)).replace(hour=1, minute=0) - now)
    today = demo.services.transactions.today()
    assert local_today(demo.services.transactions.clock(), "US") < today
    async with demo.sessions() as session:
        for account in await session.scalars(
            select(SourceAccount).where(SourceAccount.customer_id == "demo-us-bakery")
        ):
            account.feed_start_date = today
        await session.commit()

    posted = await demo.client.post("/demo/customers/demo-us-bakery/transactions")

    assert posted.status_code == 303
    rows = await _stored(demo, "us-bakery-chk")
    assert rows and {row.cleared_on for row in rows} == {today}
    assert {row.status for row in rows} == {"pending"}

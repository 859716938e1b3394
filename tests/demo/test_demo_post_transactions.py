"""The demo host app's Post today's transactions: through the service's ingest, balances
carried on from the last posted, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import BankTransaction
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

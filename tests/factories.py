"""Rows for tests, written straight to the database."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Customer, SourceAccount


async def add_customer(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: str = "cus-1",
    *,
    name: str = "Acme Plumbing LLC",
    country: str = "US",
    locale: str = "en",
    accounts: int = 2,
    currency: str = "USD",
) -> Customer:
    async with sessions() as session:
        customer = Customer(id=customer_id, name=name, country=country, locale=locale)
        session.add(customer)
        for n in range(accounts):
            session.add(
                SourceAccount(
                    customer_id=customer_id,
                    id=f"{customer_id}-acc-{n}",
                    account_name=f"Account {n}",
                    account_type="checking" if n % 2 == 0 else "savings",
                    account_number=f"{1000000 + n}",
                    currency=currency,
                    balance=Decimal("100.25") * n - Decimal("5"),
                    sort_code="40-12-34" if currency == "GBP" else None,
                )
            )
        await session.commit()
    return customer


async def add_account(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: str,
    account_id: str,
    *,
    name: str = "New account",
    balance: str = "0",
) -> None:
    async with sessions() as session:
        session.add(
            SourceAccount(
                customer_id=customer_id,
                id=account_id,
                account_name=name,
                account_type="checking",
                account_number="99887766",
                currency="USD",
                balance=Decimal(balance),
            )
        )
        await session.commit()

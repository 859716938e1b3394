"""Queries on customers and their source accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.models import BankFeed, Customer, SourceAccount


async def get_customer(session: AsyncSession, customer_id: str) -> Customer | None:
    return await session.get(Customer, customer_id)


async def get_customer_with_accounts(session: AsyncSession, customer_id: str) -> Customer | None:
    result = await session.execute(
        select(Customer)
        .where(Customer.id == customer_id)
        .options(
            selectinload(Customer.source_accounts),
            selectinload(Customer.bank_feed).selectinload(BankFeed.connections),
        )
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_source_accounts(session: AsyncSession, customer_id: str) -> list[SourceAccount]:
    result = await session.execute(
        select(SourceAccount)
        .where(SourceAccount.customer_id == customer_id)
        .order_by(SourceAccount.id)
    )
    return list(result.scalars())

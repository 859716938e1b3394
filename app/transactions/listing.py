"""Transactions and pushes for operations, newest first, by keyset pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BankTransaction, TransactionPush
from app.transactions.schemas import PushOut, PushPage, TransactionOut, TransactionPage

MAX_PAGE = 500


@dataclass(frozen=True)
class PushFilters:
    status: str | None = None
    customer_id: str | None = None
    since: datetime | None = None  # requested at or after


def transaction_out(row: BankTransaction) -> TransactionOut:
    return TransactionOut(
        id=row.id,
        date=row.cleared_on,
        description=row.description,
        amount=row.amount,
        balance=row.balance,
        transactionType=row.transaction_type,
        counterparty=row.counterparty,
        reference=row.reference,
        status=row.status,
        reason=row.reason,
        push_id=row.push_id,
        sent_date=row.sent_date,
        release_reason=row.release_reason,
        received_at=row.received_at,
        pushed_at=row.pushed_at,
    )


def push_out(push: TransactionPush) -> PushOut:
    errors = (push.validation or {}).get("errors") or []
    return PushOut(
        id=push.id,
        customer_id=push.customer_id,
        account_id=push.account_id,
        status=push.status,
        push_operation_key=push.push_operation_key,
        transaction_count=push.transaction_count,
        last_date=push.last_date,
        last_balance=push.last_balance,
        requested_at=push.requested_at,
        completed_at=push.completed_at,
        attempts=push.attempts,
        next_attempt_at=push.next_attempt_at,
        error=push.error,
        validation_errors=[
            {k: e.get(k) for k in ("itemId", "message", "validatorName")}
            for e in errors
            if isinstance(e, dict)
        ],
        retried_at=push.retried_at,
    )


async def list_transactions(
    session: AsyncSession,
    customer_id: str,
    account_id: str,
    *,
    status: str | None,
    limit: int,
    after: int | None,
) -> TransactionPage:
    query = select(BankTransaction).where(
        BankTransaction.customer_id == customer_id, BankTransaction.account_id == account_id
    )
    if status is not None:
        query = query.where(BankTransaction.status == status)
    if after is not None:
        query = query.where(BankTransaction.seq < after)
    rows, last = await _page(session, query.order_by(BankTransaction.seq.desc()), limit)
    return TransactionPage(
        items=[transaction_out(r) for r in rows], next_cursor=str(last.seq) if last else None
    )


async def list_pushes(
    session: AsyncSession, filters: PushFilters, *, limit: int, after: int | None
) -> PushPage:
    query = select(TransactionPush)
    if filters.status is not None:
        query = query.where(TransactionPush.status == filters.status)
    if filters.customer_id is not None:
        query = query.where(TransactionPush.customer_id == filters.customer_id)
    if filters.since is not None:
        query = query.where(TransactionPush.requested_at >= filters.since)
    if after is not None:
        query = query.where(TransactionPush.id < after)
    rows, last = await _page(session, query.order_by(TransactionPush.id.desc()), limit)
    return PushPage(items=[push_out(p) for p in rows], next_cursor=str(last.id) if last else None)


async def _page(session: AsyncSession, query: Select[Any], limit: int) -> tuple[list[Any], Any]:
    """A page of rows, and its last row when another page follows (the cursor's key)."""
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    return rows[:limit], rows[limit - 1] if len(rows) > limit else None

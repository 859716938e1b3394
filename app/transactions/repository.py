"""Queries on transactions, pushes and each account's transaction feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_ignore
from app.models import BankTransaction, TransactionFeed, TransactionPush
from app.transactions.rules import PUSHED, PUSHING

# A push Codat may still change: the account sends nothing new until it is settled.
OUTSTANDING = ("sending", "unconfirmed", "pending", "timed_out")
UNIQUE_VIOLATION = "23505"  # Postgres' SQLSTATE
IN_CLAUSE = 500  # ids per IN (...), well inside both databases' limits


async def existing_by_id(
    session: AsyncSession, customer_id: str, ids: Sequence[str]
) -> dict[str, BankTransaction]:
    found: dict[str, BankTransaction] = {}
    for start in range(0, len(ids), IN_CLAUSE):
        chunk = ids[start : start + IN_CLAUSE]
        rows = await session.execute(
            select(BankTransaction).where(
                BankTransaction.customer_id == customer_id, BankTransaction.id.in_(chunk)
            )
        )
        found.update((t.id, t) for t in rows.scalars())
    return found


async def ensure_feed(session: AsyncSession, customer_id: str, account_id: str) -> None:
    dialect = session.get_bind().dialect.name
    await session.execute(
        insert_ignore(
            dialect, TransactionFeed, {"customer_id": customer_id, "account_id": account_id}
        )
    )


async def get_feed(
    session: AsyncSession, customer_id: str, account_id: str, *, lock: bool = False
) -> TransactionFeed | None:
    return await session.get(
        TransactionFeed,
        (customer_id, account_id),
        with_for_update=lock,
        populate_existing=True,
    )


async def push_soon(session: AsyncSession, customer_id: str, account_id: str, at: datetime) -> None:
    """Push the account at `at` at the latest (an earlier time already set stays)."""
    await ensure_feed(session, customer_id, account_id)
    await session.execute(
        update(TransactionFeed)
        .where(
            TransactionFeed.customer_id == customer_id,
            TransactionFeed.account_id == account_id,
            or_(TransactionFeed.next_push_at.is_(None), TransactionFeed.next_push_at > at),
        )
        .values(next_push_at=at)
        .execution_options(synchronize_session=False)
    )


async def push_soon_many(
    session: AsyncSession, keys: Sequence[tuple[str, str]], at: datetime
) -> None:
    """`push_soon` for many accounts, in two statements."""
    if not keys:
        return
    dialect = session.get_bind().dialect.name
    params = [{"c": c, "a": a} for c, a in keys]
    await session.execute(
        insert_ignore(
            dialect, TransactionFeed, {"customer_id": bindparam("c"), "account_id": bindparam("a")}
        ),
        params,
    )
    feeds = cast(Table, TransactionFeed.__table__)
    await session.execute(
        update(feeds)
        .where(
            feeds.c.customer_id == bindparam("c"),
            feeds.c.account_id == bindparam("a"),
            or_(feeds.c.next_push_at.is_(None), feeds.c.next_push_at > bindparam("at")),
        )
        .values(next_push_at=bindparam("at")),
        [p | {"at": at} for p in params],
    )


async def insert_transactions(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    """New transactions, by column name, in the session's transaction: COPY on Postgres, many
    rows per statement elsewhere (no ORM objects: a bulk load stays lean)."""
    if not rows:
        return
    table = cast(Table, BankTransaction.__table__)
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        columns = list(rows[0])
        try:
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
        except Exception as exc:  # the driver's own error: shown as SQLAlchemy shows an INSERT's
            if getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION:
                raise IntegrityError(f"COPY {table.name}", None, exc) from exc
            raise
        return
    await session.execute(insert(table), list(rows))


async def try_lease(
    session: AsyncSession,
    customer_id: str,
    account_id: str,
    owner: str,
    now: datetime,
    ttl: timedelta,
) -> bool:
    """Take the account's push lease, free or expired: one worker per account, across
    replicas. Commit right after."""
    result = await session.execute(
        update(TransactionFeed)
        .where(
            TransactionFeed.customer_id == customer_id,
            TransactionFeed.account_id == account_id,
            or_(
                TransactionFeed.locked_until.is_(None),
                TransactionFeed.locked_until < now,
                TransactionFeed.lock_owner == owner,
            ),
        )
        .values(lock_owner=owner, locked_until=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def release_lease(
    session: AsyncSession, customer_id: str, account_id: str, owner: str
) -> None:
    await session.execute(
        update(TransactionFeed)
        .where(
            TransactionFeed.customer_id == customer_id,
            TransactionFeed.account_id == account_id,
            TransactionFeed.lock_owner == owner,
        )
        .values(lock_owner=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )


async def outstanding_push(
    session: AsyncSession, customer_id: str, account_id: str
) -> TransactionPush | None:
    result = await session.execute(
        select(TransactionPush)
        .where(
            TransactionPush.customer_id == customer_id,
            TransactionPush.account_id == account_id,
            TransactionPush.status.in_(OUTSTANDING),
            TransactionPush.retried_at.is_(None),  # not one operations sent again
        )
        .order_by(TransactionPush.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def transactions_of(
    session: AsyncSession, push_id: int, statuses: Sequence[str] | None = None
) -> list[BankTransaction]:
    query = select(BankTransaction).where(BankTransaction.push_id == push_id)
    if statuses:
        query = query.where(BankTransaction.status.in_(statuses))
    rows = await session.execute(
        query.order_by(BankTransaction.seq).execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def mark_pushed(
    session: AsyncSession, push_id: int, pushed_at: datetime, now: datetime
) -> list[str]:
    """The push's transactions still pushing are pushed, in one statement; their ids, in order."""
    result = await session.execute(
        update(BankTransaction)
        .where(BankTransaction.push_id == push_id, BankTransaction.status == PUSHING)
        .values(status=PUSHED, pushed_at=pushed_at, reason=None, updated_at=now)
        .returning(BankTransaction.seq, BankTransaction.id)
    )
    return [transaction_id for _, transaction_id in sorted(result.all())]


async def mark_pushing(
    session: AsyncSession, seqs: Sequence[int], push_id: int, now: datetime
) -> None:
    """The transactions a push just recorded takes, in one statement per `IN_CLAUSE`."""
    for start in range(0, len(seqs), IN_CLAUSE):
        await session.execute(
            update(BankTransaction)
            .where(BankTransaction.seq.in_(seqs[start : start + IN_CLAUSE]))
            .values(status=PUSHING, push_id=push_id, updated_at=now)
        )


async def pending_of(
    session: AsyncSession, customer_id: str, account_id: str
) -> list[BankTransaction]:
    rows = await session.execute(
        select(BankTransaction)
        .where(
            BankTransaction.customer_id == customer_id,
            BankTransaction.account_id == account_id,
            BankTransaction.status == "pending",
        )
        .order_by(BankTransaction.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def has_pending(session: AsyncSession, customer_id: str, account_id: str) -> bool:
    found = await session.scalar(
        select(func.count())
        .select_from(BankTransaction)
        .where(
            BankTransaction.customer_id == customer_id,
            BankTransaction.account_id == account_id,
            BankTransaction.status == "pending",
        )
    )
    return bool(found)


async def known_operation_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    rows = await session.execute(
        select(TransactionPush.push_operation_key).where(
            TransactionPush.push_operation_key.in_(keys)
        )
    )
    return {k for k in rows.scalars() if k}


async def push_by_operation_key(session: AsyncSession, key: str) -> TransactionPush | None:
    result = await session.execute(
        select(TransactionPush)
        .where(TransactionPush.push_operation_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def counts_by_status(session: AsyncSession, customer_id: str) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(BankTransaction.account_id, BankTransaction.status, func.count())
        .where(BankTransaction.customer_id == customer_id)
        .group_by(BankTransaction.account_id, BankTransaction.status)
    )
    return {(account, status): int(n) for account, status, n in rows.all()}


async def unsettled_pushes_of(session: AsyncSession, company_id: str) -> bool:
    """Whether the company has a push whose key Codat may not have told us yet."""
    found = await session.scalar(
        select(func.count())
        .select_from(TransactionPush)
        .where(
            TransactionPush.company_id == company_id,
            TransactionPush.status.in_(("sending", "unconfirmed")),
        )
    )
    return bool(found)


async def others_unanswered(session: AsyncSession, push: TransactionPush) -> int:
    """Other pushes to the same connection whose write Codat may have made without our
    knowing its key: a write in the push history that names no account may be theirs."""
    found = await session.scalar(
        select(func.count())
        .select_from(TransactionPush)
        .where(
            TransactionPush.connection_id == push.connection_id,
            TransactionPush.id != push.id,
            TransactionPush.status.in_(("sending", "unconfirmed")),
            TransactionPush.push_operation_key.is_(None),
        )
    )
    return int(found or 0)

"""Bench data written straight into the service's tables with COPY: seconds, not minutes."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

CUSTOMER_COLUMNS = ("id", "name", "country", "locale", "created_at", "updated_at")
ACCOUNT_COLUMNS = (
    "customer_id",
    "id",
    "account_name",
    "account_type",
    "account_number",
    "sort_code",
    "routing_info",
    "currency",
    "balance",
    "account_info",
    "created_at",
    "updated_at",
    "pushed_at",
    "pushed_account_name",
    "pushed_balance",
    "codat_status",
    "feed_start_date",
    "status_changed_at",
    "last_heard_at",
    "sync_error",
)
FEED_COLUMNS = (
    "customer_id",
    "company_id",
    "connection_id",
    "connection_status",
    "connection_status_at",
    "company_requested_at",
    "connection_requested_at",
    "linked_at",
    "last_click_at",
    "last_refreshed_at",
    "next_reconcile_at",
    "lock_owner",
    "locked_until",
    "created_at",
    "updated_at",
)
FEED_CONNECTION_COLUMNS = (
    "connection_id",
    "customer_id",
    "company_id",
    "status",
    "created_at",
    "replaced_at",
)
ROUTING = json.dumps({"bankCode": "021000021", "type": "rtn"})
# How the seeded bank feeds are spread over Codat's connection statuses.
FEED_STATUSES = (("Linked", 0.7), ("PendingAuth", 0.2), ("Unlinked", 0.1))
ACCOUNT_STATUS = {"Linked": "connected", "PendingAuth": "pending", "Unlinked": "disconnected"}


def account_fields(index: int) -> dict[str, Any]:
    """One source account in Codat's v2 shape; the baseline sends exactly this."""
    return {
        "id": f"acct-{index:03d}",
        "accountName": f"Operating account {index}",
        "accountType": "checking" if index % 3 else "savings",
        "accountNumber": f"{40_000_000 + index}",
        "routingInfo": {"bankCode": "021000021", "type": "rtn"},
        "currency": "USD",
        "balance": Decimal("1250.75") + index,
    }


def _customer_row(customer_id: str, now: datetime) -> tuple[Any, ...]:
    return (customer_id, f"Business {customer_id}", "US", "en", now, now)


def _account_row(
    customer_id: str, index: int, now: datetime, codat_status: str | None = None
) -> tuple[Any, ...]:
    fields = account_fields(index)
    pushed = codat_status is not None
    return (
        customer_id,
        fields["id"],
        fields["accountName"],
        fields["accountType"],
        fields["accountNumber"],
        None,
        ROUTING,
        fields["currency"],
        fields["balance"],
        None,
        now,
        now,
        now if pushed else None,
        fields["accountName"] if pushed else None,
        fields["balance"] if pushed else None,
        codat_status,
        date.today() - timedelta(days=3) if codat_status == "connected" else None,
        now if pushed else None,
        now if pushed else None,
        None,
    )


async def _copy(conn: asyncpg.Connection, table: str, columns: tuple[str, ...], rows: list) -> None:
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=list(columns))


async def seed_unconnected(dsn: str, customer_ids: list[str], accounts_each: int) -> None:
    """Customers who never clicked: accounts in our database, nothing in Codat."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await _copy(
                conn, "customers", CUSTOMER_COLUMNS, [_customer_row(c, now) for c in customer_ids]
            )
            accounts = [_account_row(c, i, now) for c in customer_ids for i in range(accounts_each)]
            await _copy(conn, "source_accounts", ACCOUNT_COLUMNS, accounts)
    finally:
        await conn.close()


@dataclass(frozen=True)
class OpsPopulation:
    customer_ids: list[str]
    with_feed: list[str]


async def seed_ops_population(
    dsn: str, customers: int, accounts_each: int, feed_share: float, seed: int = 7
) -> OpsPopulation:
    """Many customers; a share of them with a bank feed in every connection status."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [f"ops-{n:06d}" for n in range(customers)]
    statuses = [s for s, _ in FEED_STATUSES]
    weights = [w for _, w in FEED_STATUSES]
    customer_rows, account_rows, feed_rows, history_rows, with_feed = [], [], [], [], []
    for customer_id in ids:
        customer_rows.append(_customer_row(customer_id, now))
        status = rng.choices(statuses, weights)[0] if rng.random() < feed_share else None
        for index in range(accounts_each):
            account_rows.append(
                _account_row(customer_id, index, now, ACCOUNT_STATUS.get(status or ""))
            )
        if status is None:
            continue
        with_feed.append(customer_id)
        company_id, connection_id = str(uuid.uuid4()), str(uuid.uuid4())
        clicked = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        linked = clicked + timedelta(minutes=5) if status != "PendingAuth" else None
        feed_rows.append(
            (
                customer_id,
                company_id,
                connection_id,
                status,
                now,
                clicked,
                clicked,
                linked,
                clicked,
                None,
                None,
                None,
                None,
                clicked,
                now,
            )
        )
        history_rows.append((connection_id, customer_id, company_id, status, clicked, None))
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await _copy(conn, "customers", CUSTOMER_COLUMNS, customer_rows)
            await _copy(conn, "source_accounts", ACCOUNT_COLUMNS, account_rows)
            await _copy(conn, "bank_feeds", FEED_COLUMNS, feed_rows)
            await _copy(conn, "bank_feed_connections", FEED_CONNECTION_COLUMNS, history_rows)
        # As autovacuum would have by the time staff look: statistics and the visibility map.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return OpsPopulation(ids, with_feed)


async def count_rows(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: int(await conn.fetchval(f"select count(*) from {table}"))
            for table in ("customers", "source_accounts", "bank_feeds")
        }
    finally:
        await conn.close()


async def settled_feeds(dsn: str, customer_ids: list[str]) -> dict[str, tuple[str, str]]:
    """company and connection id of each customer whose first connect completed."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select customer_id, company_id, connection_id from bank_feeds "
            "where customer_id = any($1::text[]) and connection_id is not null",
            customer_ids,
        )
    finally:
        await conn.close()
    return {r["customer_id"]: (r["company_id"], r["connection_id"]) for r in rows}

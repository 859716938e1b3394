"""The outbox: events are written in the transaction of the change they report.

`announce` compares what the host app was last told of a customer (`customer_event_states`)
with the database now, and stores one event per difference: calling it twice emits nothing the
second time, and a change no call saw is reported by the next one. The state row is locked
first, so one customer's events are stored, and numbered, in the order of their commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.statuses import CONNECTED
from app.db import insert_ignore, utcnow
from app.events import catalog
from app.events.status import Facts, current_facts
from app.models import (
    BankFeed,
    Customer,
    CustomerEventState,
    EventDelivery,
    EventEndpoint,
    OutboundEvent,
)

DELIVERY_WINDOW = timedelta(hours=24)
MAX_TRANSACTION_IDS = 500  # per event; more are split over several events
MAX_REASON = 500
CHUNK = 500


async def announce(session: AsyncSession, customer_id: str) -> list[str]:
    """Store an event for each status change since the host app was last told; the types."""
    state = await _lock_state(session, customer_id)
    before = Facts(state.connection_id, state.connection_status, dict(state.accounts or {}))
    after = await current_facts(session, customer_id)
    if after == before:
        return []
    state.connection_id = after.connection_id
    state.connection_status = after.connection_status
    state.accounts = dict(after.accounts)
    changes = changes_between(customer_id, before, after)
    endpoints = await _subscriptions(session) if changes else {}
    now = utcnow()
    for event_type, data in changes:
        await _store(session, customer_id, event_type, data, endpoints, now)
    return [event_type for event_type, _ in changes]


async def announce_connected(session: AsyncSession, customer_ids: Iterable[str]) -> None:
    """`announce` for those of the customers who have clicked Connect: only their accounts
    can change what the host app was told."""
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), CHUNK):
        clicked = await session.execute(
            select(BankFeed.customer_id)
            .where(
                BankFeed.customer_id.in_(ids[start : start + CHUNK]),
                BankFeed.connection_id.is_not(None),
            )
            .order_by(BankFeed.customer_id)
        )
        for customer_id in clicked.scalars().all():
            await announce(session, customer_id)


def changes_between(
    customer_id: str, before: Facts, after: Facts
) -> list[tuple[str, dict[str, Any]]]:
    """The events that take the host app from `before` to `after`, in the order to send them."""
    status = after.status(customer_id).model_dump()
    events: list[tuple[str, dict[str, Any]]] = []
    if after.linked != before.linked:
        events.append(
            (
                catalog.CUSTOMER_CONNECTED if after.linked else catalog.CUSTOMER_DISCONNECTED,
                {
                    "customer_id": customer_id,
                    "connection_status": after.connection_status,
                    "previous_connection_status": before.connection_status,
                    "status": status,
                },
            )
        )
    for account_id in sorted(before.accounts.keys() | after.accounts.keys()):
        old, new = before.accounts.get(account_id), after.accounts.get(account_id)
        if (old == CONNECTED) == (new == CONNECTED):
            continue
        events.append(
            (
                catalog.ACCOUNT_CONNECTED if new == CONNECTED else catalog.ACCOUNT_DISCONNECTED,
                {
                    "customer_id": customer_id,
                    "account_id": account_id,
                    "account_status": new or catalog.DELETED,
                    "previous_account_status": old,
                    "status": status,
                },
            )
        )
    reasons = after.reasons()
    if reasons and set(reasons) != set(before.reasons()):
        events.append(
            (
                catalog.CUSTOMER_NEEDS_ACTION,
                {"customer_id": customer_id, "reasons": reasons, "status": status},
            )
        )
    return events


async def emit_transactions(
    session: AsyncSession,
    outcome: str,
    customer_id: str,
    account_id: str,
    transaction_ids: Sequence[str],
    *,
    reason: str | None = None,
) -> list[str]:
    """`transactions.pushed`, `.held` or `.rejected` for some of an account's transactions,
    in the caller's transaction; the ids of the events stored."""
    event_type = catalog.TRANSACTION_OUTCOMES.get(outcome)
    if event_type is None:
        raise ValueError(f"outcome must be one of {sorted(catalog.TRANSACTION_OUTCOMES)}")
    ids = list(dict.fromkeys(transaction_ids))
    if not ids or not all(isinstance(i, str) and i for i in ids):
        raise ValueError("transaction_ids must be one or more non-empty strings")
    if (reason is None) != (outcome == "pushed"):
        raise ValueError("a reason is required for held and rejected transactions, only for them")
    if reason is not None and not 0 < len(reason) <= MAX_REASON:
        raise ValueError(f"reason must be 1 to {MAX_REASON} characters")
    if await session.get(Customer, customer_id) is None:
        raise ValueError(f"no customer {customer_id!r}")
    # Locks the customer's events in order, and tells any status change first.
    await announce(session, customer_id)
    endpoints = await _subscriptions(session)
    now = utcnow()
    stored = []
    for start in range(0, len(ids), MAX_TRANSACTION_IDS):
        chunk = ids[start : start + MAX_TRANSACTION_IDS]
        data = {
            "customer_id": customer_id,
            "account_id": account_id,
            "transaction_ids": chunk,
            "count": len(chunk),
            "reason": reason,
        }
        stored.append(await _store(session, customer_id, event_type, data, endpoints, now))
    return stored


async def _lock_state(session: AsyncSession, customer_id: str) -> CustomerEventState:
    """The customer's state row, locked until the caller commits; made on first use."""
    query = (
        select(CustomerEventState)
        .where(CustomerEventState.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    state = (await session.execute(query)).scalar_one_or_none()
    if state is None:
        dialect = session.get_bind().dialect.name
        now = utcnow()
        values = {"customer_id": customer_id, "accounts": {}, "updated_at": now}
        # The row this transaction inserts is its own until it commits; only when another
        # transaction made it first is it read, and locked, again.
        made = await session.scalars(
            insert_ignore(dialect, CustomerEventState, values).returning(CustomerEventState)
        )
        state = made.one_or_none() or (await session.execute(query)).scalar_one()
    return state


async def _subscriptions(session: AsyncSession) -> dict[str, list[str]]:
    rows = await session.execute(select(EventEndpoint.name, EventEndpoint.event_types))
    return {name: list(types) for name, types in rows}


async def _store(
    session: AsyncSession,
    customer_id: str,
    event_type: str,
    data: dict[str, Any],
    endpoints: dict[str, list[str]],
    now: datetime,
) -> str:
    """The event, and a pending delivery to each endpoint that wants its type."""
    event_id = catalog.new_event_id()
    row_id = (
        await session.execute(
            insert(OutboundEvent)
            .values(
                event_id=event_id,
                event_type=event_type,
                customer_id=customer_id,
                body=catalog.envelope(event_id, event_type, now, data),
                created_at=now,
            )
            .returning(OutboundEvent.id)
        )
    ).scalar_one()
    wanted = [name for name, types in endpoints.items() if event_type in types]
    if wanted:
        await session.execute(
            insert(EventDelivery),
            [
                {
                    "event_id": row_id,
                    "endpoint_name": name,
                    "customer_id": customer_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "deliver_until": now + DELIVERY_WINDOW,
                    "created_at": now,
                }
                for name in sorted(wanted)
            ],
        )
    return event_id

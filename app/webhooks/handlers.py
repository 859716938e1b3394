"""What each Codat event does to our rows. Every handler runs inside the worker's transaction.

Facts carry Codat's `generatedDate`; one older than what we already know never wins, so
out-of-order delivery cannot move a status backwards. The one allowance: leaving the initial
status (`PendingAuth`, `pending`), which never comes back, wins over our own record of it if
stamped at most `CLOCK_GRACE` earlier, since that record is on our clock, not Codat's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.bank_feeds import rate_limit
from app.bank_feeds.company_gone import COMPANY_DELETED, forget_company
from app.bank_feeds.repository import find_bank_feed, set_connection_status
from app.bank_feeds.statuses import (
    CONNECTED,
    CONNECTION_STATUSES,
    DEAUTHORIZED,
    DISCONNECTED,
    LINKED,
    PENDING,
    PENDING_AUTH,
    UNLINKED,
)
from app.bank_feeds.sync import apply_codat_account
from app.codat.webhooks import (
    CompanyPayload,
    ConnectionPayload,
    RateLimitPayload,
    SourceAccountPayload,
    WritePayload,
)
from app.db import utcnow
from app.events.outbox import announce
from app.models import SourceAccount
from app.transactions import tracking
from app.transactions.repository import push_by_operation_key, unsettled_pushes_of
from app.webhooks.inbox import InboxEvent, Outcome

log = logging.getLogger("app.webhooks")
M = TypeVar("M", bound=BaseModel)

Handler = Callable[[AsyncSession, InboxEvent], Awaitable[Outcome]]

# Codat's clock against ours, and `generatedDate`s that may be whole seconds.
CLOCK_GRACE = timedelta(seconds=10)
INITIAL_ACCOUNT_STATUSES = frozenset({None, PENDING})
RECORDING_WINDOW = timedelta(minutes=2)


class NotRecordedYet(Exception):
    """The event may be about a connection a click is recording right now: try again soon."""


class MalformedPayload(Exception):
    """The payload lacks what its event type needs: trying again cannot help."""


def parse_payload(model: type[M], event: InboxEvent) -> M:
    try:
        return model.model_validate(event.payload)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise MalformedPayload(f"{event.event_type} payload: invalid {', '.join(fields)}") from None


def effective_time(
    known_at: datetime | None, at: datetime, leaves_initial_status: bool
) -> datetime | None:
    """When to record a fact stamped `at`, or None if what we know is newer."""
    if known_at is None or at >= known_at:
        return at
    if leaves_initial_status and at >= known_at - CLOCK_GRACE:
        return known_at
    return None


# --- connection.* -----------------------------------------------------------------------


def connection_status_for(event_type: str, reported: str) -> str | None:
    """The status an event means; None when it names one we do not know."""
    if event_type in ("connection.connected", "connection.reconnected"):
        return LINKED
    if event_type == "connection.disconnected":
        return reported if reported in (UNLINKED, DEAUTHORIZED) else UNLINKED
    if event_type == "connection.deleted":
        return DEAUTHORIZED  # gone from Codat: the next click creates a new connection
    return reported if reported in CONNECTION_STATUSES else None


async def handle_connection_event(session: AsyncSession, event: InboxEvent) -> Outcome:
    payload = parse_payload(ConnectionPayload, event)
    connection = payload.connection
    feed = await find_bank_feed(session, payload.company_id or event.company_id, connection.id)
    if feed is None:
        return Outcome("unmatched")
    if event.event_type == "connection.failed":
        log.warning(
            "Codat connection %s failed for customer %s: %s",
            connection.id,
            feed.customer_id,
            payload.failure_summary(),
        )
    status = connection_status_for(event.event_type, connection.status)
    if connection.id == feed.connection_id:
        if status is not None:
            leaves_initial = feed.connection_status == PENDING_AUTH and status != PENDING_AUTH
            at = effective_time(feed.connection_status_at, event.as_of, leaves_initial)
            if at is not None:
                set_connection_status(feed, status, at)
        await announce(session, feed.customer_id)
        return Outcome("handled", feed.customer_id)
    earlier = next((c for c in feed.connections if c.connection_id == connection.id), None)
    if earlier is None:
        requested = feed.connection_requested_at
        if requested is not None and utcnow() - requested < RECORDING_WINDOW:
            # Codat announces a connection as it creates it, maybe before our click records it.
            raise NotRecordedYet(f"connection {connection.id} is not recorded yet")
        return Outcome("unmatched", feed.customer_id)
    if status is not None and earlier.status != COMPANY_DELETED:
        earlier.status = status  # a replaced connection: its history row only
    return Outcome("handled", feed.customer_id)


# --- bankFeeds.sourceAccount.* ------------------------------------------------------------


async def handle_source_account_event(session: AsyncSession, event: InboxEvent) -> Outcome:
    payload = parse_payload(SourceAccountPayload, event)
    seen = payload.account
    if seen is None:
        raise MalformedPayload(f"{event.event_type} payload: no source account")
    feed = await find_bank_feed(session, payload.company_id, payload.connection_id)
    if feed is None:
        return Outcome("unmatched")
    if payload.connection_id and payload.connection_id != feed.connection_id:
        # An account of a replaced connection says nothing about the current one.
        known = any(c.connection_id == payload.connection_id for c in feed.connections)
        return Outcome("ignored" if known else "unmatched", feed.customer_id)
    account = await session.get(
        SourceAccount,
        (feed.customer_id, seen.id),
        with_for_update=True,
        populate_existing=True,
    )
    if account is None:
        return Outcome("unmatched", feed.customer_id)
    last_heard = max(account.last_heard_at or event.as_of, event.as_of)
    leaves_initial = account.codat_status in INITIAL_ACCOUNT_STATUSES
    at = effective_time(account.status_changed_at, event.as_of, leaves_initial)
    if at is not None:
        status = CONNECTED if event.event_type.endswith(".connected") else DISCONNECTED
        apply_codat_account(account, seen.model_copy(update={"status": status}), at)
    account.last_heard_at = last_heard
    await announce(session, feed.customer_id)
    return Outcome("handled", feed.customer_id)


# --- company.deleted ----------------------------------------------------------------------


async def handle_company_deleted(session: AsyncSession, event: InboxEvent) -> Outcome:
    """The customer's company is gone from Codat: the next click creates everything again."""
    company = parse_payload(CompanyPayload, event)
    feed = await find_bank_feed(session, company.id, None)
    if feed is None:
        return Outcome("unmatched")
    await forget_company(session, feed, event.as_of)
    await announce(session, feed.customer_id)
    return Outcome("handled", feed.customer_id)


# --- client.rateLimit.* -------------------------------------------------------------------


async def handle_rate_limit_reached(session: AsyncSession, event: InboxEvent) -> Outcome:
    payload = parse_payload(RateLimitPayload, event)
    metrics.codat_quota(payload.quota_remaining, payload.daily_quota)
    until = payload.expiry_date or rate_limit.next_quota_reset(event.as_of)
    details = {"daily_quota": payload.daily_quota, "quota_remaining": payload.quota_remaining}
    await rate_limit.pause(session, until, event.as_of, event.event_type, details)
    log.warning("Codat rate limit reached: background Codat calls paused until %s", until)
    return Outcome("handled")


async def handle_rate_limit_reset(session: AsyncSession, event: InboxEvent) -> Outcome:
    with contextlib.suppress(MalformedPayload):  # the quota figures are a bonus here
        payload = parse_payload(RateLimitPayload, event)
        metrics.codat_quota(payload.quota_remaining, payload.daily_quota)
    if await rate_limit.resume(session, event.as_of, event.event_type):
        log.info("Codat rate limit reset: background Codat calls resume")
    return Outcome("handled")


# --- bankTransactions.write.* ---------------------------------------------------------------


async def handle_transactions_write(session: AsyncSession, event: InboxEvent) -> Outcome:
    """A push settled. `Success` settles it here; `Failed` and `TimedOut` are read back from
    Codat by the push job at once, for the validation errors the webhook does not carry."""
    payload = parse_payload(WritePayload, event)
    push = await push_by_operation_key(session, payload.id)
    if push is None:
        company = payload.company_id or event.company_id
        if company and await unsettled_pushes_of(session, company):
            # Codat may announce a push before its answer to us is stored.
            raise NotRecordedYet(f"push {payload.id} is not recorded yet")
        return Outcome("unmatched")
    if push.status in tracking.SETTLED:
        return Outcome("ignored", push.customer_id)
    now = utcnow()
    if payload.status == "Success":
        await tracking.settle_success(session, push, payload.completed_date or event.as_of, now)
    elif payload.status in ("Failed", "TimedOut"):
        push.next_attempt_at = now  # the push job reads the operation now
    return Outcome("handled", push.customer_id)


HANDLERS: Mapping[str, Handler] = {
    "bankTransactions.write.successful": handle_transactions_write,
    "bankTransactions.write.unsuccessful": handle_transactions_write,
    "connection.created": handle_connection_event,
    "connection.connected": handle_connection_event,
    "connection.disconnected": handle_connection_event,
    "connection.reconnected": handle_connection_event,
    "connection.failed": handle_connection_event,
    "connection.deleted": handle_connection_event,
    "bankFeeds.sourceAccount.connected": handle_source_account_event,
    "bankFeeds.sourceAccount.disconnected": handle_source_account_event,
    "company.deleted": handle_company_deleted,
    "client.rateLimit.reached": handle_rate_limit_reached,
    "client.rateLimit.reset": handle_rate_limit_reset,
}

"""What Codat says of a push, applied to our rows: `Success` settles its transactions as pushed
and moves the account's last pushed date and balance; `Failed` maps Codat's validation errors
back to the transactions they name; a write refused because the customer disconnected the
account in QuickBooks flags the account at once. Used by the push job and the write webhooks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app import kill_points
from app.codat.transactions import PushOperation, ValidationItem
from app.events.outbox import emit_transactions
from app.models import SourceAccount, TransactionPush
from app.transactions import repository as repo
from app.transactions.rules import PENDING, PUSHING, REJECTED

SETTLED = ("success", "failed")
STATUS_OF = {
    "Pending": "pending",
    "Success": "success",
    "Failed": "failed",
    "TimedOut": "timed_out",
}
# Codat's validators that refuse a write for the account, whatever its transactions.
ACCOUNT_VALIDATORS = frozenset({"TargetAccountConnected", "SourceAccountConnected"})
# Words in Codat's answer that mean QuickBooks no longer takes writes for the account.
DISCONNECTED_WORDS = ("disconnected", "not connected", "no longer connected")
MAX_REASON = 500
RECHECK_WAITING = timedelta(minutes=5)  # an account that cannot take writes: look again


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def says_disconnected(error: str | None, items: Sequence[ValidationItem]) -> bool:
    """The write failed for the account, not for its transactions."""
    if any(i.validator_name in ACCOUNT_VALIDATORS for i in items):
        return True
    texts = [error or ""] + [i.message or "" for i in items]
    return any(word in t.lower() for t in texts for word in DISCONNECTED_WORDS)


async def apply_operation(
    session: AsyncSession,
    push: TransactionPush,
    op: PushOperation,
    now: datetime,
    poll_after: timedelta,
) -> None:
    """Codat's push operation, as answered or read back, onto the push and its transactions."""
    if push.status in SETTLED:
        return
    push.push_operation_key = push.push_operation_key or op.push_operation_key
    push.error = op.error_message
    push.validation = op.validation.model_dump(by_alias=True) if op.validation else None
    if op.status == "Success":
        await settle_success(session, push, op.completed_on_utc or now, now)
    elif op.status == "Failed":
        await settle_failure(session, push, op.error_message, op.errors, now)
    elif op.status == "TimedOut":
        # It may still land: never sent again blindly. Looked at once more, then operations.
        first = push.status != "timed_out"
        push.status = "timed_out"
        push.completed_at = op.completed_on_utc or now
        push.next_attempt_at = now + poll_after if first else None
    else:
        push.status = "pending"
        push.next_attempt_at = now + poll_after


async def settle_success(
    session: AsyncSession, push: TransactionPush, completed_at: datetime, now: datetime
) -> None:
    push.status = "success"
    push.completed_at = completed_at
    push.next_attempt_at = None
    pushed = await repo.mark_pushed(session, push.id, completed_at, now)
    await repo.ensure_feed(session, push.customer_id, push.account_id)
    feed = await repo.get_feed(session, push.customer_id, push.account_id, lock=True)
    assert feed is not None
    if feed.last_pushed_date is None or push.last_date >= feed.last_pushed_date:
        feed.last_pushed_date = push.last_date
        feed.last_pushed_balance = push.last_balance
        # The balance on the last transaction sent is the account's balance in Codat.
        account = await session.get(SourceAccount, (push.customer_id, push.account_id))
        if account is not None:
            account.balance = account.pushed_balance = push.last_balance
    feed.last_pushed_at = completed_at
    feed.write_blocked_at = feed.write_blocked_reason = None
    if await repo.has_pending(session, push.customer_id, push.account_id):
        feed.next_push_at = now
    if pushed:
        await emit_transactions(session, "pushed", push.customer_id, push.account_id, pushed)
    kill_points.reached("push settling")


async def settle_failure(
    session: AsyncSession,
    push: TransactionPush,
    error: str | None,
    items: Sequence[ValidationItem],
    now: datetime,
) -> None:
    """Transactions Codat named are rejected with its messages; the others go back to pending.
    A failure naming none rejects them all with the push's error: operations decide."""
    push.status = "failed"
    push.completed_at = push.completed_at or now
    push.next_attempt_at = None
    rows = await repo.transactions_of(session, push.id, (PUSHING,))
    if says_disconnected(error, items):
        await block_account(session, push, error or "; ".join(i.message or "" for i in items), now)
        for row in rows:
            row.status, row.push_id, row.updated_at = PENDING, None, now
        return
    messages: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if item.item_id:
            messages[item.item_id].append(
                f"{item.message or 'refused'}"
                + (f" ({item.validator_name})" if item.validator_name else "")
            )
    named = {row.id for row in rows} & set(messages)
    fallback = error or "Codat refused the push without naming a transaction."
    rejected: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        row.updated_at = now
        if row.id in named or not named:
            row.status = REJECTED
            row.reason = _clip("; ".join(messages[row.id]) if row.id in named else fallback)
            rejected[row.reason].append(row.id)
        else:
            row.status, row.push_id, row.reason = PENDING, None, None
    if named:
        feed = await repo.get_feed(session, push.customer_id, push.account_id, lock=True)
        if feed is not None:
            feed.next_push_at = now  # the rest goes on
    for reason, ids in rejected.items():
        await emit_transactions(
            session, "rejected", push.customer_id, push.account_id, ids, reason=reason
        )


async def block_account(
    session: AsyncSession, push: TransactionPush, reason: str, now: datetime
) -> None:
    """The early warning: QuickBooks refused a write for the account; Codat would take 10 days
    to say it is disconnected. No more pushes until it connects again or operations retry."""
    await repo.ensure_feed(session, push.customer_id, push.account_id)
    feed = await repo.get_feed(session, push.customer_id, push.account_id, lock=True)
    assert feed is not None
    feed.write_blocked_at = now
    feed.write_blocked_reason = _clip(reason or "QuickBooks refused writes to the account.")
    feed.next_push_at = now + RECHECK_WAITING


def codat_status(push_status: str) -> str:
    return STATUS_OF.get(push_status, "pending")

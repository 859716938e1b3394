"""Each account's transaction feed as operations see it on the customer's bank feed: the last
pushed date and balance, counts by status, the last push, and what needs someone to act."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds.schemas import LastPush, Reason, TransactionFeedOut
from app.models import TransactionFeed, TransactionPush
from app.transactions import repository as repo
from app.transactions.rules import HELD, REJECTED, TRANSACTION_STATUSES


def needs_action(
    counts: dict[str, int], state: TransactionFeed | None, last: TransactionPush | None
) -> list[Reason]:
    reasons = []
    if state is not None and state.write_blocked_at is not None:
        reasons.append(
            Reason(
                code="writes_refused",
                message="QuickBooks refused writes to the account (disconnected there?): the "
                f"customer must connect it again. Codat said: {state.write_blocked_reason}",
            )
        )
    if last is not None and last.status == "failed" and last.retried_at is None:
        reasons.append(
            Reason(code="push_failed", message=f"Push {last.id} failed: retry it after a fix.")
        )
    if (
        last is not None
        and last.status == "timed_out"
        and last.next_attempt_at is None
        and last.retried_at is None
    ):
        reasons.append(
            Reason(
                code="push_timed_out",
                message=f"Push {last.id} timed out and may still land: check the account's For "
                "review list in QuickBooks; if they are there, confirm it landed, if not, retry.",
            )
        )
    if counts.get(HELD):
        reasons.append(
            Reason(
                code="transactions_held",
                message=f"{counts[HELD]} transaction(s) held: requeue them, or release each "
                "with a later date and a reason.",
            )
        )
    if counts.get(REJECTED):
        reasons.append(
            Reason(
                code="transactions_rejected",
                message=f"{counts[REJECTED]} transaction(s) rejected by Codat: fix, then requeue.",
            )
        )
    return reasons


async def transaction_feeds(session: AsyncSession, customer_id: str) -> list[TransactionFeedOut]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (account_id, status), n in (await repo.counts_by_status(session, customer_id)).items():
        counts[account_id][status] = n
    states = {
        s.account_id: s
        for s in (
            await session.execute(
                select(TransactionFeed).where(TransactionFeed.customer_id == customer_id)
            )
        ).scalars()
    }
    last_pushes: dict[str, TransactionPush] = {}
    for push in (
        await session.execute(
            select(TransactionPush)
            .where(TransactionPush.customer_id == customer_id)
            .order_by(TransactionPush.id.desc())
        )
    ).scalars():
        last_pushes.setdefault(push.account_id, push)
    feeds = []
    for account_id in sorted(set(counts) | set(states)):
        state = states.get(account_id)
        last = last_pushes.get(account_id)
        by_status = {s: counts[account_id].get(s, 0) for s in TRANSACTION_STATUSES}
        feeds.append(
            TransactionFeedOut(
                account_id=account_id,
                last_pushed_date=state.last_pushed_date if state else None,
                last_pushed_balance=state.last_pushed_balance if state else None,
                counts=by_status,
                last_push=LastPush(
                    id=last.id,
                    status=last.status,
                    transaction_count=last.transaction_count,
                    requested_at=last.requested_at,
                    completed_at=last.completed_at,
                )
                if last
                else None,
                needs_action=needs_action(by_status, state, last),
            )
        )
    return feeds

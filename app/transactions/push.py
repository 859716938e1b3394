"""The push job: pending transactions to Codat, exactly once, several accounts at a time.

Up to `concurrency` accounts are pushed at once, oldest due first; each account has one push
in flight at most (its lease), so the exactly-once steps below are per account and unchanged.
The default keeps within Codat's limit of 10 concurrent requests per company even when every
account pushed at once belongs to the same company.

Per account, under its lease (one worker across replicas):
1. A push Codat may still change is followed first; nothing new is sent until it settles.
   - `sending` (recorded, Codat's answer not had): sent again with the same Idempotency-Key
     while Codat still replays it (90 minutes); after that, looked up in the company's push
     history before anything is sent again.
   - `unconfirmed` (a 5xx, which Codat keeps under the key): looked up in the push history; if
     Codat has no such push, sent again under a new key.
   - `pending`: read from Codat when no webhook has settled it after a while, within the
     background share of Codat's quota.
   - `timed_out`: read once more; never sent again unless operations say it did not land.
2. Otherwise (looked at again under the account's row lock, since a lease can lapse while
   its holder still works) the account's pending transactions are checked against
   QuickBooks' rules (held, with the reason, when they can no longer be sent), and up to
   1,000, oldest first, are recorded as a push (its body and key committed) before Codat is
   called. Codat's `pushOperationKey` is committed the moment it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import kill_points
from app.bank_feeds import quota, rate_limit
from app.bank_feeds.statuses import CONNECTED, live_connection
from app.codat.client import CodatClient, retry_budget
from app.codat.errors import (
    CodatError,
    CodatRateLimited,
    CodatStillProcessing,
    CodatUnexpectedResponse,
    CodatWriteUnconfirmed,
)
from app.codat.transactions import (
    BANK_TRANSACTIONS,
    MAX_TRANSACTIONS_PER_PUSH,
    BankTransactionCreate,
    PushOperation,
    ValidationItem,
    exact_json,
    transactions_body,
)
from app.db import utcnow
from app.events.outbox import emit_transactions
from app.models import BankFeed, BankTransaction, SourceAccount, TransactionFeed, TransactionPush
from app.transactions import repository as repo
from app.transactions import tracking
from app.transactions.rules import HELD, Window, oldest_allowed, push_order
from app.transactions.service import FeedRules

log = logging.getLogger("app.transactions")

REPLAY_WINDOW = timedelta(minutes=85)  # Codat replays a key's answer for 90 minutes
HISTORY_SLACK = timedelta(minutes=5)  # our clock against Codat's, looking a push up
HISTORY_PAGES = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
QUOTA_WAIT = timedelta(minutes=15)
DAILY = timedelta(days=1)
MAX_ACCOUNTS_PER_ROUND = 200
MIN_SLEEP_SECONDS = 1.0
# Codat allows 10 concurrent requests per company; an account push makes one at a time.
MAX_CONCURRENCY = 10
DEFAULT_CONCURRENCY = 8  # leaves room for a click or a refresh of the same company


class HistoryUnclear(Exception):
    """Codat's push history holds a write naming no account that another push of ours to the
    same connection may have made: taking it could settle the wrong transactions."""


@dataclass
class PushReport:
    pushed: list[int] = field(default_factory=list)  # push ids sent (or sent again)
    settled: list[int] = field(default_factory=list)
    held: int = 0
    waiting: list[str] = field(default_factory=list)  # accounts that cannot be pushed now
    busy: list[str] = field(default_factory=list)
    paused_until: datetime | None = None
    accounts: int = 0  # due accounts this round


def _backoff(attempts: int) -> timedelta:
    seconds = min(
        BACKOFF_CAP.total_seconds(), BACKOFF_BASE.total_seconds() * 2 ** max(0, attempts - 1)
    )
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


def waiting_reason(
    feed: BankFeed | None, account: SourceAccount, state: TransactionFeed | None
) -> str | None:
    """Why the account's transactions cannot be pushed now; None when they can."""
    if account.closed_at is not None:
        return "The account is closed in the bank feed."
    if live_connection(feed) is None:
        return "The customer's bank feed is not linked to QuickBooks."
    if account.codat_status != CONNECTED:
        return (
            f"The account is {account.codat_status or 'not in Codat'}, not connected in QuickBooks."
        )
    if state is not None and state.write_blocked_at is not None:
        reconnected = (
            account.status_changed_at and account.status_changed_at > state.write_blocked_at
        )
        if not reconnected:
            return f"QuickBooks refused writes to the account: {state.write_blocked_reason}"
    return None


class PushJob:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        codat: CodatClient,
        *,
        rules: FeedRules,
        signal: asyncio.Event | None = None,
        interval_seconds: float = 30.0,
        poll_after: timedelta = timedelta(minutes=5),
        retry_budget_seconds: float = 30.0,
        quota_share: float = quota.DEFAULT_SHARE,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}, not {concurrency}")
        self.sessions = sessions
        self.codat = codat
        self.rules = rules
        self.signal = signal or asyncio.Event()
        self.interval = interval_seconds
        self.poll_after = poll_after
        self.retry_budget_seconds = retry_budget_seconds
        self.quota_share = quota_share
        self.clock = clock
        self.concurrency = concurrency
        self.owner = f"pusher:{uuid.uuid4().hex[:12]}"
        self.lease_ttl = timedelta(seconds=retry_budget_seconds * 3 + 60)

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: a round, then sleep until woken (new transactions) or due."""
        while True:
            self.signal.clear()
            try:
                report = await self.run_once()
                # A full round leaves due accounts behind: the next round starts at once.
                full = report.accounts >= MAX_ACCOUNTS_PER_ROUND and report.paused_until is None
                delay = 0.0 if full else await self.seconds_until_next()
            except Exception as exc:  # the database is away, say
                log.warning("push job: %s; retrying", type(exc).__name__)
                delay = self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.signal.wait(), timeout=max(delay, 0.05))

    async def seconds_until_next(self) -> float:
        now = self.clock()
        async with self.sessions() as session:
            due = await session.scalar(
                select(TransactionFeed.next_push_at)
                .where(TransactionFeed.next_push_at.is_not(None))
                .order_by(TransactionFeed.next_push_at)
                .limit(1)
            )
            attempt = await session.scalar(
                select(TransactionPush.next_attempt_at)
                .where(
                    TransactionPush.status.in_(repo.OUTSTANDING),
                    TransactionPush.next_attempt_at.is_not(None),
                )
                .order_by(TransactionPush.next_attempt_at)
                .limit(1)
            )
        wake = min((t for t in (due, attempt) if t is not None), default=None)
        if wake is None:
            return self.interval
        # Never a busy loop: an account another replica holds is due again at once.
        return min(self.interval, max(MIN_SLEEP_SECONDS, (wake - now).total_seconds()))

    async def run_once(self) -> PushReport:
        report = PushReport()
        now = self.clock()
        async with self.sessions() as session:
            report.paused_until = await rate_limit.paused_until(session, now)
            if report.paused_until is not None:
                return report
            due = await self._due(session, now)
        report.accounts = len(due)
        await self._push_all(due, report)
        return report

    async def _push_all(self, due: list[tuple[str, str]], report: PushReport) -> None:
        """`concurrency` workers take the due accounts in order, oldest first."""
        queue = iter(due)

        async def worker() -> None:
            for customer_id, account_id in queue:
                await self.push_account(customer_id, account_id, report)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.concurrency, len(due))):
                group.create_task(worker())

    async def _due(self, session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
        feeds = await session.execute(
            select(TransactionFeed.customer_id, TransactionFeed.account_id)
            .where(TransactionFeed.next_push_at <= now)
            .order_by(TransactionFeed.next_push_at)
            .limit(MAX_ACCOUNTS_PER_ROUND)
        )
        pushes = await session.execute(
            select(TransactionPush.customer_id, TransactionPush.account_id)
            .where(
                TransactionPush.status.in_(repo.OUTSTANDING),
                or_(
                    TransactionPush.next_attempt_at.is_(None),
                    TransactionPush.next_attempt_at <= now,
                ),
                TransactionPush.status != "timed_out",
            )
            .limit(MAX_ACCOUNTS_PER_ROUND)
        )
        timed_out = await session.execute(
            select(TransactionPush.customer_id, TransactionPush.account_id).where(
                TransactionPush.status == "timed_out", TransactionPush.next_attempt_at <= now
            )
        )
        found = [tuple(r) for r in [*pushes.all(), *timed_out.all(), *feeds.all()]]
        return list(dict.fromkeys(found))  # type: ignore[arg-type]

    # --- one account -----------------------------------------------------------------------

    async def push_account(self, customer_id: str, account_id: str, report: PushReport) -> None:
        now = self.clock()
        async with self.sessions() as session:
            await repo.ensure_feed(session, customer_id, account_id)
            leased = await repo.try_lease(
                session, customer_id, account_id, self.owner, now, self.lease_ttl
            )
            await session.commit()
        if not leased:
            report.busy.append(f"{customer_id}/{account_id}")
            return
        try:
            async with self.sessions() as session:
                push = await repo.outstanding_push(session, customer_id, account_id)
            if push is not None:
                await self._follow(push, report)
                async with self.sessions() as session:
                    push = await repo.outstanding_push(session, customer_id, account_id)
                    if push is not None:  # its settling schedules the account's next push
                        await self._unschedule(session, customer_id, account_id)
            if push is None:
                push = await self._record_next(customer_id, account_id, report)
                if push is not None:
                    kill_points.reached("push recorded")
                    await self._send(push, report)
        finally:
            async with self.sessions() as session:
                await repo.release_lease(session, customer_id, account_id, self.owner)
                await session.commit()

    @staticmethod
    async def _unschedule(session: AsyncSession, customer_id: str, account_id: str) -> None:
        state = await repo.get_feed(session, customer_id, account_id, lock=True)
        if state is not None and state.next_push_at is not None:
            state.next_push_at = None
            await session.commit()

    async def _follow(self, push: TransactionPush, report: PushReport) -> None:
        now = self.clock()
        if push.next_attempt_at is not None and push.next_attempt_at > now:
            return
        if push.status == "sending":
            if now - push.requested_at < REPLAY_WINDOW:
                await self._send(push, report)  # the same key: Codat replays its answer
            else:
                await self._look_up(push, report)
        elif push.status == "unconfirmed":
            await self._look_up(push, report)
        elif push.status in ("pending", "timed_out"):
            await self._poll(push, report)

    async def _record_next(
        self, customer_id: str, account_id: str, report: PushReport
    ) -> TransactionPush | None:
        """Hold what can no longer be sent; record the next push, committed before any call."""
        now = self.clock()
        async with self.sessions() as session:
            state = await repo.get_feed(session, customer_id, account_id, lock=True)
            assert state is not None
            if await repo.outstanding_push(session, customer_id, account_id) is not None:
                return None  # another pusher's, recorded since this one looked: its lease lapsed
            feed = await session.get(BankFeed, customer_id, populate_existing=True)
            account = await session.get(
                SourceAccount, (customer_id, account_id), populate_existing=True
            )
            if account is None:
                return None
            reason = waiting_reason(feed, account, state)
            if reason is not None:
                state.next_push_at = now + tracking.RECHECK_WAITING
                report.waiting.append(f"{customer_id}/{account_id}")
                await session.commit()
                return None
            assert feed is not None and feed.company_id and feed.connection_id
            if state.write_blocked_at is not None:  # connected again since the refusal
                state.write_blocked_at = state.write_blocked_reason = None
            today = self.rules.today(now)
            window = Window(
                today=today,
                oldest=oldest_allowed(today, self.rules.history_days),
                feed_start=account.feed_start_date,
                last_pushed=state.last_pushed_date,
            )
            batch: list[BankTransaction] = []
            held: dict[str, list[str]] = defaultdict(list)
            waiting = 0
            for row in push_order(await repo.pending_of(session, customer_id, account_id)):
                if row.push_date > today:
                    waiting += 1  # released with a date still to come
                    continue
                hold = window.hold_reason(row.push_date)
                if hold is not None:
                    row.status, row.reason, row.updated_at = HELD, hold[1], now
                    held[hold[1]].append(row.id)
                elif len(batch) < MAX_TRANSACTIONS_PER_PUSH:
                    batch.append(row)
                else:
                    waiting += 1
            for message, ids in held.items():
                report.held += len(ids)
                await emit_transactions(
                    session, "held", customer_id, account_id, ids, reason=message[:500]
                )
            # Anything left (more than one push holds, or dated later) goes at least daily.
            state.next_push_at = now + DAILY if waiting or not batch else None
            if not batch:
                await session.commit()
                return None
            body = transactions_body(
                account_id,
                [
                    BankTransactionCreate(
                        id=row.id,
                        date=row.push_date,
                        description=row.description,
                        amount=row.amount,
                        balance=row.balance,
                        transaction_type=row.transaction_type,
                        counterparty=row.counterparty,
                        reference=row.reference,
                    )
                    for row in batch
                ],
            )
            push = TransactionPush(
                customer_id=customer_id,
                account_id=account_id,
                company_id=feed.company_id,
                connection_id=feed.connection_id,
                idempotency_key=str(uuid.uuid4()),
                body=exact_json(body),
                status="sending",
                transaction_count=len(batch),
                last_date=batch[-1].push_date,
                last_balance=batch[-1].balance,
                requested_at=now,
                attempts=0,
            )
            session.add(push)
            await session.flush()
            await repo.mark_pushing(session, [row.seq for row in batch], push.id, now)
            kill_points.reached("push recording")
            await session.commit()
            return push

    # --- Codat ---------------------------------------------------------------------------

    async def _send(self, push: TransactionPush, report: PushReport) -> None:
        report.pushed.append(push.id)
        try:
            with retry_budget(self.retry_budget_seconds):
                op = await self.codat.create_bank_transactions(
                    push.company_id,
                    push.connection_id,
                    push.account_id,
                    push.body,
                    idempotency_key=push.idempotency_key,
                )
        except (CodatWriteUnconfirmed, CodatUnexpectedResponse) as exc:
            # A 5xx (which Codat keeps under this key) or an answer we cannot read: the write
            # may have been made. Read the push history back; never resend it blindly.
            await self._failed_call(push, exc, status="unconfirmed")
            return
        except CodatError as exc:
            if exc.transient or isinstance(exc, CodatRateLimited | CodatStillProcessing):
                await self._failed_call(push, exc, status="sending")
                return
            await self._refused(push, exc)
            return
        kill_points.reached("push answered")
        await self._apply(push, op, report)

    async def _apply(self, push: TransactionPush, op: PushOperation, report: PushReport) -> None:
        now = self.clock()
        async with self.sessions() as session:
            current = await session.get(
                TransactionPush, push.id, with_for_update=True, populate_existing=True
            )
            assert current is not None
            await tracking.apply_operation(session, current, op, now, self.poll_after)
            await session.commit()
            if current.status in tracking.SETTLED:
                report.settled.append(current.id)

    async def _failed_call(self, push: TransactionPush, exc: CodatError, *, status: str) -> None:
        now = self.clock()
        async with self.sessions() as session:
            current = await session.get(
                TransactionPush, push.id, with_for_update=True, populate_existing=True
            )
            assert current is not None
            current.status = status
            current.attempts += 1
            wait = _backoff(current.attempts)
            if exc.retry_after:
                wait = max(wait, timedelta(seconds=exc.retry_after))
            current.next_attempt_at = now + wait
            current.error = str(exc)[:500]
            if isinstance(exc, CodatRateLimited):
                await rate_limit.pause(session, now + wait, now, "429 from Codat")
            await session.commit()
        log.warning("push %s: %s; trying again at %s", push.id, type(exc).__name__, now + wait)

    async def _refused(self, push: TransactionPush, exc: CodatError) -> None:
        """Codat refused the request itself (a 4xx, kept under the key): nothing was written."""
        body = exc.body if isinstance(exc.body, dict) else {}
        validation = body.get("validation") if isinstance(body.get("validation"), dict) else None
        items = [
            ValidationItem.model_validate(e)
            for e in (validation or {}).get("errors") or []
            if isinstance(e, dict)
        ]
        now = self.clock()
        async with self.sessions() as session:
            current = await session.get(
                TransactionPush, push.id, with_for_update=True, populate_existing=True
            )
            assert current is not None
            current.error = (exc.reason or str(exc))[:500]
            current.validation = validation
            current.attempts += 1
            await tracking.settle_failure(session, current, current.error, items, now)
            await session.commit()
        log.warning("push %s refused by Codat: %s", push.id, exc)

    async def _take_quota(self, push: TransactionPush) -> bool:
        now = self.clock()
        async with self.sessions() as session:
            await quota.note_seen(session, self.codat.rate_limit, now)
            granted = await quota.try_spend(session, now, 1, self.quota_share)
            if not granted:
                current = await session.get(TransactionPush, push.id, populate_existing=True)
                assert current is not None
                current.next_attempt_at = now + QUOTA_WAIT
            await session.commit()
        return granted

    async def _poll(self, push: TransactionPush, report: PushReport) -> None:
        if push.push_operation_key is None or not await self._take_quota(push):
            return
        try:
            with retry_budget(self.retry_budget_seconds):
                op = await self.codat.get_push_operation(push.company_id, push.push_operation_key)
        except CodatError as exc:
            await self._failed_call(push, exc, status=push.status)
            return
        await self._apply(push, op, report)

    async def _look_up(self, push: TransactionPush, report: PushReport) -> None:
        """Find the push in the company's push history; if Codat never made it, send again
        under a new key (the old one may replay a failure)."""
        if not await self._take_quota(push):
            return
        try:
            with retry_budget(self.retry_budget_seconds):
                found = await self._find_in_history(push)
        except CodatError as exc:
            await self._failed_call(push, exc, status="unconfirmed")
            return
        except HistoryUnclear:
            await self._wait_for_history(push)
            return
        if found is not None:
            log.info(
                "push %s found in Codat's push history as %s", push.id, found.push_operation_key
            )
            await self._apply(push, found, report)
            return
        async with self.sessions() as session:
            current = await session.get(
                TransactionPush, push.id, with_for_update=True, populate_existing=True
            )
            assert current is not None
            current.idempotency_key = str(uuid.uuid4())
            current.requested_at = self.clock()
            current.status = "sending"
            current.next_attempt_at = None
            await session.commit()
            push = current
        await self._send(push, report)

    async def _wait_for_history(self, push: TransactionPush) -> None:
        """Neither taken nor sent again: looked up again once the other pushes know their
        writes, or Codat's answer names the account."""
        now = self.clock()
        async with self.sessions() as session:
            current = await session.get(
                TransactionPush, push.id, with_for_update=True, populate_existing=True
            )
            assert current is not None
            current.status = "unconfirmed"
            current.attempts += 1
            current.next_attempt_at = now + _backoff(current.attempts)
            await session.commit()
        log.info("push %s: Codat's push history is not clear yet; looking again later", push.id)

    async def _find_in_history(self, push: TransactionPush) -> PushOperation | None:
        """A bank-transactions push of the account's connection, requested since ours was
        recorded, that no push of ours already claims, naming this account or its
        transactions; one naming nothing only while no other push to the connection may
        have made it (`HistoryUnclear` otherwise)."""
        since = push.requested_at - HISTORY_SLACK
        async with self.sessions() as session:
            ids = {t.id for t in await repo.transactions_of(session, push.id)}
            others = await repo.others_unanswered(session, push)
        unclear = False
        for page in range(1, HISTORY_PAGES + 1):
            listed = await self.codat.list_push_operations(push.company_id, page=page)
            async with self.sessions() as session:
                known = await repo.known_operation_keys(
                    session, [op.push_operation_key for op in listed.results]
                )
            older = False
            for op in listed.results:
                if op.requested_on_utc is not None and op.requested_on_utc < since:
                    older = True
                    continue
                if (
                    op.push_operation_key not in known
                    and op.data_type in (None, BANK_TRANSACTIONS)
                    and op.data_connection_key in (None, push.connection_id)
                ):
                    named = op.names(push.account_id, ids)
                    if named or (named is None and not others):
                        return op
                    unclear |= named is None
            if older or len(listed.results) < listed.page_size:
                break
        if unclear:
            raise HistoryUnclear(push.id)
        return None

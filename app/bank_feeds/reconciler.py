"""The polling fallback for missed webhooks: refresh bank feeds whose state can still move.

A feed is due when `next_reconcile_at` has passed. `PendingAuth` feeds are refreshed with a
backoff after a click (15 s, 15 s, 30 s, 1 min, ... up to `pending_window`), `Linked` ones
rarely, others not at all (only a click moves them), and none that no click or webhook has
touched for a week. While webhooks are healthy nothing is polled. The reconciler stays within
its share of Codat's daily quota (counted in the database across replicas) and a request budget
per minute, holds the customer's lease while it refreshes, pauses while Codat's rate limit is in
force, and backs off when Codat fails.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.bank_feeds import quota, rate_limit
from app.bank_feeds import repository as feeds
from app.bank_feeds.refresh import refresh_bank_feed
from app.bank_feeds.statuses import LINKED, PENDING_AUTH, Announce
from app.bank_feeds.webhook_health import webhooks_healthy
from app.codat.client import CodatClient, retry_budget
from app.codat.errors import CodatError, CodatRateLimited
from app.db import utcnow
from app.models import BankFeed

log = logging.getLogger("app.reconciler")

REQUESTS_PER_REFRESH = 2  # the connection and its source accounts
BUDGET_WINDOW = timedelta(minutes=1)
DEFAULT_RATE_LIMIT_PAUSE = timedelta(seconds=60)
MAX_FAILURE_BACKOFF = timedelta(minutes=15)
MIN_SLEEP_SECONDS = 1.0
FEED_ERROR_DELAY = timedelta(minutes=10)
SWEEP_MARGIN = timedelta(seconds=5)
SWEEP_BATCH = 500
QUOTA_WAIT = timedelta(minutes=15)  # the share is spent: look again later (a new day resets)


@dataclass(frozen=True)
class Cadence:
    pending_interval: timedelta = timedelta(seconds=15)  # the first PendingAuth wait
    pending_window: timedelta = timedelta(hours=1)  # the longest PendingAuth wait
    linked_interval: timedelta = timedelta(hours=6)
    untouched_after: timedelta = timedelta(days=7)  # then no more polling until touched

    def next_reconcile(self, feed: BankFeed, now: datetime) -> datetime | None:
        """When the feed should next be read from Codat; None when only a click can move it."""
        if feed.connection_id is None:
            return None
        anchor = max(
            (t for t in (feed.last_click_at, feed.connection_requested_at, feed.created_at) if t),
            default=now,
        )
        touched = max(anchor, feed.last_webhook_at or anchor, feed.linked_at or anchor)
        if now - touched >= self.untouched_after:
            return None  # nobody has clicked and Codat has said nothing for a week
        base = max(feed.last_refreshed_at or anchor, anchor)
        if feed.connection_status == PENDING_AUTH:
            # Wait as long again as since the click: 15 s, 15 s, 30 s, 1 min, ... capped.
            interval = min(max(base - anchor, self.pending_interval), self.pending_window)
        elif feed.connection_status == LINKED:
            interval = self.linked_interval
        else:
            return None  # Unlinked, Deauthorized: only the customer's next click changes that
        return base + interval


@dataclass
class ReconcileReport:
    refreshed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    paused_until: datetime | None = None
    out_of_budget: bool = False
    out_of_quota: bool = False  # background's share of Codat's daily quota is spent
    webhooks_healthy: bool = False  # nothing polled: webhooks tell us what changes

    def record(self) -> None:
        """Count this round in the metrics."""
        outcome = "paused" if self.paused_until else "out_of_budget" if self.out_of_budget else "ok"
        metrics.reconciler_cycle(outcome, len(self.refreshed), len(self.failed), len(self.busy))


class Reconciler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        codat: CodatClient,
        *,
        announce: Announce,
        cadence: Cadence | None = None,
        budget_per_minute: int = 60,
        interval_seconds: float = 30.0,
        retry_budget_seconds: float = 30.0,
        quota_share: float = quota.DEFAULT_SHARE,
        poll_while_webhooks_healthy: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.codat = codat
        self.announce = announce  # the host app's events, stored with what a refresh changed
        self.cadence = cadence or Cadence()
        self.budget_per_minute = budget_per_minute
        self.interval = timedelta(seconds=interval_seconds)
        self.retry_budget_seconds = retry_budget_seconds
        self.quota_share = quota_share
        self.poll_while_webhooks_healthy = poll_while_webhooks_healthy
        self.background_requests = 0  # spent from the quota share by this process
        self.clock = clock
        self.owner = f"reconciler:{uuid.uuid4().hex[:12]}"
        self.lease_ttl = timedelta(seconds=retry_budget_seconds + 30)
        self.requests: deque[datetime] = deque()  # Codat requests made, for the budget
        self.failures = 0
        self.resume_at: datetime | None = None  # after Codat failures
        self.swept_at: datetime | None = None  # on the database's clock, as `updated_at` is

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled. Sleeps until the next feed is due, never busy-loops."""
        while True:
            try:
                report = await self.run_once()
                report.record()
                delay = await self.seconds_until_next(report)
            except Exception as exc:  # the database is away, say
                metrics.reconciler_cycle("error", 0, 0, 0)
                log.warning("reconciler: %s; retrying", type(exc).__name__)
                delay = self.interval.total_seconds()
            await asyncio.sleep(delay)

    async def run_once(self) -> ReconcileReport:
        """Schedule feeds that changed, then refresh those due, within budget and pauses."""
        report = ReconcileReport()
        await self.schedule()
        now = self.clock()
        if self.resume_at is not None and now < self.resume_at:
            report.paused_until = self.resume_at
            return report
        async with self.sessions() as session:
            report.paused_until = await rate_limit.paused_until(session, now)
        if report.paused_until is not None:
            return report
        if not self.poll_while_webhooks_healthy:
            async with self.sessions() as session:
                report.webhooks_healthy = await webhooks_healthy(session, now)
            if report.webhooks_healthy:
                return report
        room = self.budget_left(now) // REQUESTS_PER_REFRESH
        if room <= 0:
            report.out_of_budget = True
            return report
        async with self.sessions() as session:
            due = list(
                (
                    await session.execute(
                        select(BankFeed.customer_id)
                        .where(BankFeed.next_reconcile_at <= now)
                        .order_by(BankFeed.next_reconcile_at)
                        .limit(room)
                    )
                ).scalars()
            )
        for customer_id in due:
            if not await self._reconcile(customer_id, report):
                break  # Codat is rate limiting or failing: stop this round
        report.out_of_budget = report.out_of_budget or self.budget_left(self.clock()) <= 1
        return report

    async def seconds_until_next(self, report: ReconcileReport) -> float:
        now = self.clock()
        wake = now + self.interval
        if report.paused_until is not None:
            wake = min(wake, report.paused_until)
        elif report.out_of_budget and self.requests:
            wake = min(wake, self.requests[0] + BUDGET_WINDOW)
        else:
            async with self.sessions() as session:
                earliest = (
                    await session.execute(select(func.min(BankFeed.next_reconcile_at)))
                ).scalar_one_or_none()
            if earliest is not None:
                wake = min(wake, earliest)
        return max((wake - now).total_seconds(), MIN_SLEEP_SECONDS)

    def budget_left(self, now: datetime) -> int:
        while self.requests and self.requests[0] <= now - BUDGET_WINDOW:
            self.requests.popleft()
        return self.budget_per_minute - len(self.requests)

    # --- one feed ------------------------------------------------------------------------

    async def _reconcile(self, customer_id: str, report: ReconcileReport) -> bool:
        """Refresh one feed under its lease; False when the round should stop."""
        async with self.sessions() as session:
            won = await feeds.try_lease(session, customer_id, self.owner, self.lease_ttl)
            await session.commit()
        if not won:  # a click or another reconciler is on it: look again shortly
            report.busy.append(customer_id)
            await self._postpone(customer_id, self.cadence.pending_interval)
            return True
        try:
            return await self._refresh(customer_id, report)
        finally:
            async with self.sessions() as session:
                await feeds.release_lease(session, customer_id, self.owner)
                await session.commit()

    async def _take_quota(self, report: ReconcileReport) -> bool:
        """Today's background share of Codat's quota, for one refresh; False when it is spent."""
        now = self.clock()
        async with self.sessions() as session:
            await quota.note_seen(session, self.codat.rate_limit, now)
            granted = await quota.try_spend(session, now, REQUESTS_PER_REFRESH, self.quota_share)
            await session.commit()
        if granted:
            self.background_requests += REQUESTS_PER_REFRESH
        else:
            report.out_of_quota = True
        return granted

    async def _refresh(self, customer_id: str, report: ReconcileReport) -> bool:
        if not await self._take_quota(report):
            await self._postpone(customer_id, QUOTA_WAIT)
            return False  # the clicks keep the rest of today's quota
        now = self.clock()
        self.requests.extend([now] * REQUESTS_PER_REFRESH)
        try:
            async with self.sessions() as session:
                with retry_budget(self.retry_budget_seconds):
                    result = await refresh_bank_feed(
                        session, self.codat, customer_id, announce=self.announce
                    )
                feed = await session.get(BankFeed, customer_id)
                if feed is not None:
                    feed.last_refreshed_at = self.clock()  # the cadence runs on our clock
                    feed.next_reconcile_at = (
                        None
                        if result.connection_missing  # only a click can make a new one
                        else self.cadence.next_reconcile(feed, self.clock())
                    )
                await session.commit()
        except CodatRateLimited as exc:
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            until = self.clock() + (wait or DEFAULT_RATE_LIMIT_PAUSE)
            async with self.sessions() as session:
                await rate_limit.pause(session, until, self.clock(), "429 from Codat")
                await session.commit()
            log.warning("Codat answered 429: background Codat calls paused until %s", until)
            report.failed.append(customer_id)
            report.paused_until = until
            return False
        except CodatError as exc:
            if not (exc.transient or exc.status in (401, 403)):
                # About this feed only (a 404, a refusal): the others can still be read.
                await self._postpone(customer_id, FEED_ERROR_DELAY)
                log.warning("reconciler: refreshing %r failed (%s)", customer_id, exc)
                report.failed.append(customer_id)
                return True
            self.failures += 1
            backoff = min(self.interval * 2 ** (self.failures - 1), MAX_FAILURE_BACKOFF)
            self.resume_at = self.clock() + backoff
            await self._postpone(customer_id, backoff)
            log.warning(
                "reconciler: refreshing %r failed (%s); backing off %.0fs",
                customer_id,
                type(exc).__name__,
                backoff.total_seconds(),
            )
            report.failed.append(customer_id)
            return False
        except Exception as exc:  # an answer we cannot read, say: not a reason to stop the round
            await self._postpone(customer_id, FEED_ERROR_DELAY)
            log.warning("reconciler: refreshing %r failed (%s)", customer_id, type(exc).__name__)
            report.failed.append(customer_id)
            return True
        self.failures = 0
        self.resume_at = None
        report.refreshed.append(customer_id)
        return True

    async def _postpone(self, customer_id: str, delay: timedelta) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(BankFeed)
                .where(BankFeed.customer_id == customer_id)
                .values(next_reconcile_at=self.clock() + delay)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    # --- scheduling ----------------------------------------------------------------------

    async def schedule(self) -> int:
        """Give feeds that changed since the last sweep (a click, a webhook) their next time.

        The first sweep of a process also takes every feed that can move with no time yet. A time
        is only ever brought forward here; a refresh sets the next one.
        """
        now = self.clock()
        sweep_started = utcnow()  # `updated_at` is written on this clock, whatever `self.clock`
        changed = 0
        condition: ColumnElement[bool]
        if self.swept_at is None:
            condition = BankFeed.next_reconcile_at.is_(None) & BankFeed.connection_status.in_(
                (PENDING_AUTH, LINKED)
            )
        else:
            condition = BankFeed.updated_at >= self.swept_at - SWEEP_MARGIN
        after = ""
        while True:
            async with self.sessions() as session:
                rows = list(
                    (
                        await session.execute(
                            select(BankFeed)
                            .where(
                                condition,
                                BankFeed.connection_id.is_not(None),
                                BankFeed.customer_id > after,
                            )
                            .order_by(BankFeed.customer_id)
                            .limit(SWEEP_BATCH)
                        )
                    ).scalars()
                )
                for feed in rows:
                    wanted = self.cadence.next_reconcile(feed, now)
                    current = feed.next_reconcile_at
                    if wanted is None and current is not None:
                        feed.next_reconcile_at = None
                    elif wanted is not None and (current is None or wanted < current):
                        feed.next_reconcile_at = wanted
                    else:
                        continue
                    changed += 1
                await session.commit()
            if len(rows) < SWEEP_BATCH:
                break
            after = rows[-1].customer_id
        self.swept_at = sweep_started
        return changed

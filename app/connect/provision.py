"""Provisioning ahead of the click (`PROVISION_AHEAD=true`, off by default).

A US or CA customer with an open source account whose company, connection or accounts are not
all in Codat yet gets, in the background, what a first click does before it fetches a Link URL:
the company (found or created, tagged), the connection and the source accounts, through the
click's own code (`ConnectService.provision`) under the customer's lease, so a click and this
job never work on one customer at once, whatever the replica. A crash is harmless: the stored
Idempotency-Keys and the adoption of a lost answer make every step safe to redo. The customer's
first click then needs one Codat call, as a returning customer's does.

One customer at a time, each paid for from the background share of Codat's daily quota
(`app.bank_feeds.quota`, which leaves the clicks their part); the job stops for the day when the
share is spent, pauses while Codat rate limits, and backs off when Codat fails. It wakes when a
customer or an account is created or imported in this process, and polls otherwise (an import
from `bankfeeds import` runs in a process of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.bank_feeds import quota, rate_limit
from app.bank_feeds.statuses import REUSABLE_CONNECTION_STATUSES
from app.codat.client import retry_budget
from app.codat.errors import CodatError, CodatRateLimited
from app.connect.service import ConnectService
from app.customers.rules import CONNECTABLE_COUNTRIES
from app.db import utcnow
from app.errors import DomainError
from app.models import BankFeed, Customer, SourceAccount

log = logging.getLogger("app.provision")

REQUESTS_PER_CUSTOMER = 3  # the company, the connection, the accounts' batch
BATCH = 50  # customers looked up at a time
POLL_SECONDS = 60.0
BUSY_RETRY = timedelta(seconds=30)  # a click or another replica holds the customer
REFUSED_RETRY = timedelta(hours=1)  # Codat refused this customer: a click can still try
DEFAULT_RATE_LIMIT_PAUSE = timedelta(seconds=60)
FAILURE_BACKOFF = timedelta(seconds=30)
MAX_FAILURE_BACKOFF = timedelta(minutes=15)


@dataclass
class ProvisionReport:
    provisioned: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    out_of_quota: bool = False  # the background share of today's quota is spent
    paused_until: datetime | None = None  # Codat rate limits, fails, or the share is spent
    more: bool = False  # a full batch: look again at once

    def record(self) -> None:
        """Count this round in the metrics."""
        for result in ("provisioned", "failed", "busy"):
            metrics.provisioned(result, len(getattr(self, result)))


class Provisioner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        connect: ConnectService,
        *,
        signal: asyncio.Event | None = None,
        interval_seconds: float = POLL_SECONDS,
        retry_budget_seconds: float = 4.0,
        quota_share: float = quota.DEFAULT_SHARE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.connect = connect
        self.signal = signal or asyncio.Event()
        self.interval = interval_seconds
        # As short as a click's: a click waiting on the lease is never kept waiting long.
        self.retry_budget_seconds = retry_budget_seconds
        self.lease_ttl = timedelta(seconds=retry_budget_seconds + 5)
        self.quota_share = quota_share
        self.clock = clock
        self.later: dict[str, datetime] = {}  # customers left alone until then
        self.resume_at: datetime | None = None
        self.failures = 0

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: a round, then sleep until woken (a new customer or account) or due."""
        while True:
            self.signal.clear()
            try:
                report = await self.run_once()
                report.record()
                delay = self.seconds_until_next(report)
            except Exception as exc:  # the database is away, say
                log.warning("provisioning: %s; retrying", type(exc).__name__)
                delay = self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.signal.wait(), timeout=max(delay, 0.05))

    def seconds_until_next(self, report: ProvisionReport) -> float:
        if report.paused_until is not None:
            wait = (report.paused_until - self.clock()).total_seconds()
            return max(1.0, min(wait, self.interval))
        return 0.0 if report.more else self.interval

    async def run_once(self) -> ProvisionReport:
        """Provision up to a batch of customers, one at a time, within the quota share."""
        report = ProvisionReport()
        now = self.clock()
        if self.resume_at is not None and now < self.resume_at:
            report.paused_until = self.resume_at
            return report
        async with self.sessions() as session:
            report.paused_until = await rate_limit.paused_until(session, now)
        if report.paused_until is not None:
            return report
        self.later = {c: t for c, t in self.later.items() if t > now}
        due = await self.candidates()
        for customer_id in due:
            if not await self._provision(customer_id, report):
                return report
        report.more = len(due) == BATCH
        return report

    async def candidates(self) -> list[str]:
        """US and CA customers with an open account and something not yet in Codat, oldest
        first; none whose connection only the customer can mend (Unlinked, Deauthorized)."""
        open_account = exists().where(
            SourceAccount.customer_id == Customer.id, SourceAccount.closed_at.is_(None)
        )
        unpushed = exists().where(
            SourceAccount.customer_id == Customer.id,
            SourceAccount.pushed_at.is_(None),
            SourceAccount.sync_error.is_(None),  # Codat refused it: a click tries again
        )
        query = (
            select(Customer.id)
            .outerjoin(BankFeed, BankFeed.customer_id == Customer.id)
            .where(
                Customer.country.in_(sorted(CONNECTABLE_COUNTRIES)),
                open_account,
                or_(
                    BankFeed.company_id.is_(None),
                    BankFeed.connection_id.is_(None),
                    unpushed,
                ),
                # A customer a click or another replica holds now is theirs (lease times are
                # on the database's clock, whatever `self.clock`).
                or_(BankFeed.locked_until.is_(None), BankFeed.locked_until < utcnow()),
                or_(
                    BankFeed.connection_status.is_(None),
                    BankFeed.connection_status.in_(sorted(REUSABLE_CONNECTION_STATUSES)),
                ),
            )
            .order_by(Customer.created_at, Customer.id)
            .limit(BATCH)
        )
        if self.later:
            query = query.where(Customer.id.not_in(sorted(self.later)))
        async with self.sessions() as session:
            return list((await session.execute(query)).scalars())

    # --- one customer ----------------------------------------------------------------------

    async def _provision(self, customer_id: str, report: ProvisionReport) -> bool:
        """Provision one customer; False when the round should stop."""

        async def afford() -> bool:  # asked once the customer is ours and still needs it
            return await self._take_quota(self.clock())

        try:
            with retry_budget(self.retry_budget_seconds):
                outcome = await self.connect.provision(
                    customer_id, lease_ttl=self.lease_ttl, afford=afford
                )
        except CodatRateLimited as exc:
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            until = self.clock() + (wait or DEFAULT_RATE_LIMIT_PAUSE)
            async with self.sessions() as session:
                await rate_limit.pause(session, until, self.clock(), "429 from Codat")
                await session.commit()
            report.failed.append(customer_id)
            report.paused_until = until
            return False
        except CodatError as exc:
            report.failed.append(customer_id)
            if not (exc.transient or exc.status in (401, 403)):
                log.warning("provisioning %s: Codat refused (%s)", customer_id, exc)
                self.later[customer_id] = self.clock() + REFUSED_RETRY
                return True
            self.failures += 1
            backoff = min(FAILURE_BACKOFF * 2 ** (self.failures - 1), MAX_FAILURE_BACKOFF)
            self.resume_at = report.paused_until = self.clock() + backoff
            log.warning(
                "provisioning %s failed (%s); backing off %.0fs",
                customer_id,
                type(exc).__name__,
                backoff.total_seconds(),
            )
            return False
        except DomainError as exc:  # no longer eligible, or an answer Codat should not give
            log.warning("provisioning %s: %s", customer_id, type(exc).__name__)
            self.later[customer_id] = self.clock() + REFUSED_RETRY
            report.failed.append(customer_id)
            return True
        if outcome == "unaffordable":
            now = self.clock()
            report.out_of_quota = True
            self.resume_at = report.paused_until = rate_limit.next_quota_reset(now)
            log.info("provisioning: the background share of today's quota is spent")
            return False
        self.failures = 0
        if outcome == "provisioned":
            report.provisioned.append(customer_id)
        elif outcome == "busy":
            self.later[customer_id] = self.clock() + BUSY_RETRY
            report.busy.append(customer_id)
        return True

    async def _take_quota(self, now: datetime) -> bool:
        async with self.sessions() as session:
            await quota.note_seen(session, self.connect.codat.rate_limit, now)
            granted = await quota.try_spend(session, now, REQUESTS_PER_CUSTOMER, self.quota_share)
            await session.commit()
        return granted

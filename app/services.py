"""The long-lived objects of a process, built once from the settings and shared: the web app
(`app.main`), `bankfeeds worker` and `bankfeeds doctor` all build them here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.bank_feeds.reconciler import Cadence, Reconciler
from app.bank_feeds.service import BankFeedService
from app.codat.client import CodatClient, Transport, in_process
from app.connect.provision import Provisioner
from app.connect.service import ConnectService
from app.console.service import ConsoleService
from app.customers.service import CustomerService
from app.db import create_engine, session_factory, utcnow
from app.demo.inbox import DemoInbox
from app.events.outbox import announce
from app.events.service import EventService
from app.events.worker import EventWorker
from app.logs import RedactingFilter, redaction_list
from app.settings import SANDBOX_API_KEY, SANDBOX_MOUNT, Settings
from app.transactions.push import PushJob
from app.transactions.service import FeedRules, TransactionService
from app.transactions.summary import transaction_feeds
from app.webhooks.handlers import WRITE_EVENT_TYPES
from app.webhooks.service import WebhookService
from app.webhooks.worker import InboxWorker

T = TypeVar("T")
SANDBOX_INTERNAL_URL = "http://codat-sandbox.internal"
SANDBOX_DRAIN_SECONDS = 2.0

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    codat: CodatClient
    redactor: RedactingFilter
    connect: ConnectService
    customers: CustomerService
    bank_feeds: BankFeedService
    webhooks: WebhookService
    events: EventService
    console: ConsoleService
    transactions: TransactionService
    inbox_signal: asyncio.Event = field(default_factory=asyncio.Event)
    push_signal: asyncio.Event = field(default_factory=asyncio.Event)
    provision_signal: asyncio.Event = field(default_factory=asyncio.Event)
    demo_inbox: DemoInbox = field(default_factory=DemoInbox)  # sandbox mode's demo host app

    clock: Callable[[], datetime] = utcnow  # the transaction feed's; the sandbox's in sandbox mode

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        codat: CodatClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> Services:
        sessions = session_factory(engine)
        budget = settings.connect_retry_budget_seconds
        signal = asyncio.Event()
        push_signal = asyncio.Event()
        provision_signal = asyncio.Event()
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            codat=codat,
            redactor=RedactingFilter(redaction_list(settings)),
            connect=ConnectService(
                sessions,
                codat,
                settings.allowed_link_hosts,
                token_secret=settings.connect_token_secret,
                public_base_url=settings.public_base_url,
                retry_budget_seconds=budget,
                reusable_tokens=settings.connect_reusable_tokens,
                clicks_per_minute=settings.connect_clicks_per_minute,
            ),
            customers=CustomerService(sessions, codat, budget=budget, added=provision_signal.set),
            bank_feeds=BankFeedService(
                sessions,
                codat,
                budget=budget,
                announce=announce,
                transaction_feeds=transaction_feeds,
            ),
            webhooks=WebhookService(sessions, settings.codat_webhook_secret, signal),
            events=EventService(sessions),
            console=ConsoleService(sessions, settings.ops_api_token),
            transactions=TransactionService(
                sessions, feed_rules(settings), push_signal.set, clock=clock
            ),
            inbox_signal=signal,
            push_signal=push_signal,
            provision_signal=provision_signal,
            clock=clock,
        )

    def provide(self, kind: type[T]) -> T:
        """The one object of this type (for `app.deps.provided`)."""
        for value in vars(self).values():
            if isinstance(value, kind):
                return value
        raise LookupError(f"no {kind.__name__} among the services")

    # --- background work ----------------------------------------------------------------

    def inbox_worker(self, **overrides: Any) -> InboxWorker:
        """The worker as configured; tests pass `handlers=` to swap what handles an event type."""
        settings = self.settings
        options: dict[str, Any] = {
            "signal": self.inbox_signal,
            "max_attempts": settings.webhook_max_attempts,
            "retry_base_seconds": settings.webhook_retry_base_seconds,
            "retry_max_seconds": settings.webhook_retry_max_seconds,
            "poll_seconds": settings.webhook_poll_seconds,
            "redact": self.redactor.redact,
            # A settled write may leave the push job work to do at once (read a failure back).
            "wakes": dict.fromkeys(WRITE_EVENT_TYPES, self.push_signal.set),
        }
        return InboxWorker(self.sessions, **{**options, **overrides})

    def reconciler(self) -> Reconciler:
        settings = self.settings
        return Reconciler(
            self.sessions,
            self.codat,
            announce=announce,
            cadence=Cadence(
                pending_interval=timedelta(seconds=settings.reconciler_pending_interval_seconds),
                pending_window=timedelta(seconds=settings.reconciler_pending_window_seconds),
                linked_interval=timedelta(seconds=settings.reconciler_linked_interval_seconds),
            ),
            budget_per_minute=settings.reconciler_budget_per_minute,
            interval_seconds=settings.reconciler_interval_seconds,
            retry_budget_seconds=settings.background_retry_budget_seconds,
            quota_share=settings.reconciler_quota_share,
            poll_while_webhooks_healthy=settings.reconciler_poll_while_webhooks_healthy,
        )

    def push_job(self, **overrides: Any) -> PushJob:
        """The transaction feed's pushes to Codat, as configured; tests pass `clock=`."""
        settings = self.settings
        options: dict[str, Any] = {
            "rules": feed_rules(settings),
            "signal": self.push_signal,
            "poll_after": timedelta(seconds=settings.transactions_poll_after_seconds),
            "retry_budget_seconds": settings.background_retry_budget_seconds,
            "quota_share": settings.reconciler_quota_share,
            "concurrency": min(
                settings.transactions_push_concurrency, settings.codat_max_connections
            ),
            "clock": self.clock,
        }
        return PushJob(self.sessions, self.codat, **{**options, **overrides})

    def provisioner(self, **overrides: Any) -> Provisioner:
        """Provisioning ahead of the click (PROVISION_AHEAD), as configured; tests pass
        `clock=`."""
        settings = self.settings
        options: dict[str, Any] = {
            "signal": self.provision_signal,
            "retry_budget_seconds": settings.connect_retry_budget_seconds,
            "quota_share": settings.reconciler_quota_share,
            "clock": self.clock,
        }
        return Provisioner(self.sessions, self.connect, **{**options, **overrides})

    def event_worker(self, **overrides: Any) -> EventWorker:
        """The delivery of events to the host app's endpoints, as configured; tests pass
        `transport=` or `clock=`."""
        settings = self.settings
        options: dict[str, Any] = {
            "timeout_seconds": settings.event_timeout_seconds,
            "retry_base_seconds": settings.event_retry_base_seconds,
            "retry_max_seconds": settings.event_retry_max_seconds,
            "poll_seconds": settings.event_poll_seconds,
        }
        return EventWorker(self.sessions, **{**options, **overrides})

    def background_jobs(self) -> list[BackgroundJob]:
        """What this process runs besides HTTP: the inbox worker, the reconciler unless
        RECONCILER_ENABLED=false, the transaction pushes unless TRANSACTIONS_PUSH_ENABLED=false,
        provisioning ahead of the click with PROVISION_AHEAD=true, and the event delivery
        worker; nothing with BACKGROUND_WORKERS=off (web replicas leave it to `bankfeeds
        worker`)."""
        if self.settings.background_workers == "off":
            return []
        jobs: list[BackgroundJob] = [self.inbox_worker().run]
        if self.settings.reconciler_enabled:
            jobs.append(self.reconciler().run)
        if self.settings.transactions_push_enabled:
            jobs.append(self.push_job().run)
        if self.settings.provision_ahead:
            jobs.append(self.provisioner().run)
        jobs.append(self.event_worker().run)
        return jobs

    @contextlib.asynccontextmanager
    async def running(self, jobs: list[BackgroundJob]) -> AsyncIterator[None]:
        """Run `jobs` for as long as the block lasts."""
        tasks = [asyncio.create_task(job()) for job in jobs]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def feed_rules(settings: Settings) -> FeedRules:
    return FeedRules(
        timezone=settings.transactions_timezone,
        history_days=settings.transactions_history_days,
        push_delay=timedelta(seconds=settings.transactions_push_delay_seconds),
    )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, sandbox: Any = None, codat_transport: Transport | None = None
) -> AsyncIterator[Services]:
    """Everything a process needs, closed on exit; in sandbox mode Codat is `sandbox`."""
    engine = create_engine(settings.database_url)
    try:
        async with open_codat(settings, sandbox=sandbox, transport=codat_transport) as codat:
            # In sandbox mode "today" is the sandbox's, whose clock tests and demos move.
            clock = sandbox.state.sandbox.clock.now if sandbox is not None else utcnow
            yield Services.build(settings, engine, codat, clock)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_codat(
    settings: Settings, *, sandbox: Any = None, transport: Transport | None = None
) -> AsyncIterator[CodatClient]:
    """The Codat client. With `sandbox` (an app from `build_sandbox`), Codat is that sandbox in
    this process, with the same HTTP and no socket; it is closed with the client."""
    base_url = settings.codat_url
    if sandbox is not None:
        transport = transport or in_process(sandbox)
        base_url = SANDBOX_INTERNAL_URL
    client = CodatClient(
        base_url,
        settings.codat_key,
        timeout=settings.codat_timeout_seconds,
        max_connections=settings.codat_max_connections,
        transport=transport,
    )
    try:
        yield client
    finally:
        if sandbox is not None:  # let in-flight webhooks land before the database goes
            emulator = sandbox.state.sandbox
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emulator.webhooks.drain(), SANDBOX_DRAIN_SECONDS)
            await emulator.aclose()
        await client.aclose()


def build_sandbox(
    settings: Settings, *, webhooks: bool = True, webhook_transport: Transport | None = None
) -> Any:
    """The built-in Codat sandbox as the service mounts it at SANDBOX_MOUNT. Without `webhooks`
    it sends none (the doctor changes nothing). ValueError if the settings could not exist at
    Codat."""
    from app.sandbox import SandboxConfig, create_sandbox_app  # only ever in sandbox mode

    secret = settings.codat_webhook_secret if webhooks else None
    optional: dict[str, Any] = {}
    if settings.sandbox_disconnect_delay_seconds is not None:
        optional["disconnect_delay"] = timedelta(seconds=settings.sandbox_disconnect_delay_seconds)
    return create_sandbox_app(
        SandboxConfig(
            api_key=SANDBOX_API_KEY,
            public_url=settings.public_base_url + SANDBOX_MOUNT,
            # The endpoint Codat's Portal would hold; it is sent events only with a secret.
            webhook_url=settings.public_base_url + "/webhooks/codat",
            webhook_secret=secret.get_secret_value() if secret else None,
            callout_title_en=settings.link_callout_title_en,
            callout_body_en=settings.link_callout_body_en,
            callout_title_fr=settings.link_callout_title_fr,
            callout_body_fr=settings.link_callout_body_fr,
            return_url=settings.public_base_url + "/",
            webhook_transport=webhook_transport,
            **optional,
        )
    )

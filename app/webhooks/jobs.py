"""The background jobs (inbox worker, reconciler), built from the app's own collaborators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from app.bank_feeds.reconciler import Cadence, Reconciler
from app.logs import RedactingFilter
from app.settings import Settings
from app.webhooks.worker import InboxWorker

BackgroundJob = Callable[[FastAPI], Awaitable[None]]


def inbox_signal(app: FastAPI) -> asyncio.Event:
    """Set after each new event is stored, so this process's worker wakes at once."""
    signal: asyncio.Event | None = getattr(app.state, "webhook_inbox_signal", None)
    if signal is None:
        signal = asyncio.Event()
        app.state.webhook_inbox_signal = signal
    return signal


def build_inbox_worker(app: FastAPI, **overrides: Any) -> InboxWorker:
    """The worker as configured; tests pass `handlers=` to swap what handles an event type."""
    settings: Settings = app.state.settings
    options: dict[str, Any] = {
        "signal": inbox_signal(app),
        "max_attempts": settings.webhook_max_attempts,
        "retry_base_seconds": settings.webhook_retry_base_seconds,
        "retry_max_seconds": settings.webhook_retry_max_seconds,
        "poll_seconds": settings.webhook_poll_seconds,
        "redact": RedactingFilter(secret_values(settings)).redact,
    }
    return InboxWorker(app.state.sessions, **{**options, **overrides})


def build_reconciler(app: FastAPI) -> Reconciler:
    settings: Settings = app.state.settings
    return Reconciler(
        app.state.sessions,
        app.state.codat,
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


async def inbox_worker_job(app: FastAPI) -> None:
    await build_inbox_worker(app).run()


async def reconciler_job(app: FastAPI) -> None:
    await build_reconciler(app).run()


def background_jobs(settings: Settings) -> list[BackgroundJob]:
    """What this process runs besides HTTP: nothing when BACKGROUND_WORKERS=off."""
    if settings.background_workers == "off":
        return []
    jobs: list[BackgroundJob] = [inbox_worker_job]
    if settings.reconciler_enabled:
        jobs.append(reconciler_job)
    return jobs


def secret_values(settings: Settings) -> list[str]:
    secrets = (
        settings.codat_api_key,
        settings.connect_token_secret,
        settings.ops_api_token,
        settings.codat_webhook_secret,
    )
    return [s.get_secret_value() for s in secrets if s is not None]

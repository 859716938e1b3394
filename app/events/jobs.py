"""The delivery worker as a background job of the service, or of `bankfeeds worker`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from app.events.worker import EventWorker
from app.settings import Settings

BackgroundJob = Callable[[FastAPI], Awaitable[None]]


def build_event_worker(app: FastAPI, **overrides: Any) -> EventWorker:
    """The worker as configured; tests pass `transport=` or `clock=`."""
    settings: Settings = app.state.settings
    options: dict[str, Any] = {
        "timeout_seconds": settings.event_timeout_seconds,
        "retry_base_seconds": settings.event_retry_base_seconds,
        "retry_max_seconds": settings.event_retry_max_seconds,
        "poll_seconds": settings.event_poll_seconds,
    }
    return EventWorker(app.state.sessions, **{**options, **overrides})


async def event_delivery_job(app: FastAPI) -> None:
    await build_event_worker(app).run()


def background_jobs(settings: Settings) -> list[BackgroundJob]:
    """Nothing when BACKGROUND_WORKERS=off: `bankfeeds worker` delivers then."""
    return [] if settings.background_workers == "off" else [event_delivery_job]

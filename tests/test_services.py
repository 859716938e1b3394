"""The services a process builds once: what runs in the background follows the settings."""

from __future__ import annotations

from pathlib import Path

from app.bank_feeds.reconciler import Reconciler
from app.events.worker import EventWorker
from app.services import open_services
from app.settings import Settings
from app.transactions.push import PushJob
from app.webhooks.worker import InboxWorker
from tests.conftest import make_settings


async def test_background_jobs_follow_the_settings(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")

    async def jobs(settings: Settings) -> list[type]:
        async with open_services(settings) as services:
            return [type(job.__self__) for job in services.background_jobs()]  # type: ignore[attr-defined]

    # the test settings turn the reconciler off
    assert await jobs(settings) == [InboxWorker, PushJob, EventWorker]
    enabled = settings.model_copy(update={"reconciler_enabled": True})
    assert await jobs(enabled) == [InboxWorker, Reconciler, PushJob, EventWorker]
    no_pushes = settings.model_copy(update={"transactions_push_enabled": False})
    assert await jobs(no_pushes) == [InboxWorker, EventWorker]
    assert await jobs(enabled.model_copy(update={"background_workers": "off"})) == []

"""The service under uvicorn in the test's own event loop, for Chromium: the test reaches its
services (the console's clock, the database, the sandbox) while the browser drives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.services import Services
from tests.conftest import ROOT, make_settings
from tests.servers import free_port
from tests.transports import LateASGITransport

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE_VERSION = "4.14.1"
AXE_DIR = ROOT / "var" / "axe-core"
START_SECONDS = 20.0


def require_browser() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    return CHROMIUM


def axe_script() -> Path:
    """axe-core from the npm registry, installed once into var/ (ignored by git)."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    package = script.parent / "package.json"
    if script.exists() and f'"version": "{AXE_VERSION}"' in package.read_text():
        return script
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("npm is missing: it installs axe-core for the accessibility check")
        pytest.skip("npm is missing")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(AXE_DIR),
            f"axe-core@{AXE_VERSION}",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return script


@dataclass
class LiveService:
    url: str
    app: FastAPI

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    @property
    def sandbox(self) -> Any:
        return self.app.state.sandbox_app.state.sandbox

    def set_clock(self, at: datetime) -> None:
        """The console's clock (sessions, sign-in pauses, the audit log) now reads `at`."""
        self.services.console.clock = lambda: at


@contextlib.asynccontextmanager
async def live_service(database_url: str, **overrides: Any) -> AsyncIterator[LiveService]:
    """The app with its sandbox, the demo customers and its background worker, on a port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, public_base_url=url, **overrides)
    webhooks = LateASGITransport()
    app = create_app(settings, run_background=True, sandbox_webhook_transport=webhooks)
    webhooks.app = app
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        await asyncio.sleep(0.05)
    try:
        yield LiveService(url, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, START_SECONDS)

"""Shared fixtures: both databases on the real migrations, the app with its sandbox, a guard
against any network traffic that is not loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import Base, create_engine, session_factory
from app.main import create_app
from app.migrate import upgrade
from app.services import Services
from app.settings import Settings
from tests.transports import WatchedCodat


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """One seed per run for the test order (pytest-randomly prints it as `--randomly-seed=N`)
    and for every fuzzer's examples, unless `--hypothesis-seed` names its own: passing the
    printed seed back replays the run, order and examples alike."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.getoption("hypothesis_seed", None) is None:
        import hypothesis.core

        hypothesis.core.global_force_seed = seed  # type: ignore[assignment]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The run's seed, even with -q: the order and the fuzzers' examples come from it."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"order and fuzz seed: replay with --randomly-seed={seed}")


ROOT = Path(__file__).resolve().parents[1]
OAS_DIR = ROOT.parent / "shared" / "codat" / "oas"
PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("TEST_REQUIRE_POSTGRES") == "1"

# Recognisable secrets: the leak tests search every captured log line for them.
CONNECT_SECRET = "connect-secret-Q7mZ2vT9xL4pN8rK1wY6"
OPS_TOKEN = "ops-token-H3kD8sF2jL9qW5eR7tY1bN6x"
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXdlYmhvb2sta2V5LWZvci10ZXN0cy0xMjM0"
PUBLIC_BASE = "http://127.0.0.1:8000"


# --- network guard ---------------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise RuntimeError(f"tests may only talk to loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


# --- databases --------------------------------------------------------------------------------


def _postgres_reachable() -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""), timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _make_postgres_db() -> str:
    import asyncpg

    name = f"bankfeeds_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_postgres_db(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database on the real migrations, or a skip when none is reachable."""
    if not _postgres_reachable():
        if REQUIRE_POSTGRES:
            pytest.fail("TEST_REQUIRE_POSTGRES=1 but Postgres is not reachable")
        pytest.skip("Postgres is not reachable")
    url = _make_postgres_db()
    upgrade(url)
    yield url
    _drop_postgres_db(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'bankfeeds.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses the database runs on SQLite and on Postgres."""
    return str(request.getfixturevalue(f"{request.param}_url"))


async def _truncate(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        if url.startswith("postgresql"):
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))
    await engine.dispose()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await _truncate(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


# --- the service ------------------------------------------------------------------------------


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "codat_api_key": None,
        "public_base_url": PUBLIC_BASE,
        "connect_token_secret": SecretStr(CONNECT_SECRET),
        "ops_api_token": SecretStr(OPS_TOKEN),
        "codat_webhook_secret": SecretStr(WEBHOOK_SECRET),
        "reconciler_enabled": False,
        "connect_retry_budget_seconds": 2.0,
        # Tests click one customer many times; the limit's own tests set it low.
        "connect_clicks_per_minute": 10_000,
    }
    values.update(overrides)
    return Settings.model_construct(**{**Settings().model_dump(), **values})


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def sandbox(self) -> Any:
        return self.app.state.sandbox_app.state.sandbox

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.services.sessions

    def codat_calls(self, method: str | None = None) -> list[Any]:
        return [c for c in self.sandbox.calls if method is None or c.method == method]

    @property
    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OPS_TOKEN}"}


async def start_service(
    database_url: str,
    *,
    run_background: bool = False,
    seed_demo: bool = False,
    codat_transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> AsyncIterator[Service]:
    """The app in sandbox mode; the sandbox's webhooks are delivered into it in-process."""
    from tests.transports import LateASGITransport

    settings = make_settings(database_url, **overrides)
    webhooks = LateASGITransport()
    app = create_app(
        settings,
        codat_transport=codat_transport,
        run_background=run_background,
        seed_demo=seed_demo,
        sandbox_webhook_transport=webhooks,
    )
    webhooks.app = app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE) as client:
            yield Service(app, client, settings)


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    await _truncate(database_url)
    async for svc in start_service(database_url):
        yield svc


@dataclass
class FaultyService:
    service: Service
    codat: WatchedCodat

    def fail(
        self,
        status: int | None = None,
        lose_response_for: Callable[[httpx.Request], bool] | None = None,
    ) -> None:
        """From now on Codat fails; requests give up retrying after a short budget."""
        self.codat.down_status = status
        self.codat.lose_response_for = lose_response_for
        for service in (self.service.services.customers, self.service.services.bank_feeds):
            service.budget = 0.4

    def recover(self) -> None:
        self.codat.down_status = self.codat.lose_response_for = None


@pytest.fixture
async def faulty(database_url: str) -> AsyncIterator[FaultyService]:
    """The service with a Codat that can be made to fail (`fail`, `recover`)."""
    await _truncate(database_url)
    codat = WatchedCodat()
    async for svc in start_service(database_url, codat_transport=codat):
        codat.sandbox = svc.app.state.sandbox_app
        yield FaultyService(svc, codat)

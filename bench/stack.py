"""The system under test: a latency-shaped Codat sandbox and the service, each its own process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.connect.tokens import mint_connect_token
from bench.config import BenchConfig
from bench.cpu import CpuMeter, net_ms_per_request
from bench.load import LoadResult, Request, closed_loop
from bench.processes import (
    BenchFailure,
    Child,
    drop_database,
    free_port,
    python_env,
    recreate_database,
    run_cli,
    wait_healthy,
)
from bench.rss import RssMonitor
from bench.stats import calls_in_turn

OTP_LIFETIME_SECONDS = 3600
STARTED = "Application startup complete."  # uvicorn's line, once per worker


UNBINDING_DAILY_QUOTA = 100_000_000


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Secrets:
    codat_api_key: str
    connect_token_secret: str
    ops_api_token: str
    codat_webhook_secret: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            codat_api_key="bench-" + secrets.token_urlsafe(32),
            connect_token_secret=secrets.token_urlsafe(32),
            ops_api_token="ops_" + secrets.token_urlsafe(32),
            codat_webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        )


@dataclass
class Stack:
    config: BenchConfig
    secrets: Secrets
    db_dsn: str
    sandbox_url: str
    service_url: str
    service: Child
    sandbox: Child
    sandbox_launcher: str
    reference: Child  # bench/reference.py: the returning click at its simplest
    http: httpx.AsyncClient  # to the service, as a browser or an ops tool would call it
    codat: httpx.AsyncClient  # straight to the sandbox, with the API key
    rss: RssMonitor
    cpu: CpuMeter
    reference_cpu: CpuMeter  # its `service` is the reference process
    # One client (one connection) per load-generator worker: see `bench.load.closed_loop`.
    browsers: list[httpx.AsyncClient]
    codat_workers: list[httpx.AsyncClient]
    reference_browsers: list[httpx.AsyncClient]
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # the service's, for `bankfeeds` commands

    def connect_token(self, customer_id: str) -> str:
        """Reusable (no jti) for the whole run: the scenarios measure the flow, not minting."""
        return mint_connect_token(
            self.secrets.connect_token_secret,
            customer_id,
            single_use=False,
            lifetime=timedelta(minutes=15),
        )

    @property
    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.ops_api_token}"}

    async def reset_codat_log(self) -> None:
        (await self.codat.delete("/_sandbox/calls")).raise_for_status()

    async def codat_calls(self) -> list[dict[str, Any]]:
        response = await self.codat.get("/_sandbox/calls")
        response.raise_for_status()
        return list(response.json())

    async def codat_usage(self) -> tuple[int, int]:
        """Codat calls since the log was reset, and how many of them were waited for in turn."""
        calls = await self.codat_calls()
        ends = [datetime.fromisoformat(c["at"]).timestamp() for c in calls]
        return len(calls), calls_in_turn(ends, self.config.latency_ms / 1000)

    async def expire_link_passwords(self) -> None:
        """Move the sandbox clock past the one-time passwords' hour, so it forgets them.

        Every connection read issues a password the sandbox keeps (and scans) for an hour;
        without this the sandbox slows down as a run goes on, and skews later scenarios.
        """
        response = await self.codat.post(
            "/_sandbox/clock/advance", json={"seconds": OTP_LIFETIME_SECONDS + 1}
        )
        response.raise_for_status()
        await self.reset_codat_log()

    async def measure(
        self,
        request: Request,
        concurrency: int,
        seconds: float,
        max_requests: int,
        meter: CpuMeter | None = None,
    ) -> tuple[LoadResult, dict[str, Any]]:
        """A closed loop, with the CPU each process used meanwhile, per request; `meter`
        names the server measured (the service by default)."""
        return await measure(meter or self.cpu, request, concurrency, seconds, max_requests)

    def check_alive(self) -> None:
        for child in (self.sandbox, self.service, self.reference):
            if not child.alive():
                raise BenchFailure(f"{child.name} died:\n{child.tail()}")


async def measure(
    meter: CpuMeter, request: Request, concurrency: int, seconds: float, max_requests: int
) -> tuple[LoadResult, dict[str, Any]]:
    before = meter.snapshot()
    result = await closed_loop(request, concurrency, seconds, max_requests)
    after = meter.snapshot()
    cpu: dict[str, Any] = {"percent_of_one_core": meter.usage(before, after)}
    if result.completed:
        for key, name in (
            ("service_ms_per_request", "service"),
            ("service_runqueue_wait_ms_per_request", "service_waiting"),
            ("postgres_ms_per_request", "postgres"),
        ):
            spent = getattr(after, name) - getattr(before, name)
            cpu[key] = round(spent * 1000 / result.completed, 2)
        if meter.idle_ms_per_second is not None:
            cpu["service_net_ms_per_request"] = net_ms_per_request(
                after.service - before.service,
                after.at - before.at,
                result.completed,
                meter.idle_ms_per_second,
            )
    return result, cpu


def browser(base_url: str, connections: int = 1) -> httpx.AsyncClient:
    """A client as a browser is: redirects not followed, its own connections."""
    return httpx.AsyncClient(
        base_url=base_url,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(30.0, connect=5.0),
    )


@dataclass
class Server:
    """A further server process for a scenario: its URL, its CPU and one browser per worker."""

    child: Child
    url: str
    cpu: CpuMeter
    browsers: list[httpx.AsyncClient]


@contextlib.asynccontextmanager
async def service_with_workers(stack: Stack, workers: int) -> AsyncIterator[Server]:
    """`bankfeeds serve --workers N` beside the stack's service, on the same database and
    sandbox; stopped on the way out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    env = {**stack.env, "PUBLIC_BASE_URL": url}
    child = Child(
        f"service-{workers}-workers", [*argv, "--workers", str(workers)], env, stack.log_dir
    )
    try:
        # Each worker imports and starts the whole service: slow on a busy machine. The first
        # one up answers the health check; the others may still be starting.
        await wait_healthy(url + "/healthz", child, within=120.0)
        await _all_started(child, workers, within=120.0)
        async with contextlib.AsyncExitStack() as clients:
            browsers = [
                await clients.enter_async_context(browser(url)) for _ in range(len(stack.browsers))
            ]
            yield Server(
                child, url, CpuMeter(child.pid, stack.sandbox.pid, stack.config.database), browsers
            )
    finally:
        child.stop()


async def _all_started(child: Child, workers: int, within: float) -> None:
    """Every worker has logged its start-up; until then the CPU of the tree includes imports."""
    deadline = time.monotonic() + within
    while child.log_path.read_text(errors="replace").count(STARTED) < workers:
        if not child.alive() or time.monotonic() > deadline:
            raise BenchFailure(f"{child.name}: not every worker started:\n{child.tail()}")
        await asyncio.sleep(0.2)


def _sandbox_command(
    config: BenchConfig, port: int, api_key: str, public_url: str
) -> tuple[list[str], str]:
    """`bankfeeds sandbox` with its own latency setting; the bench's shim if it has none."""
    flags = [
        "--port", str(port), "--api-key", api_key, "--public-url", public_url,
        "--latency-ms", str(config.latency_ms), "--jitter-ms", str(config.jitter_ms),
        "--fault-seed", "1",
    ]  # fmt: skip
    if "--latency-ms" in run_cli(["sandbox", "--help"], python_env()):
        return [sys.executable, "-m", "app.cli", "sandbox", *flags], "bankfeeds sandbox"
    return [sys.executable, "-m", "bench.sandbox", *flags], "python -m bench.sandbox (shim)"


@contextlib.asynccontextmanager
async def fresh_database(
    config: BenchConfig,
) -> AsyncIterator[tuple[contextlib.AsyncExitStack, list[Child]]]:
    """The bench database made afresh; on the way out the children a run appends are stopped
    (last first), then the database is dropped, with whatever else was put on the stack."""
    children: list[Child] = []
    async with contextlib.AsyncExitStack() as cleanup:
        await recreate_database(config.pg_admin_dsn, config.database)
        cleanup.push_async_callback(drop_database, config.pg_admin_dsn, config.database)

        def stop_children() -> None:
            for child in reversed(children):
                child.stop()

        cleanup.callback(stop_children)
        yield cleanup, children


def service_env(
    keys: Secrets, db_dsn: str, sandbox_url: str, service_url: str, **extra: str
) -> dict[str, str]:
    """A service process's environment: Postgres, the sandbox as Codat with a real key, the
    reconciler off; `extra` settings on top."""
    return python_env(
        DATABASE_URL=db_dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        CODAT_API_KEY=keys.codat_api_key,
        CODAT_BASE_URL=sandbox_url,
        CODAT_LINK_HOSTS="127.0.0.1",
        PUBLIC_BASE_URL=service_url,
        CONNECT_TOKEN_SECRET=keys.connect_token_secret,
        OPS_API_TOKEN=keys.ops_api_token,
        CODAT_WEBHOOK_SECRET=keys.codat_webhook_secret,
        RECONCILER_ENABLED="false",
        APP_ENV="development",
        **extra,
    )


@contextlib.asynccontextmanager
async def running_stack(config: BenchConfig, log_dir: Path) -> AsyncIterator[Stack]:
    """Database, sandbox and service up; everything stopped and dropped on the way out."""
    keys = Secrets.generate()
    db_dsn = f"postgresql://postgres@127.0.0.1:5432/{config.database}"
    sandbox_port, service_port, reference_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    service_url = f"http://127.0.0.1:{service_port}"
    env = service_env(
        keys,
        db_dsn,
        sandbox_url,
        service_url,
        # Returning customers click again and again with one token, faster than a person.
        CONNECT_REUSABLE_TOKENS="true",
        CONNECT_CLICKS_PER_MINUTE="1000000000",
    )
    async with fresh_database(config) as (cleanup, children):
        argv, launcher = _sandbox_command(config, sandbox_port, keys.codat_api_key, sandbox_url)
        sandbox = Child("sandbox", argv, python_env(), log_dir)
        children.append(sandbox)
        run_cli(["migrate"], env)
        service = Child(
            "service",
            # One worker: the scenarios measure one process; `capacity` adds --workers N.
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(service_port),
                "--workers",
                "1",
            ],
            env,
            log_dir,
        )
        children.append(service)
        reference_url = f"http://127.0.0.1:{reference_port}"
        reference = Child(
            "reference",
            [sys.executable, "-m", "bench.reference", "--port", str(reference_port)],
            python_env(
                DATABASE_URL=env["DATABASE_URL"],
                CONNECT_TOKEN_SECRET=keys.connect_token_secret,
                CODAT_BASE_URL=sandbox_url,
                CODAT_API_KEY=keys.codat_api_key,
            ),
            log_dir,
        )
        children.append(reference)
        await wait_healthy(sandbox_url + "/_sandbox/calls", sandbox)
        await wait_healthy(service_url + "/healthz", service)
        await wait_healthy(reference_url + "/healthz", reference)
        auth = {"Authorization": "Basic " + b64(keys.codat_api_key)}
        workers = max(config.concurrency_levels)

        async def client(base_url: str, headers: dict[str, str], connections: int) -> Any:
            return await cleanup.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    headers=headers,
                    follow_redirects=False,
                    limits=httpx.Limits(
                        max_connections=connections, max_keepalive_connections=connections
                    ),
                    timeout=httpx.Timeout(30.0, connect=5.0),
                )
            )

        # Codat's daily quota (1000 a day with no Linked company) must not bind in a benchmark:
        # keep the sandbox's latency and other settings, lift only the quota.
        sandbox_admin = await client(sandbox_url, auth, 1)
        faults = (await sandbox_admin.get("/_sandbox/faults")).raise_for_status().json()
        faults["daily_quota"] = UNBINDING_DAILY_QUOTA
        (await sandbox_admin.put("/_sandbox/faults", json=faults)).raise_for_status()
        yield Stack(
            config,
            keys,
            db_dsn,
            sandbox_url,
            service_url,
            service,
            sandbox,
            launcher,
            reference,
            http=await client(service_url, {}, 20),
            codat=await client(sandbox_url, auth, 20),
            rss=RssMonitor(service.pid),
            cpu=CpuMeter(service.pid, sandbox.pid, config.database),
            reference_cpu=CpuMeter(reference.pid, sandbox.pid, config.database),
            browsers=[await client(service_url, {}, 1) for _ in range(workers)],
            codat_workers=[await client(sandbox_url, auth, 1) for _ in range(workers)],
            reference_browsers=[await client(reference_url, {}, 1) for _ in range(workers)],
            log_dir=log_dir,
            env=dict(env),
        )

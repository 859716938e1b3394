"""The transaction feed's system under test: the sandbox sending webhooks to the service, the
service's web process taking them (no background work), and `bankfeeds worker` started when the
push is measured, so the push's CPU is the worker's and the ingest runs alone."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.config import BenchConfig
from bench.cpu import scheduler_seconds
from bench.processes import (
    Child,
    free_port,
    python_env,
    run_cli,
    wait_healthy,
)
from bench.stack import UNBINDING_DAILY_QUOTA, Secrets, b64, fresh_database, service_env

CONCURRENCY_LIMIT = 10  # Codat's, per company


@dataclass
class FeedStack:
    config: BenchConfig
    secrets: Secrets
    db_dsn: str
    sandbox_url: str
    service_url: str
    sandbox: Child
    service: Child
    env: dict[str, str]  # the service's, for `bankfeeds` commands and the worker
    codat: httpx.AsyncClient  # straight to the sandbox, with the API key
    http: httpx.AsyncClient  # to the service
    log_dir: Path

    @property
    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.ops_api_token}"}

    def start_worker(self) -> Child:
        return Child("worker", [sys.executable, "-m", "app.cli", "worker"], self.env, self.log_dir)

    def service_cpu_seconds(self) -> float:
        return scheduler_seconds(self.service.pid)[0]

    async def codat_calls(self) -> list[dict[str, Any]]:
        response = await self.codat.get("/_sandbox/calls")
        response.raise_for_status()
        return list(response.json())

    async def reset_codat_log(self) -> None:
        (await self.codat.delete("/_sandbox/calls")).raise_for_status()


@contextlib.asynccontextmanager
async def running_feed_stack(config: BenchConfig, log_dir: Path) -> AsyncIterator[FeedStack]:
    """Database, sandbox (webhooks on), service; everything stopped and dropped on the way out."""
    keys = Secrets.generate()
    db_dsn = f"postgresql://postgres@127.0.0.1:5432/{config.database}"
    sandbox_port, service_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    service_url = f"http://127.0.0.1:{service_port}"
    env = service_env(
        keys,
        db_dsn,
        sandbox_url,
        service_url,
        BACKGROUND_WORKERS="off",  # the web process only takes requests and webhooks
        TRANSACTIONS_PUSH_DELAY_SECONDS="0",
        TRANSACTIONS_PUSH_CONCURRENCY=str(config.feed_push_concurrency),
    )
    # A deployed service runs from compiled bytecode; without it every process start would
    # compile the whole app again, and the import command would pay for it in its figures.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    async with fresh_database(config) as (cleanup, children):
        flags = [
            "--port", str(sandbox_port), "--api-key", keys.codat_api_key,
            "--public-url", sandbox_url, "--latency-ms", str(config.latency_ms),
            "--jitter-ms", str(config.jitter_ms), "--fault-seed", "1",
            "--concurrency-limit", str(CONCURRENCY_LIMIT),
            "--daily-quota", str(UNBINDING_DAILY_QUOTA),
            "--webhook-url", service_url + "/webhooks/codat",
            "--webhook-secret", keys.codat_webhook_secret,
            "--push-delay", str(config.feed_push_delay_seconds),
        ]  # fmt: skip
        sandbox = Child(
            "sandbox", [sys.executable, "-m", "app.cli", "sandbox", *flags], python_env(), log_dir
        )
        children.append(sandbox)
        run_cli(["migrate"], env)
        service = Child(
            "service",
            [sys.executable, "-m", "app.cli", "serve", "--port", str(service_port)],
            env,
            log_dir,
        )
        children.append(service)
        await wait_healthy(sandbox_url + "/_sandbox/calls", sandbox)
        await wait_healthy(service_url + "/healthz", service)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        timeout = httpx.Timeout(120.0, connect=5.0)
        codat = await cleanup.enter_async_context(
            httpx.AsyncClient(
                base_url=sandbox_url,
                headers={"Authorization": "Basic " + b64(keys.codat_api_key)},
                limits=limits,
                timeout=timeout,
            )
        )
        http = await cleanup.enter_async_context(
            httpx.AsyncClient(base_url=service_url, limits=limits, timeout=timeout)
        )
        yield FeedStack(
            config, keys, db_dsn, sandbox_url, service_url, sandbox, service, dict(env),
            codat, http, log_dir,
        )  # fmt: skip

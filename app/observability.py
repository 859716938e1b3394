"""GET /metrics: the process's metrics (`app.metrics`) in Prometheus' text format, with the
gauges that need the database read at scrape time.

By default the endpoint is on the service's port behind the ops token. With METRICS_PORT set it
is served instead on a port of its own, without a token (keep that port on a private network);
`bankfeeds worker` serves it there too, so a worker's own counters can be scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime

import uvicorn
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Route

from app import metrics
from app.bank_feeds import rate_limit
from app.db import utcnow
from app.deps import OpsAuth
from app.models import CodatEvent
from app.settings import ConfigurationError, Settings

log = logging.getLogger("app.metrics")

DATABASE_SECONDS = 5.0
SERVER_START_SECONDS = 10.0
# Inbox statuses worth a gauge: the ones someone may have to act on (the index covers them).
INBOX_STATUSES = ("pending", "failed", "unmatched")

DatabaseGauges = Callable[[AsyncSession, datetime], Awaitable[None]]


async def inbox_gauges(session: AsyncSession, now: datetime) -> None:
    counts = dict(
        (
            await session.execute(
                select(CodatEvent.status, func.count())
                .where(CodatEvent.status.in_(INBOX_STATUSES))
                .group_by(CodatEvent.status)
            )
        ).all()
    )
    for status in INBOX_STATUSES:
        metrics.INBOX_EVENTS.labels(status).set(counts.get(status, 0))
    oldest = (
        await session.execute(
            select(func.min(CodatEvent.received_at)).where(CodatEvent.status == "pending")
        )
    ).scalar_one_or_none()
    metrics.INBOX_OLDEST_PENDING_AGE.set(_age(oldest, now))
    newest = (
        await session.execute(
            select(CodatEvent.received_at).order_by(CodatEvent.id.desc()).limit(1)
        )
    ).scalar_one_or_none()
    metrics.WEBHOOK_LAST_RECEIVED.set(newest.timestamp() if newest is not None else 0)


async def rate_limit_gauge(session: AsyncSession, now: datetime) -> None:
    metrics.CODAT_PAUSED.set(1 if await rate_limit.paused_until(session, now) else 0)


# Read at every scrape, in this order. The transaction feed adds its reader here: it sets
# metrics.TRANSACTIONS_STORED by state and metrics.TRANSACTIONS_OLDEST_PENDING_AGE.
DATABASE_GAUGES: tuple[DatabaseGauges, ...] = (inbox_gauges, rate_limit_gauge)


async def scrape(sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The metrics as Prometheus text, the database gauges read just now."""
    try:
        async with asyncio.timeout(DATABASE_SECONDS), sessions() as session:
            now = utcnow()
            for read in DATABASE_GAUGES:
                await read(session, now)
        metrics.DATABASE_READ.set(1)
    except Exception as exc:  # the process's own metrics are worth having all the same
        metrics.DATABASE_READ.set(0)
        log.warning("metrics: the database gauges could not be read (%s)", type(exc).__name__)
    return generate_latest(metrics.REGISTRY)


def _age(since: datetime | None, now: datetime) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


# --- on the service's port, behind the ops token ------------------------------------------

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    dependencies=[OpsAuth],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"},
        401: {"description": "Missing or wrong ops bearer token"},
    },
)
async def get_metrics(request: Request) -> Response:
    """The service's metrics for Prometheus (bearer OPS_API_TOKEN; see docs/operations.md)."""
    body = await scrape(request.app.state.services.sessions)
    return Response(body, media_type=CONTENT_TYPE)


# --- on a port of its own -----------------------------------------------------------------


def metrics_app(sessions: async_sessionmaker[AsyncSession]) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(await scrape(sessions), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


class _MetricsServer(uvicorn.Server):
    """A uvicorn server beside the main one: the process's signals stay with the main one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bound(settings: Settings) -> socket.socket:
    """The listening socket, bound here so a port in use is an error, not uvicorn's exit."""
    host, port = settings.metrics_host, settings.metrics_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"METRICS_PORT: cannot listen on {host}:{port} ({exc})") from exc
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def serving_metrics(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    """With METRICS_PORT, serve /metrics on it for as long as the block lasts."""
    if settings.metrics_port is None:
        yield
        return
    config = uvicorn.Config(
        metrics_app(sessions),
        host=settings.metrics_host,
        port=settings.metrics_port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _MetricsServer(config)
    task = asyncio.create_task(server.serve(sockets=[_bound(settings)]))
    deadline = time.monotonic() + SERVER_START_SECONDS
    # uvicorn offers a flag, not an event: poll it, within a deadline.
    while not server.started and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await task
        raise RuntimeError(f"metrics server on port {settings.metrics_port} did not start")
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    try:
        yield
    finally:
        server.should_exit = True
        await task

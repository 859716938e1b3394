"""The FastAPI application: wiring only. Each domain package brings its own routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.codat.client import CodatClient, authorization_header
from app.connect.routes import ops_router as connect_ops_router
from app.connect.routes import router as connect_router
from app.connect.service import ConnectService
from app.db import create_engine, session_factory
from app.demo.routes import router as demo_router
from app.demo.seed import seed_demo_customers
from app.deps import OpsGate
from app.limits import BodySizeLimit
from app.logs import configure_logging
from app.ops.routes import router as ops_router
from app.pages import message_page, pick_language
from app.settings import SANDBOX_API_KEY, SANDBOX_MOUNT, Settings, load_settings
from app.webhooks.jobs import background_jobs as webhook_background_jobs
from app.webhooks.routes import router as webhook_router

log = logging.getLogger("app")
MAX_BODY_BYTES = 1_000_000
SANDBOX_INTERNAL_URL = "http://codat-sandbox.internal"
MAX_IMPORT_BYTES = 50_000_000
MAX_WEBHOOK_BYTES = 256_000

BackgroundJob = Callable[[FastAPI], Awaitable[None]]


def create_app(
    settings: Settings | None = None,
    *,
    codat_transport: httpx.AsyncBaseTransport | None = None,
    run_background: bool = True,
    seed_demo: bool = True,
    sandbox_webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The service. Tests pass their own Codat transport or webhook route into the sandbox."""
    settings = settings or load_settings()
    settings.check_production()
    sandbox_app = (
        _build_sandbox(settings, sandbox_webhook_transport) if settings.sandbox_mode else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(_secret_values(settings))
        if settings.sandbox_mode:
            log.warning(
                "SANDBOX MODE: no CODAT_API_KEY is set, so every Codat call goes to the "
                "built-in Codat sandbox at %s%s. Nothing reaches Codat or QuickBooks.",
                settings.public_base_url,
                SANDBOX_MOUNT,
            )
        engine = create_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessions = session_factory(engine)
        transport, base_url = codat_transport, settings.codat_url
        if sandbox_app is not None:  # in-process: the same HTTP semantics, no socket
            transport = transport or httpx.ASGITransport(app=sandbox_app)
            base_url = SANDBOX_INTERNAL_URL
        app.state.codat = CodatClient(
            base_url,
            settings.codat_key,
            timeout=settings.codat_timeout_seconds,
            max_connections=settings.codat_max_connections,
            transport=transport,
        )
        if settings.sandbox_mode and seed_demo:
            await seed_demo_customers(app.state.sessions)
        app.state.connect_service = ConnectService(
            app.state.sessions,
            app.state.codat,
            settings.allowed_link_hosts,
            retry_budget_seconds=settings.connect_retry_budget_seconds,
        )
        tasks = [
            asyncio.create_task(job(app))
            for job in (app.state.background_jobs if run_background else [])
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if sandbox_app is not None:  # let in-flight webhooks land before the database goes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sandbox_app.state.sandbox.webhooks.drain(), 2.0)
                await sandbox_app.state.sandbox.aclose()
            await app.state.codat.aclose()
            await engine.dispose()

    app = FastAPI(
        title="bankfeeds-connect",
        summary="Connect business customers to QuickBooks Online Bank Feeds through Codat.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.background_jobs = []  # [background jobs] coroutines run for the app's lifetime
    app.state.background_jobs.extend(webhook_background_jobs(settings))
    app.state.sandbox_app = sandbox_app
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        overrides={"/ops/customers:import": MAX_IMPORT_BYTES, "/webhooks/": MAX_WEBHOOK_BYTES},
    )
    app.add_middleware(OpsGate, settings=settings)  # outermost: strangers never reach a body
    _add_routes(app)
    if sandbox_app is not None:
        app.mount(SANDBOX_MOUNT, sandbox_app)
    return app


def _add_routes(app: FastAPI) -> None:
    app.include_router(connect_router)
    app.include_router(connect_ops_router)
    app.include_router(ops_router)
    app.include_router(webhook_router)
    if app.state.settings.sandbox_mode:
        app.include_router(demo_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Never touches the database or Codat."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        """Readiness: the database answers."""
        try:
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("select 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse(
            {
                "status": "ok",
                "database": "ok",
                "sandbox_mode": request.app.state.settings.sandbox_mode,
            }
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None)
            )
        key = "not_found" if exc.status_code == 404 else "request_invalid"
        return message_page(request, key, exc.status_code, pick_language(request))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors(), exclude={"input"})}, 422)
        return message_page(request, "request_invalid", 400, pick_language(request))


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/ops", "/webhooks", "/healthz", "/readyz", "/openapi", "/docs")) or (
        "text/html" not in request.headers.get("accept", "")
    )


def _secret_values(settings: Settings) -> list[str]:
    values = [SANDBOX_API_KEY]
    for secret in (
        settings.codat_api_key,
        settings.connect_token_secret,
        settings.ops_api_token,
        settings.codat_webhook_secret,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    if settings.codat_api_key is not None:
        header, _ = authorization_header(settings.codat_api_key.get_secret_value())
        values.append(header.removeprefix("Basic "))
    return values


def _build_sandbox(settings: Settings, webhook_transport: httpx.AsyncBaseTransport | None) -> Any:
    from app.sandbox import SandboxConfig, create_sandbox_app  # only ever in sandbox mode

    secret = settings.codat_webhook_secret
    return create_sandbox_app(
        SandboxConfig(
            api_key=SANDBOX_API_KEY,
            public_url=settings.public_base_url + SANDBOX_MOUNT,
            webhook_url=settings.public_base_url + "/webhooks/codat" if secret else None,
            webhook_secret=secret.get_secret_value() if secret else None,
            callout_title_en=settings.link_callout_title_en,
            callout_body_en=settings.link_callout_body_en,
            callout_title_fr=settings.link_callout_title_fr,
            callout_body_fr=settings.link_callout_body_fr,
            disconnect_delay=timedelta(seconds=settings.sandbox_disconnect_delay_seconds),
            return_url=settings.public_base_url + "/",
            webhook_transport=webhook_transport,
        )
    )


def app_factory() -> FastAPI:
    """uvicorn --factory entry point."""
    return create_app()

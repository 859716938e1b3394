"""The FastAPI application: routers, middleware and error handlers. Its lifespan opens the
services (`app/services.py`); each domain package brings its own routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from app.bank_feeds.routes import router as bank_feeds_router
from app.codat.client import Transport
from app.connect.routes import ops_connect_router
from app.connect.routes import router as connect_router
from app.connect.routes import status_router as connect_status_router
from app.console.routes import mount_console
from app.customers.routes import router as customers_router
from app.demo.routes import router as demo_router
from app.demo.seed import register_demo_endpoint, seed_demo_customers
from app.deps import OpsGate, SessionDep, SettingsDep
from app.errors import install_error_handlers
from app.events.routes import router as events_router
from app.limits import BodySizeLimit
from app.logs import configure_logging
from app.migrate import head_revision, session_revision
from app.observability import router as metrics_router
from app.observability import serving_metrics
from app.request_ids import RequestIds
from app.services import build_sandbox, open_services
from app.settings import SANDBOX_MOUNT, Settings, load_settings
from app.transactions.routes import router as transactions_router
from app.webhooks.routes import router as webhook_router

log = logging.getLogger("app")
MAX_BODY_BYTES = 1_000_000
MAX_IMPORT_BYTES = 50_000_000
MAX_WEBHOOK_BYTES = 256_000


def create_app(
    settings: Settings | None = None,
    *,
    codat_transport: Transport | None = None,
    run_background: bool = True,
    seed_demo: bool = True,
    sandbox_webhook_transport: Transport | None = None,
) -> FastAPI:
    """The service. Tests pass their own Codat transport or webhook route into the sandbox."""
    settings = settings or load_settings()
    settings.check_production()
    sandbox = (
        build_sandbox(settings, webhook_transport=sandbox_webhook_transport)
        if settings.sandbox_mode
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(
            settings, sandbox=sandbox, codat_transport=codat_transport
        ) as services:
            configure_logging(services.redactor, settings.log_format)
            if settings.sandbox_mode:
                log.warning(
                    "SANDBOX MODE: no CODAT_API_KEY is set, so every Codat call goes to the "
                    "built-in Codat sandbox at %s%s. Nothing reaches Codat or QuickBooks.",
                    settings.public_base_url,
                    SANDBOX_MOUNT,
                )
                if seed_demo:
                    await seed_demo_customers(services.sessions)
                    await register_demo_endpoint(services.events, settings.public_base_url)
            app.state.services = services
            jobs = services.background_jobs() if run_background else []
            async with serving_metrics(settings, services.sessions), services.running(jobs):
                yield

    app = FastAPI(
        title="bankfeeds-connect",
        summary="Connect business customers to QuickBooks Online Bank Feeds through Codat.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.sandbox_app = sandbox
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        overrides={"/ops/customers:import": MAX_IMPORT_BYTES, "/webhooks/": MAX_WEBHOOK_BYTES},
    )
    app.add_middleware(OpsGate, settings=settings)  # strangers never reach a body
    app.add_middleware(RequestIds)  # outermost: every answer and log line has its request id
    install_error_handlers(app, sandbox_mode=settings.sandbox_mode)
    for router in (
        connect_router,
        connect_status_router,
        ops_connect_router,
        customers_router,
        bank_feeds_router,
        transactions_router,
        webhook_router,
        events_router,
    ):
        app.include_router(router)
    if settings.metrics_port is None:
        app.include_router(metrics_router)
    if settings.sandbox_mode:
        app.include_router(demo_router)
    mount_console(app, settings)
    _add_health_routes(app)
    if sandbox is not None:
        app.mount(SANDBOX_MOUNT, sandbox)
    return app


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Never touches the database or Codat."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(session: SessionDep, settings: SettingsDep) -> Response:
        """Readiness: the database answers, migrated to the head revision."""
        try:
            await session.execute(text("select 1"))
            revision = await session_revision(session)
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        if revision != head_revision():
            log.warning("not ready: the database is at revision %s, not head", revision)
            return JSONResponse({"status": "unavailable", "database": "not migrated"}, 503)
        return JSONResponse(
            {"status": "ok", "database": "ok", "sandbox_mode": settings.sandbox_mode}
        )


def app_factory() -> FastAPI:
    """uvicorn --factory entry point."""
    return create_app()

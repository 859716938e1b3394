"""The sandbox as a FastAPI app: Codat's API, the Link page, the QuickBooks simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox import admin, api, link, push, qbo, source_accounts, webhook_consumers
from app.sandbox.config import SandboxConfig
from app.sandbox.emulator import Sandbox
from app.sandbox.errors import CodatError, FieldError, error_response
from app.sandbox.faults import (
    FAULT_SCOPE_KEY,
    UNANSWERED,
    FaultInjector,
    FaultMiddleware,
    RateLimitEdge,
)
from app.sandbox.idempotency import IDEMPOTENCY_SCOPE_KEY, IdempotencyMiddleware, IdempotencyStore
from app.sandbox.state import ApiCall, ConnectionStatus

PAGE_PREFIXES = ("/link/", "/qbo", "/logos/")
ADMIN_PREFIX = "/_sandbox/"
_HTTP_MESSAGES = {
    404: "The requested resource was not found.",
    405: "The method is not allowed for the requested resource.",
}


def route_path(scope: Scope) -> str:
    """The request path below the sandbox's mount point."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class SandboxMiddleware:
    """Checks the API key on Codat's routes and records every Codat API call.

    API calls then pass Codat's rate limits, its idempotency, and any injected fault.
    """

    def __init__(
        self, app: ASGIApp, sandbox: Sandbox, faults: FaultInjector, idempotency: IdempotencyStore
    ) -> None:
        self.app = app
        self.sandbox = sandbox
        injected = FaultMiddleware(app, faults, route_path)
        self.api = RateLimitEdge(IdempotencyMiddleware(injected, idempotency), faults, route_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.sandbox.settle()
        path = route_path(scope)
        if path.startswith(PAGE_PREFIXES):
            await self.app(scope, receive, send)
            return
        is_api_call = not path.startswith(ADMIN_PREFIX)
        headers = dict(scope["headers"])
        status = 500
        try:
            if not self.sandbox.authorized(headers.get(b"authorization", b"").decode("latin-1")):
                status = 401
                response = error_response(401, "Unauthorized: a valid API key is required.")
                await response(scope, receive, send)
                return

            async def send_and_note_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            inner = self.api if is_api_call else self.app
            await inner(scope, receive, send_and_note_status)
        finally:
            if is_api_call:
                route = scope.get("route")
                fault = scope.get(FAULT_SCOPE_KEY)
                self.sandbox.calls.append(
                    ApiCall(
                        method=scope["method"],
                        path=path,
                        route=getattr(route, "path", None),
                        status=0 if fault in UNANSWERED else status,
                        at=self.sandbox.clock.now(),
                        fault=fault,
                        idempotency=scope.get(IDEMPOTENCY_SCOPE_KEY),
                    )
                )


async def _codat_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CodatError)
    return error_response(exc.status_code, exc.message, exc.field_errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg")), "Type")
        for e in exc.errors()
    ]
    return error_response(400, "The request is invalid.", errors)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, "An unexpected error occurred in the Codat sandbox.")


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    """A Codat emulator; raises ValueError when the configuration could not exist at Codat."""
    sandbox = Sandbox(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.faults.aclose()
        await sandbox.aclose()

    app = FastAPI(
        title="Codat sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    codat_routers = (api.router, source_accounts.router, push.router, webhook_consumers.router)
    for router in (*codat_routers, admin.router, link.router, qbo.router):
        app.include_router(router)
    codat_routes = [route for router in codat_routers for route in router.routes]
    app.state.faults = FaultInjector(
        config.faults, sandbox.clock, codat_routes, lambda: _active_companies(sandbox)
    )
    app.state.idempotency = IdempotencyStore(sandbox.clock)
    app.add_exception_handler(CodatError, _codat_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(
        SandboxMiddleware,
        sandbox=sandbox,
        faults=app.state.faults,
        idempotency=app.state.idempotency,
    )
    return app


def _active_companies(sandbox: Sandbox) -> int:
    """Codat's ACCs, which set its daily quota: companies with a Linked connection."""
    return sum(
        any(c.status is ConnectionStatus.LINKED for c in company.connections.values())
        for company in sandbox.store.companies.values()
    )

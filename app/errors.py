"""The one tree of errors a request can end in, and the two ways they are shown.

Services raise these; Codat's errors become them in `talking_to_codat`. An API path answers
`{"detail": ...}` as JSON; the browser gets a short bilingual page (`app.pages`). Framework
errors (an unknown URL, a body that does not validate) go through the same two handlers.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.codat.client import retry_budget
from app.codat.errors import CodatError
from app.pages import message_page, pick_language

log = logging.getLogger("app.errors")

DEFAULT_RETRY_AFTER = 5
# The connection status and the demo host app's event receiver are read by code, not shown to
# a person: JSON too.
API_PREFIXES = (
    "/ops",
    "/webhooks",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi",
    "/docs",
    "/connect-bank-feeds/status",
    "/demo/events",
)


class DomainError(Exception):
    """A request that cannot be served. Each kind names its HTTP status and the page the
    browser is shown (`class NotFound(DomainError, status=404, page="not_found")`)."""

    status_code: ClassVar[int] = 400
    page: str = "request_invalid"

    def __init_subclass__(
        cls, *, status: int | None = None, page: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if page is not None:
            cls.page = page

    def __init__(
        self, detail: Any, *, headers: Mapping[str, str] | None = None, page: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers) if headers else None
        if page is not None:
            self.page = page  # a more precise page for this one failure


class InvalidRequest(DomainError, status=400):
    """Well-formed HTTP, but not what the endpoint takes (a webhook that is no envelope)."""


class Unauthorized(DomainError, status=401, page="token_invalid"):
    """A missing or wrong credential: the ops token, a webhook signature, a connect token."""


class Forbidden(DomainError, status=403):
    """Understood and allowed to nobody in this situation."""


class NotFound(DomainError, status=404, page="not_found"):
    pass


class CustomerNotFound(NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"Customer {customer_id!r} not found.", page="customer_unknown")


class Conflict(DomainError, status=409):
    """The change clashes with what is stored, or with what Codat can do."""


class PayloadTooLarge(DomainError, status=413):
    pass


class UnsupportedMediaType(DomainError, status=415):
    pass


class Unprocessable(DomainError, status=422):
    pass


class TooManyClicks(DomainError, status=429, page="try_shortly"):
    """The customer clicked more often than a person would; a little later works."""


class Misconfigured(DomainError, status=500):
    """Our configuration, not the request, is at fault."""


class CodatRefused(DomainError, status=502, page="codat_failed"):
    """Codat answered, and said no (or said something we cannot use)."""


class CodatUnavailable(DomainError, status=503, page="codat_unavailable"):
    """Codat did not answer in time; trying again later may work."""


class Busy(DomainError, status=503, page="codat_unavailable"):
    """Another request holds the customer's bank feed and did not finish in time."""


@contextlib.contextmanager
def talking_to_codat(
    budget: float, doing: str, outcome: str = "nothing was changed"
) -> Iterator[None]:
    """Codat calls inside share one retry budget; a failure becomes a `DomainError`."""
    try:
        with retry_budget(budget):
            yield
    except CodatError as exc:
        log.warning("%s failed: %s", doing, exc)
        where = f" (Codat correlation id {exc.correlation_id})" if exc.correlation_id else ""
        if exc.transient:
            wait = math.ceil(exc.retry_after) if exc.retry_after else DEFAULT_RETRY_AFTER
            raise CodatUnavailable(
                f"Codat did not answer while {doing}{where}; {outcome}. Try again.",
                headers={"Retry-After": str(max(1, wait))},
            ) from exc
        reason = f": {exc.reason}" if exc.reason else ""
        raise CodatRefused(
            f"Codat refused {doing} with status {exc.status}{reason}{where}; {outcome}."
        ) from exc


# --- the API surface: JSON ------------------------------------------------------------------


class ErrorOut(BaseModel):
    detail: str


OPS_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body could not be read as JSON."},
    401: {"model": ErrorOut, "description": "Missing or wrong ops bearer token."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "Not found."}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Codat cannot make this change."}
}
CODAT: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorOut, "description": "Codat refused the call; nothing was changed here."},
    503: {
        "model": ErrorOut,
        "description": "Codat did not answer in time; nothing was changed here. Try again.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
}


def json_error(exc: DomainError) -> JSONResponse:
    body = {"detail": exc.detail, **getattr(exc, "extra", {})}
    return JSONResponse(body, exc.status_code, headers=exc.headers)


async def api_error(request: Request, exc: Exception) -> Response:
    """The one JSON rendering of an error, for the ops API, webhooks and health checks."""
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"detail": jsonable_encoder(exc.errors(), exclude={"input"})}, 422)
    if isinstance(exc, HTTPException):
        headers = getattr(exc, "headers", None)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
    assert isinstance(exc, DomainError)
    return json_error(exc)


# --- the browser surface: a bilingual page ---------------------------------------------------


def browser_error(request: Request, exc: Exception, *, sandbox_mode: bool) -> Response:
    """The one page rendering of an error, in the language of the click when it is known."""
    lang = pick_language(request, getattr(request.state, "lang", None))
    if isinstance(exc, RequestValidationError):
        return message_page("request_invalid", 400, lang, sandbox_mode=sandbox_mode)
    if isinstance(exc, HTTPException):
        key = "not_found" if exc.status_code == 404 else "request_invalid"
        return message_page(key, exc.status_code, lang, sandbox_mode=sandbox_mode)
    assert isinstance(exc, DomainError)
    page = message_page(exc.page, exc.status_code, lang, sandbox_mode=sandbox_mode)
    page.headers.update(exc.headers or {})  # Retry-After, for one
    return page


def install_error_handlers(app: FastAPI, *, sandbox_mode: bool) -> None:
    """API paths answer JSON; the browser routes answer pages. An unknown URL or an invalid
    request elsewhere gets a page only when the client asks for HTML."""

    async def handle(request: Request, exc: Exception) -> Response:
        api = request.url.path.startswith(API_PREFIXES)
        if api or (
            not isinstance(exc, DomainError)
            and "text/html" not in request.headers.get("accept", "")
        ):
            return await api_error(request, exc)
        return browser_error(request, exc, sandbox_mode=sandbox_mode)

    for kind in (DomainError, HTTPException, RequestValidationError):
        app.add_exception_handler(kind, handle)

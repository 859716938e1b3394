"""The async Codat client: one per process, bounded retries inside a caller-set time budget."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from app.codat import telemetry
from app.codat.errors import (
    CodatConnectionError,
    CodatError,
    CodatRateLimited,
    CodatTimeout,
    error_for_status,
)
from app.codat.models import (
    PLATFORM_KEY_QBO_BANK_FEEDS,
    BatchItem,
    Company,
    CompanyCreate,
    Connection,
    ConnectionCreate,
    ConnectionStatusUpdate,
    Integration,
    Page,
    SourceAccount,
    SourceAccountCreate,
    SourceAccountUpdate,
    wire,
)
from app.codat.webhook_consumers import (
    WebhookConsumer,
    WebhookConsumerCreate,
    WebhookConsumers,
)

log = logging.getLogger("app.codat")
M = TypeVar("M")
# How the client reaches Codat: the network by default, or another transport (tests, sandbox).
Transport = httpx.AsyncBaseTransport

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0
DEFAULT_BUDGET = 30.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "codat_deadline", default=None
)


@contextlib.contextmanager
def retry_budget(seconds: float) -> Iterator[None]:
    """Every Codat call inside this block, retries included, ends within `seconds`."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining() -> float:
    deadline = _deadline.get()
    if deadline is None:
        return DEFAULT_BUDGET
    return deadline - time.monotonic()


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # full jitter


class CodatClient:
    """Typed methods for the Codat endpoints the product uses. Never logs bodies or keys."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_connections: int = 50,
        transport: Transport | None = None,
    ) -> None:
        auth = "Basic " + base64.b64encode(api_key.encode()).decode()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": auth, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- transport -----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {}
        if method in ("POST", "PATCH"):
            headers["Idempotency-Key"] = str(uuid.uuid4())  # the same key on every retry
        attempt = 0
        while True:
            started = time.monotonic()
            remaining = _remaining()
            if remaining <= 0:
                raise CodatTimeout(f"{method} {path}: retry budget spent")
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(
                        min(self._http.timeout.read or 10.0, remaining), connect=min(5.0, remaining)
                    ),
                )
            except httpx.TimeoutException as exc:
                telemetry.unanswered(method, path, exc, time.monotonic() - started)
                error: CodatError = CodatTimeout(f"{method} {path}: timed out")
                error.__cause__ = exc
                wait = _backoff(attempt)
            except httpx.TransportError as exc:
                telemetry.unanswered(method, path, exc, time.monotonic() - started)
                error = CodatConnectionError(f"{method} {path}: {type(exc).__name__}")
                error.__cause__ = exc
                wait = _backoff(attempt)
            else:
                failed = self._error(method, path, response) if response.is_error else None
                telemetry.answered(method, path, response, time.monotonic() - started, failed)
                if failed is None:
                    return response
                error = failed
                if response.status_code not in RETRY_STATUSES:
                    raise error
                wait = (
                    min(error.retry_after, RETRY_AFTER_CAP)
                    if error.retry_after is not None
                    else _backoff(attempt)
                )
            attempt += 1
            if attempt >= MAX_ATTEMPTS or wait >= _remaining():
                raise error
            telemetry.retrying(method, path, error, attempt, wait)
            await asyncio.sleep(wait)

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> CodatError:
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        info = body if isinstance(body, dict) else {}
        detail = str(info.get("error") or response.reason_phrase or "error")[:300]
        cls = error_for_status(response.status_code)
        retry_after = _retry_after_seconds(response)
        return cls(
            f"{method} {path}: {detail}",
            status=response.status_code,
            correlation_id=info.get("correlationId"),
            body=body,
            retry_after=retry_after if cls is CodatRateLimited or retry_after else None,
        )

    async def _call(self, model: Any, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        return TypeAdapter(model).validate_python(response.json())

    # --- companies -----------------------------------------------------------------------

    async def create_company(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        description: str | None = None,
    ) -> Company:
        body = CompanyCreate(name=name, tags=tags or {}, description=description)
        return await self._call(Company, "POST", "/companies", json=wire(body))

    async def list_companies(
        self,
        *,
        tags: str | None = None,
        page: int = 1,
        page_size: int = 100,
    ) -> Page[Company]:
        params: dict[str, Any] = {"page": page, "pageSize": page_size}
        if tags:
            params["tags"] = tags
        return await self._call(Page[Company], "GET", "/companies", params=params)

    async def find_companies_by_tag(self, key: str, value: str) -> list[Company]:
        page = await self.list_companies(tags=f"{key}={value}", page_size=100)
        return [c for c in page.results if (c.tags or {}).get(key) == value]

    async def get_company(self, company_id: str) -> Company:
        return await self._call(Company, "GET", f"/companies/{_seg(company_id)}")

    async def delete_company(self, company_id: str) -> None:
        await self._request("DELETE", f"/companies/{_seg(company_id)}")

    # --- connections ---------------------------------------------------------------------

    def _connections(self, company_id: str) -> str:
        return f"/companies/{_seg(company_id)}/connections"

    async def create_connection(
        self,
        company_id: str,
        platform_key: str = PLATFORM_KEY_QBO_BANK_FEEDS,
    ) -> Connection:
        body = ConnectionCreate(platform_key=platform_key)
        return await self._call(
            Connection,
            "POST",
            self._connections(company_id),
            json=wire(body),
        )

    async def get_connection(self, company_id: str, connection_id: str) -> Connection:
        path = f"{self._connections(company_id)}/{_seg(connection_id)}"
        return await self._call(Connection, "GET", path)

    async def list_connections(self, company_id: str) -> list[Connection]:
        found: list[Connection] = []
        page = 1
        while True:
            result: Page[Connection] = await self._call(
                Page[Connection],
                "GET",
                self._connections(company_id),
                params={"page": page, "pageSize": 100},
            )
            found.extend(result.results)
            if len(found) >= result.total_results or not result.results:
                return found
            page += 1

    async def unlink_connection(self, company_id: str, connection_id: str) -> Connection:
        path = f"{self._connections(company_id)}/{_seg(connection_id)}"
        body = ConnectionStatusUpdate(status="Unlinked")
        return await self._call(Connection, "PATCH", path, json=wire(body))

    async def delete_connection(self, company_id: str, connection_id: str) -> None:
        await self._request("DELETE", f"{self._connections(company_id)}/{_seg(connection_id)}")

    # --- source accounts -----------------------------------------------------------------

    def _accounts(self, company_id: str, connection_id: str) -> str:
        return (
            f"{self._connections(company_id)}/{_seg(connection_id)}/connectionInfo/bankFeedAccounts"
        )

    async def create_source_account(
        self,
        company_id: str,
        connection_id: str,
        account: SourceAccountCreate,
    ) -> SourceAccount:
        return await self._call(
            SourceAccount,
            "POST",
            self._accounts(company_id, connection_id),
            json=wire(account),
        )

    async def create_source_accounts(
        self,
        company_id: str,
        connection_id: str,
        accounts: Sequence[SourceAccountCreate],
    ) -> list[BatchItem]:
        """Batch create: one call whatever the count. 201, 207 and 409 all answer per account."""
        path = self._accounts(company_id, connection_id) + "/batch"
        body = [wire(a) for a in accounts]
        try:
            response = await self._request("POST", path, json=body)
        except CodatError as exc:
            if exc.status == 409 and isinstance(exc.body, list):
                return TypeAdapter(list[BatchItem]).validate_python(exc.body)
            raise
        return TypeAdapter(list[BatchItem]).validate_python(response.json())

    async def list_source_accounts(
        self, company_id: str, connection_id: str
    ) -> list[SourceAccount]:
        return await self._call(
            list[SourceAccount],
            "GET",
            self._accounts(company_id, connection_id),
        )

    async def update_source_account(
        self,
        company_id: str,
        connection_id: str,
        update: SourceAccountUpdate,
    ) -> SourceAccount:
        path = f"{self._accounts(company_id, connection_id)}/{_seg(update.id)}"
        return await self._call(SourceAccount, "PATCH", path, json=wire(update))

    async def delete_source_account(
        self,
        company_id: str,
        connection_id: str,
        account_id: str,
    ) -> None:
        await self._request(
            "DELETE", f"{self._accounts(company_id, connection_id)}/{_seg(account_id)}"
        )

    # --- webhook consumers (Platform API) ------------------------------------------------

    async def list_webhook_consumers(self) -> list[WebhookConsumer]:
        found: WebhookConsumers = await self._call(WebhookConsumers, "GET", "/webhooks")
        return found.results

    async def create_webhook_consumer(self, url: str, event_types: list[str]) -> WebhookConsumer:
        body = WebhookConsumerCreate(url=url, event_types=event_types)
        return await self._call(WebhookConsumer, "POST", "/webhooks", json=wire(body))

    async def delete_webhook_consumer(self, consumer_id: str) -> None:
        await self._request("DELETE", f"/webhooks/{_seg(consumer_id)}")

    # --- integrations --------------------------------------------------------------------

    async def get_integration(self, platform_key: str = PLATFORM_KEY_QBO_BANK_FEEDS) -> Integration:
        return await self._call(Integration, "GET", f"/integrations/{_seg(platform_key)}")


def in_process(app: Any) -> Transport:
    """A transport to an ASGI app in this process (the built-in sandbox): HTTP, but no socket."""
    return httpx.ASGITransport(app=app)


def _seg(value: str) -> str:
    return quote(value, safe="")

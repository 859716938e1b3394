"""The async Codat client: one per process, bounded retries inside a caller-set time budget."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from app.codat import telemetry
from app.codat.errors import (
    CodatConflict,
    CodatConnectionError,
    CodatError,
    CodatRateLimited,
    CodatStillProcessing,
    CodatTimeout,
    CodatUnexpectedResponse,
    CodatWriteUnconfirmed,
    error_for_status,
    is_still_processing,
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
    SyncSettings,
    datetime_or_none,
    wire,
)
from app.codat.transactions import PushOperation
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
WRITE_METHODS = frozenset({"POST", "PATCH"})  # the ones Codat's idempotency covers
MAX_ATTEMPTS = 6
MAX_IN_PROGRESS_WAITS = 20  # 409 "still being processed": waits on the first request
IN_PROGRESS_WAIT_CAP = 2.0
CONCURRENT_REQUESTS_PER_COMPANY = 10  # Codat's limit per company
_COMPANY_PATH = re.compile(r"^/companies/([^/?]+)")
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


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def authorization_header(api_key: str) -> tuple[str, str]:
    """The `Authorization` value for a key as the Portal shows it: raw, or the ready-made
    `Basic <base64>` header. Returns (header, which form was given)."""
    key = api_key.strip()
    scheme, _, rest = key.partition(" ")
    if scheme.lower() == "basic" and rest.strip():
        return "Basic " + rest.strip(), "the ready-made Basic header"
    return "Basic " + base64.b64encode(key.encode()).decode(), "the raw API key"


@dataclass(frozen=True)
class RateLimitSeen:
    """Codat's `X-Rate-Limit-*` headers on the last answer that carried them."""

    limit: int | None
    remaining: int
    at: datetime
    reset: datetime | None  # X-Rate-Limit-Reset: when this count starts again (00:00 UTC)


class _CompanySlots:
    """At most `limit` requests in flight per Codat company, as Codat allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, path: str) -> AsyncIterator[None]:
        match = _COMPANY_PATH.match(path)
        if match is None:
            yield
            return
        company = match.group(1)
        semaphore, users = self._slots.get(company, (asyncio.Semaphore(self.limit), 0))
        self._slots[company] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[company]
            if users <= 1:
                del self._slots[company]
            else:
                self._slots[company] = (semaphore, users - 1)

    def in_use(self, company_id: str) -> int:
        entry = self._slots.get(company_id)
        return 0 if entry is None else self.limit - entry[0]._value


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
        auth, self.key_form = authorization_header(api_key)
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
        self._slots = _CompanySlots(CONCURRENT_REQUESTS_PER_COMPANY)
        self.rate_limit: RateLimitSeen | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- transport -----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: str | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """One Codat call, retried within the budget.

        A POST or PATCH carries an Idempotency-Key. The same key is sent again only where Codat
        would replay a success: after a transport error, a timeout or a 429 (which Codat does not
        keep), and after a 409 saying the first request is still running. A 5xx to a write is
        kept by Codat under its key, so it ends here as `CodatWriteUnconfirmed`.
        """
        write = method in WRITE_METHODS
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()} if write else {}
        body: Any = {"json": json}
        if content is not None:  # JSON text written by the caller, sent byte for byte
            body = {"content": content.encode()}
            headers["Content-Type"] = "application/json"
        async with self._slots.hold(path):
            return await self._attempts(method, path, body, params, headers, write)

    async def _attempts(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        params: dict[str, Any] | None,
        headers: dict[str, str],
        write: bool,
    ) -> httpx.Response:
        attempt = waits = 0
        while True:
            started = time.monotonic()
            remaining = _remaining()
            if remaining <= 0:
                raise CodatTimeout(f"{method} {path}: retry budget spent")
            try:
                response = await self._http.request(
                    method,
                    path,
                    **body,
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
                failed = (
                    self._error(method, path, response, write=write) if response.is_error else None
                )
                telemetry.answered(method, path, response, time.monotonic() - started, failed)
                self._note_rate_limit(response)
                if failed is None:
                    return response
                error = failed
                if isinstance(error, CodatStillProcessing):
                    waits += 1
                    wait = min(IN_PROGRESS_WAIT_CAP, BACKOFF_BASE * 1.5**waits)
                    if waits > MAX_IN_PROGRESS_WAITS or wait >= _remaining():
                        raise error
                    log.info("codat %s %s: still being processed; waiting", method, path)
                    await asyncio.sleep(wait)
                    continue
                if isinstance(error, CodatWriteUnconfirmed):
                    raise error  # replayed as it is under this key: the caller reads back
                if response.status_code not in RETRY_STATUSES:
                    raise error
                wait = (
                    # Spread out: every replica's request refused at once must not come back
                    # at once (Codat counts 10 in flight per company across all of them).
                    min(error.retry_after, RETRY_AFTER_CAP) + _backoff(attempt)
                    if error.retry_after is not None
                    else _backoff(attempt)
                )
            attempt += 1
            if attempt >= MAX_ATTEMPTS or wait >= _remaining():
                raise error
            telemetry.retrying(method, path, error, attempt, wait)
            await asyncio.sleep(wait)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = _header_int(response, "x-rate-limit-remaining")
        if remaining is not None:
            limit = _header_int(response, "x-rate-limit-limit")
            reset = datetime_or_none(response.headers.get("x-rate-limit-reset"))
            self.rate_limit = RateLimitSeen(limit, remaining, datetime.now(UTC), reset)

    @staticmethod
    def _error(
        method: str, path: str, response: httpx.Response, *, write: bool = False
    ) -> CodatError:
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        info = body if isinstance(body, dict) else {}
        detail = str(info.get("error") or response.reason_phrase or "error")[:300]
        status = response.status_code
        cls = error_for_status(status)
        if status == 409 and is_still_processing(body):
            cls = CodatStillProcessing
        elif write and status in RETRY_STATUSES and status != 429:
            cls = CodatWriteUnconfirmed
        retry_after = _retry_after_seconds(response)
        correlation_id = info.get("correlationId")
        return cls(
            f"{method} {path}: {detail}",
            status=status,
            correlation_id=correlation_id if isinstance(correlation_id, str) else None,
            body=body,
            retry_after=retry_after if cls is CodatRateLimited or retry_after else None,
        )

    async def _call(self, model: Any, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        return _read(model, method, path, response)

    # --- companies -----------------------------------------------------------------------

    async def create_company(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Company:
        body = CompanyCreate(name=name, tags=tags or {}, description=description)
        return await self._call(
            Company, "POST", "/companies", json=wire(body), idempotency_key=idempotency_key
        )

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
        *,
        idempotency_key: str | None = None,
    ) -> Connection:
        body = ConnectionCreate(platform_key=platform_key)
        return await self._call(
            Connection,
            "POST",
            self._connections(company_id),
            json=wire(body),
            idempotency_key=idempotency_key,
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
    ) -> BatchItem:
        """One account, through the batch endpoint: its per-account 409 is documented, the
        single create's answer to a duplicate is not."""
        path = self._accounts(company_id, connection_id) + "/batch"
        items = await self.create_source_accounts(company_id, connection_id, [account])
        item = next((i for i in items if i.source_account_id == account.id), None)
        if item is None:
            raise CodatUnexpectedResponse(f"POST {path}: no result for the account sent")
        return item

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
        except CodatConflict as exc:
            if not isinstance(exc.body, list):
                raise
            try:
                return _adapter(list[BatchItem]).validate_python(exc.body)
            except ValueError:
                raise CodatUnexpectedResponse(
                    f"POST {path}: a 409 the service cannot read", status=409
                ) from None
        items: list[BatchItem] = _read(list[BatchItem], "POST", path, response)
        return items

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

    async def revoke_credentials(self, company_id: str, connection_id: str) -> None:
        """Every QuickBooks credential issued for the connection stops working."""
        await self._request("DELETE", self._accounts(company_id, connection_id) + "/credentials")

    # --- bank transactions and push operations -------------------------------------------

    async def create_bank_transactions(
        self,
        company_id: str,
        connection_id: str,
        account_id: str,
        body: str,
        *,
        idempotency_key: str,
    ) -> PushOperation:
        """Write transactions to one source account: `body` is `exact_json` of a
        `BankTransactionsCreate`, sent as it is (Codat answers with the push operation)."""
        path = (
            f"{self._connections(company_id)}/{_seg(connection_id)}"
            f"/push/bankAccounts/{_seg(account_id)}/bankTransactions"
        )
        return await self._call(
            PushOperation, "POST", path, content=body, idempotency_key=idempotency_key
        )

    async def get_push_operation(self, company_id: str, push_operation_key: str) -> PushOperation:
        path = f"/companies/{_seg(company_id)}/push/{_seg(push_operation_key)}"
        return await self._call(PushOperation, "GET", path)

    async def list_push_operations(
        self, company_id: str, *, page: int = 1, page_size: int = 100
    ) -> Page[PushOperation]:
        """The company's push history, newest first."""
        params = {"page": page, "pageSize": page_size, "orderBy": "-requestedOnUtc"}
        return await self._call(
            Page[PushOperation], "GET", f"/companies/{_seg(company_id)}/push", params=params
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

    async def get_sync_settings(self) -> SyncSettings:
        """The client's data type settings (the Portal's Settings > Data types)."""
        return await self._call(SyncSettings, "GET", "/profile/syncSettings")


class InProcess(httpx.AsyncBaseTransport):
    """HTTP to an ASGI app in this process (the built-in sandbox), without a socket, and with
    the client's read timeout kept as a socket keeps it: no answer in time is a `ReadTimeout`,
    while the app goes on with the request, as a server does when its client hangs up."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self.abandoned: set[asyncio.Task[httpx.Response]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        handling = asyncio.ensure_future(
            httpx.ASGITransport(app=self.app).handle_async_request(request)
        )
        limit = (request.extensions.get("timeout") or {}).get("read")
        done, _ = await asyncio.wait({handling}, timeout=limit)
        if not done:
            self.abandoned.add(handling)
            handling.add_done_callback(self._forget)
            raise httpx.ReadTimeout(f"no answer within {limit} s", request=request)
        return handling.result()

    def _forget(self, task: asyncio.Task[httpx.Response]) -> None:
        self.abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # nobody is waiting for it: its failure is seen, not re-raised

    async def aclose(self) -> None:
        for task in list(self.abandoned):
            task.cancel()
        await asyncio.gather(*self.abandoned, return_exceptions=True)


def in_process(app: Any) -> Transport:
    """A transport to an ASGI app in this process (the built-in sandbox): HTTP, but no socket."""
    return InProcess(app)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _header_int(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    """Building a validator costs more than a call to Codat's CPU: one per model, kept."""
    return TypeAdapter(model)


def _read(model: Any, method: str, path: str, response: httpx.Response) -> Any:
    """The parts of an answer the service uses; anything unreadable is Codat's error, not ours."""
    try:
        return _adapter(model).validate_python(response.json())
    except ValueError as exc:  # not JSON, or without what we need (pydantic's errors included)
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        correlation_id = body.get("correlationId") if isinstance(body, dict) else None
        raise CodatUnexpectedResponse(
            f"{method} {path}: an answer the service cannot read ({type(exc).__name__})",
            status=response.status_code,
            correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        ) from None

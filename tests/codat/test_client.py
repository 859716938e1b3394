"""The Codat client: auth, error tree, retries inside a budget, idempotency, lenient reading."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from app.codat import client as client_module
from app.codat.client import CodatClient, retry_budget
from app.codat.errors import (
    CodatBadRequest,
    CodatConflict,
    CodatConnectionError,
    CodatForbidden,
    CodatNotFound,
    CodatRateLimited,
    CodatServerError,
    CodatTimeout,
    CodatUnauthorized,
    CodatUnprocessable,
    CodatWriteUnconfirmed,
)
from app.codat.models import SourceAccountCreate, SourceAccountUpdate

KEY = "test-codat-key-123"
CONNECTION = {
    "id": "2e9d2c44-f675-40ba-8049-353bfcb5e171",
    "integrationId": "bf083d72-62c7-493e-aec9-81b4dbabfc2b",
    "sourceId": "8a156a5a-39cb-4f9d-856e-76ef9b9a9607",
    "platformName": "QuickBooks Online Bank Feeds",
    "linkUrl": "https://link-api.codat.io/companies/x/connections/y/start?otp=123456",
    "status": "PendingAuth",
    "created": "2026-11-15T01:00:00",
    "sourceType": "BankFeed",
}


def error_body(status: int, message: str = "nope") -> dict[str, object]:
    return {
        "statusCode": status,
        "service": "PublicApi",
        "error": message,
        "correlationId": f"corr-{status}",
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
    }


def make(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[CodatClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return CodatClient("https://api.codat.io", KEY, transport=httpx.MockTransport(record)), seen


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_BASE", 0.001)


class MovableClock:
    """The client's clock: `monotonic()` moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    moved = MovableClock()
    monkeypatch.setattr(client_module, "time", moved)
    monkeypatch.setattr(client_module.asyncio, "sleep", moved.sleep)
    return moved


async def test_basic_auth_header_is_base64_of_key() -> None:
    client, seen = make(lambda r: httpx.Response(200, json=CONNECTION))
    await client.get_connection("c", "x")
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(KEY.encode()).decode()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, CodatBadRequest),
        (401, CodatUnauthorized),
        (403, CodatForbidden),
        (404, CodatNotFound),
        (409, CodatConflict),
        (422, CodatUnprocessable),
    ],
)
async def test_permanent_errors_are_typed_and_not_retried(
    status: int, error: type[Exception]
) -> None:
    client, seen = make(lambda r: httpx.Response(status, json=error_body(status)))
    with pytest.raises(error) as caught:
        await client.get_company("c")
    assert len(seen) == 1
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert caught.value.correlation_id == f"corr-{status}"  # type: ignore[attr-defined]
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_transient_statuses_are_retried_then_succeed(status: int) -> None:
    answers = [
        httpx.Response(status, json=error_body(status)),
        httpx.Response(200, json=CONNECTION),
    ]
    client, seen = make(lambda r: answers.pop(0))
    connection = await client.get_connection("c", "x")
    assert connection.status == "PendingAuth"
    assert len(seen) == 2


async def test_5xx_gives_server_error_after_the_attempts() -> None:
    client, seen = make(lambda r: httpx.Response(503, json=error_body(503)))
    with pytest.raises(CodatServerError) as caught:
        await client.get_company("c")
    assert caught.value.transient
    assert len(seen) == client_module.MAX_ATTEMPTS


async def test_connection_errors_and_timeouts_are_retried() -> None:
    failures: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json=CONNECTION)

    client, seen = make(handler)
    await client.get_connection("c", "x")
    assert len(seen) == 3


async def test_persistent_connection_error_raises_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client, _ = make(handler)
    with pytest.raises(CodatConnectionError):
        await client.get_company("c")


async def test_retry_after_is_honoured(clock: MovableClock) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0.3"}, json=error_body(429)),
        httpx.Response(200, json=CONNECTION),
    ]
    client, seen = make(lambda r: answers.pop(0))
    await client.get_connection("c", "x")
    assert len(seen) == 2 and len(clock.waits) == 1 and clock.waits[0] >= 0.3


async def test_retry_after_beyond_the_budget_fails_at_once(clock: MovableClock) -> None:
    client, seen = make(
        lambda r: httpx.Response(429, headers={"Retry-After": "30"}, json=error_body(429))
    )
    with retry_budget(1.0), pytest.raises(CodatRateLimited) as caught:
        await client.get_company("c")
    assert clock.waits == []  # no wait at all: the answer would come after the budget
    assert caught.value.retry_after == 30
    assert len(seen) == 1


async def test_budget_bounds_total_time_of_retries(
    clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, seen = make(lambda r: httpx.Response(503, json=error_body(503)))
    monkeypatch.setattr(client_module, "BACKOFF_BASE", 0.2)
    with retry_budget(0.5), pytest.raises(CodatServerError):
        await client.get_company("c")
    assert sum(clock.waits) < 0.5  # every wait fitted in the budget, and then it stopped
    assert len(seen) == len(clock.waits) + 1


async def test_idempotency_key_kept_only_after_a_429_and_never_after_a_5xx() -> None:
    answers = [httpx.Response(429, json=error_body(429)), httpx.Response(200, json=CONNECTION)]
    client, seen = make(lambda r: answers.pop(0))
    await client.create_connection("c")
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 2 and len(keys) == 1  # Codat does not keep a 429
    assert json.loads(seen[0].content) == {"platformKey": "hcws"}

    # Codat keeps a 5xx under its key: the same key would only get it again.
    client, seen = make(lambda r: httpx.Response(503, json=error_body(503)))
    with pytest.raises(CodatWriteUnconfirmed) as caught:
        await client.create_connection("c")
    assert len(seen) == 1 and caught.value.transient and caught.value.status == 503

    client, seen = make(lambda r: httpx.Response(200, json={"id": "a1", "accountName": "x"}))
    await client.update_source_account("c", "x", SourceAccountUpdate(id="a1", account_name="x"))
    await client.update_source_account("c", "x", SourceAccountUpdate(id="a1", account_name="y"))
    assert seen[0].method == "PATCH"
    assert seen[0].headers["idempotency-key"] != seen[1].headers["idempotency-key"]
    assert json.loads(seen[0].content) == {"id": "a1", "accountName": "x"}


async def test_get_sends_no_idempotency_key() -> None:
    client, seen = make(lambda r: httpx.Response(200, json=CONNECTION))
    await client.get_connection("c", "x")
    assert "idempotency-key" not in seen[0].headers


async def test_lenient_reading_unknown_status_extra_fields_numeric_bankcode_dates() -> None:
    accounts = [
        {
            "id": "a1",
            "accountName": "A",
            "status": "brandNewStatus",
            "surprise": {"x": 1},
            "routingInfo": {"bankCode": 21001088, "type": "bankcode"},
            "balance": 10.5,
            "modifiedDate": "2021-11-15T06:00:00Z",
            "feedStartDate": "2023-09-12T00:00:00",
        },
        {"id": 7110701885, "modifiedDate": "2021-11-15T01:00:00-05:00", "status": None},
        {"id": "a3", "modifiedDate": "2021-11-15T06:00:00"},
    ]
    client, _ = make(lambda r: httpx.Response(200, json=accounts))
    parsed = await client.list_source_accounts("c", "x")
    assert parsed[0].status == "brandNewStatus"
    assert parsed[0].routing_info is not None and parsed[0].routing_info.bank_code == "21001088"
    assert parsed[0].balance == Decimal("10.5")
    assert str(parsed[0].feed_start_date) == "2023-09-12"
    assert parsed[1].id == "7110701885"
    times = [a.modified_date for a in parsed]
    assert all(
        t is not None and t.utcoffset() is not None and t.utcoffset().total_seconds() == 0
        for t in times
    )
    assert times[0] == times[1] == times[2]


async def test_batch_create_reads_201_207_and_409_per_account() -> None:
    items = [
        {
            "sourceAccountId": "a1",
            "result": {
                "statusCode": 201,
                "error": None,
                "account": {"id": "a1", "status": "pending"},
            },
        },
        {
            "sourceAccountId": "a2",
            "result": {
                "statusCode": "409",
                "error": "A bank account already exists with the same Id",
            },
        },
    ]
    for status in (201, 207, 409):
        client, seen = make(lambda r, s=status: httpx.Response(s, json=items))
        body = SourceAccountCreate(
            id="a1",
            account_name="A",
            account_type="checking",
            account_number="1",
            currency="USD",
            balance=Decimal("0"),
        )
        result = await client.create_source_accounts("c", "x", [body, body])
        assert [i.created for i in result] == [True, False]
        assert result[1].already_exists
        assert len(seen) == 1 and seen[0].url.path.endswith("/bankFeedAccounts/batch")


async def test_money_is_sent_as_a_json_number_exactly() -> None:
    created = [{"sourceAccountId": "a1", "result": {"statusCode": 201, "account": {"id": "a1"}}}]
    client, seen = make(lambda r: httpx.Response(201, json=created))
    body = SourceAccountCreate(
        id="a1",
        account_name="A",
        account_type="checking",
        account_number="1",
        currency="USD",
        balance=Decimal("-1234.56"),
    )
    item = await client.create_source_account("c", "x", body)
    assert item.created and seen[0].url.path.endswith("/bankFeedAccounts/batch")
    assert b'"balance":-1234.56' in seen[0].content.replace(b" ", b"")


async def test_tags_filter_is_url_encoded() -> None:
    client, seen = make(
        lambda r: httpx.Response(
            200,
            json={
                "results": [],
                "pageNumber": 1,
                "pageSize": 100,
                "totalResults": 0,
                "_links": {"self": {"href": "/companies"}, "current": {"href": "/companies"}},
            },
        )
    )
    await client.find_companies_by_tag("bankfeedsCustomerId", "cus-1")
    assert seen[0].url.params["tags"] == "bankfeedsCustomerId=cus-1"
    assert b"tags=bankfeedsCustomerId%3Dcus-1" in seen[0].url.query


async def test_timeout_maps_to_codat_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    client, _ = make(handler)
    with retry_budget(0.2), pytest.raises(CodatTimeout):
        await client.get_company("c")

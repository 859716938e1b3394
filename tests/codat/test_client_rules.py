"""The client follows Codat's rules: which retries keep the Idempotency-Key, the 409 that means
"still being processed", the key as the Portal shows it, 10 requests at a time per company."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from app.codat.client import CodatClient, authorization_header, retry_budget
from app.codat.errors import CodatConflict, CodatStillProcessing, CodatWriteUnconfirmed
from app.codat.models import Connection, SourceAccountUpdate
from app.sandbox.idempotency import IN_PROGRESS_MESSAGE
from tests.codat.test_client import CONNECTION, KEY, error_body, make


async def test_timeouts_and_transport_errors_keep_the_key() -> None:
    answers: list[object] = [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=CONNECTION),
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = answers.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, httpx.Response)
        return outcome

    client, seen = make(answer)
    await client.create_connection("c")
    assert len(seen) == 3 and len({r.headers["idempotency-key"] for r in seen}) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_a_write_answered_5xx_is_not_retried_under_its_key(status: int) -> None:
    client, seen = make(lambda r: httpx.Response(status, json=error_body(status)))
    with pytest.raises(CodatWriteUnconfirmed):
        await client.update_source_account("c", "x", SourceAccountUpdate(id="a", account_name="n"))
    with pytest.raises(CodatWriteUnconfirmed):
        await client.create_company("Acme", tags={"k": "v"})
    assert [r.method for r in seen] == ["PATCH", "POST"]  # one request each


async def test_reads_are_still_retried_after_a_5xx() -> None:
    answers = [httpx.Response(503, json=error_body(503)), httpx.Response(200, json=CONNECTION)]
    client, seen = make(lambda r: answers.pop(0))
    await client.get_connection("c", "x")
    assert len(seen) == 2


async def test_still_processing_409_is_waited_on_with_the_same_key() -> None:
    answers = [
        httpx.ReadTimeout("slow"),
        httpx.Response(409, json=error_body(409, IN_PROGRESS_MESSAGE)),
        httpx.Response(409, json=error_body(409, IN_PROGRESS_MESSAGE)),
        httpx.Response(200, json=CONNECTION),
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = answers.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, httpx.Response)
        return outcome

    client, seen = make(answer)
    with retry_budget(5):
        connection = await client.create_connection("c")
    assert isinstance(connection, Connection)
    assert len(seen) == 4 and len({r.headers["idempotency-key"] for r in seen}) == 1


async def test_still_processing_past_the_budget_is_transient_not_a_conflict() -> None:
    client, _ = make(lambda r: httpx.Response(409, json=error_body(409, IN_PROGRESS_MESSAGE)))
    with retry_budget(0.6), pytest.raises(CodatStillProcessing) as caught:
        await client.create_connection("c")
    assert caught.value.transient and not isinstance(caught.value, CodatConflict)


async def test_a_real_conflict_is_a_conflict_at_once() -> None:
    client, seen = make(
        lambda r: httpx.Response(409, json=error_body(409, "Source account acc-1 is connected."))
    )
    with pytest.raises(CodatConflict) as caught:
        await client.create_connection("c")
    assert len(seen) == 1 and not caught.value.transient


@pytest.mark.parametrize(
    ("given", "form"),
    [
        (KEY, "the raw API key"),
        ("Basic " + base64.b64encode(KEY.encode()).decode(), "the ready-made Basic header"),
        ("  basic   " + base64.b64encode(KEY.encode()).decode(), "the ready-made Basic header"),
    ],
)
async def test_the_key_raw_or_as_the_ready_made_basic_header(given: str, form: str) -> None:
    header, said = authorization_header(given)
    assert header == "Basic " + base64.b64encode(KEY.encode()).decode() and said == form
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=CONNECTION)

    client = CodatClient("https://codat.test", given, transport=httpx.MockTransport(record))
    await client.get_connection("c", "x")
    assert seen[0].headers["authorization"] == header and client.key_form == form


async def test_at_most_ten_requests_at_a_time_per_company() -> None:
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        company = request.url.path.split("/")[2]
        in_flight[company] = in_flight.get(company, 0) + 1
        peak[company] = max(peak.get(company, 0), in_flight[company])
        if sum(in_flight.values()) >= 11:
            release.set()
        await asyncio.wait_for(release.wait(), 5)
        in_flight[company] -= 1
        return httpx.Response(200, json=CONNECTION)

    client = CodatClient("https://codat.test", KEY, transport=httpx.MockTransport(handler))
    await asyncio.gather(
        *(client.get_connection("busy", f"x{n}") for n in range(25)),
        client.get_connection("other", "y"),
    )
    assert peak == {"busy": 10, "other": 1}

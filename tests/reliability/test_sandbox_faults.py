"""The sandbox's failure modes and idempotency, in process and under uvicorn (a real socket)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.emulator import Sandbox
from app.sandbox.faults import FaultConfig, FaultInjector
from app.sandbox.idempotency import IN_PROGRESS_MESSAGE, IdempotencyMiddleware, IdempotencyStore
from app.sandbox.state import SandboxClock
from tests.reliability.conftest import Record
from tests.reliability.support import sandbox_process
from tests.sandbox.sandbox_oas import check_response
from tests.servers import sandbox_headers

KEY = "faults-test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(KEY.encode()).decode()}
COMPANY = {"name": "Acme Plumbing LLC", "tags": {"bankfeedsCustomerId": "cus-1"}}


def build(**faults: Any) -> FastAPI:
    return create_sandbox_app(
        SandboxConfig(api_key=KEY, public_url="http://sandbox", faults=FaultConfig(**faults))
    )


def sandbox_of(app: FastAPI) -> Sandbox:
    sandbox: Sandbox = app.state.sandbox
    return sandbox


def injector_of(app: FastAPI) -> FaultInjector:
    injector: FaultInjector = app.state.faults
    return injector


@pytest.fixture
async def api() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=AUTH
    ) as client:
        yield app, client
    await sandbox_of(app).aclose()


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


# --- rate-limit headers, injected statuses, filters -------------------------------------------


async def test_every_api_response_carries_codat_rate_limit_headers(api: Any) -> None:
    _, client = api
    first = await client.post("/companies", json=COMPANY)
    second = await client.get("/companies")
    missing = await client.get("/companies/nope")
    admin = await client.get("/_sandbox/calls")

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    for response in (first, second, missing):
        assert response.headers["x-rate-limit-limit"] == "1000"  # 1000 x (1 + no linked company)
        assert response.headers["x-rate-limit-reset"] == tomorrow
    assert [r.headers["x-rate-limit-remaining"] for r in (first, second, missing)] == [
        "999",
        "998",
        "997",
    ]
    assert "retry-after" not in first.headers
    assert "x-rate-limit-limit" not in admin.headers


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_injected_status_has_codat_error_body_and_is_kept_unless_429(
    api: Any, status: int
) -> None:
    app, client = api
    injector_of(app).configure(FaultConfig(status_rates={status: 1.0}, retry_after_seconds=7))

    response = await client.post("/companies", json=COMPANY, headers=key("k-1"))

    assert response.status_code == status
    check_response("POST", "/companies", status, response.content)  # Codat's ErrorMessage
    body = response.json()
    assert body["statusCode"] == status and body["canBeRetried"] == "Unknown"
    assert response.headers.get("retry-after") == ("7" if status == 429 else None)
    assert "x-rate-limit-remaining" in response.headers
    assert sandbox_of(app).store.companies == {}
    [call] = sandbox_of(app).calls
    assert (call.status, call.fault) == (status, str(status))
    # Codat keeps every answer but a 429 under its key: a replayed 5xx stays a 5xx.
    injector_of(app).configure(FaultConfig())
    retried = await client.post("/companies", json=COMPANY, headers=key("k-1"))
    fresh_key = await client.post("/companies", json=COMPANY, headers=key("k-2"))
    if status == 429:
        assert retried.status_code == 200 and sandbox_of(app).calls[-2].idempotency is None
    else:
        assert retried.status_code == status and retried.json() == body
        assert sandbox_of(app).calls[-2].idempotency == "replayed"
    assert fresh_key.status_code == 200


async def test_faults_follow_the_route_and_method_filter(api: Any) -> None:
    app, client = api
    injector_of(app).configure(
        FaultConfig(
            status_rates={503: 1.0},
            methods=("POST",),
            routes=("/companies/{companyId}/connections",),
        )
    )
    company = await client.post("/companies", json=COMPANY)
    company_id = company.json()["id"]
    refused = await client.post(
        f"/companies/{company_id}/connections", json={"platformKey": "hcws"}
    )
    listed = await client.get(f"/companies/{company_id}/connections")
    injector_of(app).configure(FaultConfig(status_rates={503: 1.0}, routes=("/companies/*/conn*",)))
    globbed = await client.get(f"/companies/{company_id}/connections")
    other = await client.get(f"/companies/{company_id}")

    assert (company.status_code, refused.status_code, listed.status_code) == (200, 503, 200)
    assert (globbed.status_code, other.status_code) == (503, 200)


async def test_admin_pages_and_link_pages_are_never_faulted(api: Any) -> None:
    app, client = api
    injector_of(app).configure(FaultConfig(status_rates={503: 1.0}))

    assert (await client.get("/_sandbox/state")).status_code == 200
    assert (await client.get("/logos/hcws.svg")).status_code == 200
    assert (await client.get("/companies")).status_code == 503


async def test_seeded_faults_repeat_and_rates_hold(api: Any, record: Record) -> None:
    app, client = api
    config = FaultConfig(status_rates={429: 0.2, 503: 0.1}, seed=42)

    async def run() -> list[int]:
        injector_of(app).configure(config)
        return [(await client.get("/companies")).status_code for _ in range(400)]

    first, second = await run(), await run()

    counts = Counter(first)
    record(
        "sandbox",
        {
            "requests": len(first),
            "429 asked / seen": f"20% / {counts[429] / len(first):.1%}",
            "503 asked / seen": f"10% / {counts[503] / len(first):.1%}",
            "same seed, same sequence": first == second,
        },
        variant="seeded fault rates (in process)",
    )
    assert first == second
    assert 50 <= counts[429] <= 110 and 20 <= counts[503] <= 62, counts


# --- quota and concurrency --------------------------------------------------------------------


async def test_daily_quota_then_429_until_midnight(api: Any) -> None:
    app, client = api
    injector_of(app).configure(FaultConfig(daily_quota=3))
    statuses = [(await client.get("/companies")).status_code for _ in range(5)]
    over = await client.get("/companies")
    sandbox_of(app).clock.advance(timedelta(days=1))
    next_day = await client.get("/companies")

    assert statuses == [200, 200, 200, 429, 429]
    retry_after = int(over.headers["retry-after"])
    assert 0 < retry_after <= 86400
    assert over.headers["x-rate-limit-limit"] == "3"
    assert over.headers["x-rate-limit-remaining"] == "0"
    assert sandbox_of(app).calls[-2].fault == "quota"
    assert next_day.status_code == 200 and next_day.headers["x-rate-limit-remaining"] == "2"


async def test_concurrent_requests_per_company_are_limited(api: Any) -> None:
    app, client = api
    ours = (await client.post("/companies", json=COMPANY)).json()["id"]
    theirs = (await client.post("/companies", json={"name": "Other Co"})).json()["id"]
    injector_of(app).configure(FaultConfig(concurrency_limit=3, latency_ms=200))

    responses = await asyncio.gather(
        *(client.get(f"/companies/{ours}") for _ in range(5)),
        client.get(f"/companies/{theirs}"),
    )

    statuses = [r.status_code for r in responses]
    assert sorted(statuses[:5]) == [200, 200, 200, 429, 429]
    assert statuses[5] == 200
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 429)
    assert injector_of(app).in_flight == {}


async def test_codat_limits_are_on_without_any_fault_configured(api: Any) -> None:
    app, client = api
    ours = (await client.post("/companies", json=COMPANY)).json()["id"]
    injector_of(app).configure(FaultConfig(latency_ms=200))  # no limit set: Codat's own

    responses = await asyncio.gather(*(client.get(f"/companies/{ours}") for _ in range(12)))
    injector = injector_of(app)
    injector.used_today = injector.daily_limit - 1  # the rest of Codat's 1000 x (1 + 0 ACC)
    last = await client.get("/companies")
    over = await client.get("/companies")

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 2  # 10 concurrent requests per company
    assert last.status_code == 200 and last.headers["x-rate-limit-remaining"] == "0"
    assert over.status_code == 429 and over.headers["x-rate-limit-limit"] == "1000"
    assert sandbox_of(app).calls[-1].fault == "quota"


async def test_latency_is_fixed_plus_jitter(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request waits the fixed latency plus its own jitter, before it is handled: the
    waits asked of the event loop are checked, not the wall clock (a busy machine adds to it)."""
    app, client = api
    injector_of(app).configure(FaultConfig(latency_ms=80, jitter_ms=40, seed=1))
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def noted_sleep(delay: float, *args: Any) -> Any:
        waits.append(delay)
        return await real_sleep(0, *args)

    monkeypatch.setattr("app.sandbox.faults.asyncio.sleep", noted_sleep)
    answers = [await client.get("/companies") for _ in range(8)]

    assert [a.status_code for a in answers] == [200] * 8
    assert len(waits) == 8 and all(0.08 <= w <= 0.12 for w in waits), waits
    assert len(set(waits)) == 8  # the jitter varies
    assert len(sandbox_of(app).calls) == 8


# --- unanswered requests, in process ----------------------------------------------------------


async def test_timeout_holds_then_codat_works_on_and_keeps_the_answer(api: Any) -> None:
    app, client = api
    injector_of(app).configure(
        FaultConfig(timeout_rate=1.0, timeout_seconds=0.2, still_running_seconds=0.3)
    )
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        await client.post("/companies", json=COMPANY, headers=key("k-t"))
    assert time.monotonic() - started >= 0.2
    assert sandbox_of(app).store.companies == {}
    injector_of(app).configure(FaultConfig())
    while_running = await client.post("/companies", json=COMPANY, headers=key("k-t"))
    await asyncio.gather(*injector_of(app).background)
    done = await client.post("/companies", json=COMPANY, headers=key("k-t"))

    assert while_running.status_code == 409
    assert while_running.json()["error"] == IN_PROGRESS_MESSAGE
    check_response("POST", "/companies", 409, while_running.content)
    [company_id] = sandbox_of(app).store.companies  # the work was done, once
    assert done.status_code == 200 and done.json()["id"] == company_id
    assert [(c.status, c.fault, c.idempotency) for c in sandbox_of(app).calls] == [
        (0, "timeout", None),
        (409, None, "in_progress"),
        (200, None, "replayed"),
    ]


async def test_drop_closes_before_anything_is_done(api: Any) -> None:
    app, client = api
    injector_of(app).configure(FaultConfig(drop_rate=1.0))
    with pytest.raises(httpx.TransportError):
        await client.post("/companies", json=COMPANY)

    assert sandbox_of(app).store.companies == {}
    assert sandbox_of(app).calls[-1].fault == "drop"


async def test_lost_response_is_done_once_and_replayed_to_the_same_key(api: Any) -> None:
    app, client = api
    injector_of(app).configure(FaultConfig(lost_response_rate=1.0))
    with pytest.raises(httpx.TransportError):
        await client.post("/companies", json=COMPANY, headers=key("k-lost"))
    injector_of(app).configure(FaultConfig())
    retried = await client.post("/companies", json=COMPANY, headers=key("k-lost"))

    [company_id] = sandbox_of(app).store.companies
    assert retried.status_code == 200 and retried.json()["id"] == company_id
    assert [(c.status, c.fault, c.idempotency) for c in sandbox_of(app).calls] == [
        (0, "lost_response", None),
        (200, None, "replayed"),
    ]


# --- idempotency --------------------------------------------------------------------------------


async def test_same_key_replays_the_first_answer_for_90_minutes(api: Any) -> None:
    app, client = api
    clock = sandbox_of(app).clock  # one quota day for the 91 minutes, whatever the time now
    now = clock.now()
    clock.advance((now + timedelta(days=1)).replace(hour=1, minute=0, second=0) - now)
    first = await client.post("/companies", json=COMPANY, headers=key("k-90"))
    sandbox_of(app).clock.advance(timedelta(minutes=89))
    replay = await client.post("/companies", json=COMPANY, headers=key("k-90"))
    without_key = await client.post("/companies", json=COMPANY)
    sandbox_of(app).clock.advance(timedelta(minutes=2))
    after_window = await client.post("/companies", json=COMPANY, headers=key("k-90"))

    assert replay.json() == first.json()
    assert replay.headers["x-rate-limit-remaining"] != first.headers["x-rate-limit-remaining"]
    ids = {first.json()["id"], without_key.json()["id"], after_window.json()["id"]}
    assert len(ids) == 3 == len(sandbox_of(app).store.companies)


async def test_same_key_other_body_is_422_and_errors_are_replayed_too(api: Any) -> None:
    app, client = api
    created = await client.post("/companies", json=COMPANY, headers=key("k-a"))
    other = await client.post("/companies", json={"name": "Other"}, headers=key("k-a"))
    bad = await client.post("/companies", json={"name": ""}, headers=key("k-b"))
    bad_again = await client.post("/companies", json={"name": ""}, headers=key("k-b"))
    company_id = created.json()["id"]
    patch = f"/companies/{company_id}/connections/nope"
    missing = await client.patch(patch, json={"status": "Unlinked"}, headers=key("k-p"))
    missing_again = await client.patch(patch, json={"status": "Unlinked"}, headers=key("k-p"))

    assert other.status_code == 422
    assert bad.status_code == 400 and bad_again.status_code == 400
    assert bad_again.json()["correlationId"] == bad.json()["correlationId"]  # the same answer
    assert missing.status_code == missing_again.status_code == 404
    assert missing_again.json() == missing.json()
    assert len(sandbox_of(app).store.companies) == 1
    assert [c.idempotency for c in sandbox_of(app).calls] == [
        None,
        "mismatch",
        None,
        "replayed",
        None,
        "replayed",
    ]


async def test_get_and_delete_ignore_the_key(api: Any) -> None:
    _, client = api
    first = await client.get("/companies", headers=key("k-g"))
    await client.post("/companies", json=COMPANY)
    second = await client.get("/companies", headers=key("k-g"))

    assert first.json()["totalResults"] == 0 and second.json()["totalResults"] == 1


def _gated_app(gate: asyncio.Event, statuses: list[int], entered: asyncio.Event) -> Any:
    """An ASGI app that sets `entered` when a request reaches it and answers the next status
    of `statuses` once `gate` is set."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message: Message = await receive()
        assert message["type"] == "http.request"
        entered.set()
        await gate.wait()
        status = statuses.pop(0)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": str(status).encode()})

    return app


async def test_same_key_while_running_is_409_and_a_429_is_not_kept() -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    statuses = [429, 201]
    store = IdempotencyStore(SandboxClock())
    app = IdempotencyMiddleware(_gated_app(gate, statuses, entered), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        first = asyncio.create_task(client.post("/x", content=b"{}", headers=key("k-run")))
        await asyncio.wait_for(entered.wait(), timeout=10)
        while_running = await client.post("/x", content=b"{}", headers=key("k-run"))
        gate.set()
        rate_limited = await first
        retried = await client.post("/x", content=b"{}", headers=key("k-run"))
        replayed = await client.post("/x", content=b"{}", headers=key("k-run"))

    assert while_running.status_code == 409
    assert rate_limited.status_code == 429
    assert retried.status_code == 201 and replayed.status_code == 201
    assert statuses == []  # the handler ran twice: for the 429 and for its retry


async def test_a_request_cut_off_before_its_body_is_whole_is_never_run_nor_its_key_kept() -> None:
    """A client killed between its headers and its body: Codat never runs that request, so the
    same key with the whole body is a first request, not "used with a different request"."""
    ran: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ran.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = IdempotencyMiddleware(app, IdempotencyStore(SandboxClock()))
    cut: list[Message] = [
        {"type": "http.request", "body": b'{"platfo', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return cut.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/companies/c-1/connections",
        "headers": [(b"idempotency-key", b"k-cut"), (b"content-length", b"24")],
    }
    await middleware(scope, receive, send)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware), base_url="http://sandbox"
    ) as client:
        whole = await client.post(
            "/companies/c-1/connections", content=b'{"platformKey":"hcws"}', headers=key("k-cut")
        )

    assert sent == [] and cut == []
    assert whole.status_code == 201
    assert ran == [b'{"platformKey":"hcws"}']


async def test_same_key_is_free_again_when_the_handler_fails() -> None:
    calls = 0

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    app = IdempotencyMiddleware(failing, IdempotencyStore(SandboxClock()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await client.post("/x", content=b"{}", headers=key("k-fail"))
    assert calls == 2


# --- configuration --------------------------------------------------------------------------


async def test_put_faults_validates_and_switches_at_runtime(api: Any) -> None:
    _, client = api
    config = {"status_rates": {"503": 1.0}, "methods": ["get"], "seed": 3}
    put = await client.put("/_sandbox/faults", json=config)
    down = await client.get("/companies")
    up = await client.post("/companies", json=COMPANY)
    shown = await client.get("/_sandbox/faults")
    refused = [
        await client.put("/_sandbox/faults", json=bad)
        for bad in (
            {"status_rates": {"200": 0.5}},
            {"status_rates": {"503": 0.7}, "timeout_rate": 0.5},
            {"latency_ms": -1},
            {"surprise": 1},
            {"concurrency_limit": 0},
            ["not", "an", "object"],
        )
    ]
    still = await client.get("/companies")
    cleared = await client.put("/_sandbox/faults", json={})
    anonymous = await client.put("/_sandbox/faults", json={}, headers={"Authorization": ""})

    assert put.status_code == 200 and put.json()["methods"] == ["GET"]
    assert (down.status_code, up.status_code) == (503, 200)
    assert shown.json()["status_rates"] == {"503": 1.0}
    assert [r.status_code for r in refused] == [400] * 6
    assert "200 is not one of" in refused[0].json()["error"]
    assert still.status_code == 503  # a refused configuration changes nothing
    assert cleared.json() == FaultConfig().to_json()
    assert (await client.get("/companies")).status_code == 200
    assert anonymous.status_code == 401


def test_fault_config_round_trips_through_json() -> None:
    config = FaultConfig(
        status_rates={429: 0.1, 503: 0.2},
        timeout_rate=0.05,
        lost_response_rate=0.05,
        latency_ms=30,
        jitter_ms=10,
        methods=("post",),
        routes=("/companies",),
        concurrency_limit=10,
        daily_quota=1000,
        seed=9,
    )
    assert FaultConfig.from_json(config.to_json()) == config
    assert FaultConfig().fault_rate == 0


# --- as its own process -----------------------------------------------------------------------


async def test_sandbox_process_flags_drops_and_timeouts_on_a_real_socket(
    tmp_path: Path, record: Record
) -> None:
    flags = ("--latency-ms", "60", "--jitter-ms", "20", "--concurrency-limit", "10")
    with sandbox_process(tmp_path, *flags) as sandbox:
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers=sandbox_headers(), timeout=5
        ) as client:
            config = (await client.get("/_sandbox/faults")).json()
            started = time.monotonic()
            await client.get("/companies")
            latency = time.monotonic() - started

            await client.put("/_sandbox/faults", json={"drop_rate": 1.0})
            with pytest.raises(httpx.TransportError) as dropped:
                await client.post("/companies", json=COMPANY)

            await client.put("/_sandbox/faults", json={"timeout_rate": 1.0, "timeout_seconds": 1})
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/companies", timeout=httpx.Timeout(5, read=0.3))
            held = time.monotonic() - started

            await client.put("/_sandbox/faults", json={"lost_response_rate": 1.0})
            with pytest.raises(httpx.TransportError):
                await client.post("/companies", json=COMPANY, headers=key("k-proc"))
            await client.put("/_sandbox/faults", json={})
            replay = await client.post("/companies", json=COMPANY, headers=key("k-proc"))
            state = (await client.get("/_sandbox/state")).json()
            calls = await _once_the_hold_ends(client)
    log = sandbox.log()
    record(
        "sandbox",
        {
            "latency flag (ms)": config["latency_ms"],
            "measured latency (ms)": round(latency * 1000),
            "drop seen by the client as": type(dropped.value).__name__,
            "held request timed out after (s)": round(held, 2),
            "lost response replayed to the same key": replay.status_code == 200,
        },
        variant="bankfeeds sandbox process",
    )

    assert config["latency_ms"] == 60 and config["concurrency_limit"] == 10
    assert 0.06 <= latency < 1.0
    assert not isinstance(dropped.value, httpx.HTTPStatusError)
    assert 0.3 <= held < 2.0
    assert replay.status_code == 200 and len(state["companies"]) == 1
    assert sorted((c["fault"], c["status"]) for c in calls if c["fault"]) == [
        ("drop", 0),
        ("lost_response", 0),
        ("timeout", 0),
    ]
    assert [c["idempotency"] for c in calls if c["idempotency"]] == ["replayed"]
    # uvicorn neither answered 500 nor logged an application error for the dropped sockets.
    assert "Exception in ASGI application" not in log and " 500 " not in log


async def _once_the_hold_ends(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The call log, once the held request is in it (the sandbox logs a call when it ends)."""
    for _ in range(100):
        calls: list[dict[str, Any]] = (await client.get("/_sandbox/calls")).json()
        if any(c["fault"] == "timeout" for c in calls):
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError("the held request never ended")


def test_sandbox_cli_refuses_a_bad_fault_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "sandbox", "--error-rate", "503=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "status_rates[503] must be a probability" in done.stderr

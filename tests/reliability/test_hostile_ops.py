"""Proof 4c: the ops API under hostile input, and oversized bodies refused before they are read.

tests/test_openapi.py runs schemathesis on well-formed cases; here the requests are hostile:
wrong credentials on every operation, and malformed, absurd or oversized input with the right
ones.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.main import MAX_BODY_BYTES, MAX_WEBHOOK_BYTES
from tests.conftest import OPS_TOKEN, Service, _truncate, make_settings, start_service
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.hostile import FUZZ, Tally, database_state
from tests.reliability.support import db_name

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}


def _operations() -> list[tuple[str, str, bool]]:
    from app.main import create_app

    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"), run_background=False)
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/ops"):
            found += [(m.upper(), path, "requestBody" in op) for m, op in operations.items()]
    return found


OPERATIONS = _operations()
segments = st.one_of(
    st.just("cus-1"),
    st.text(max_size=80),
    st.text(alphabet="./%\\:?#&=;", max_size=12),
    st.integers().map(str),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.sampled_from(
        ["\x00", "\ud800", "\U0001f600" * 40, "' OR 1=1 --", "<script>", "../../etc"]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=6)
    ),
    max_leaves=20,
)
account_like = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "country": json_values,
        "locale": json_values,
        "accountName": json_values,
        "accountType": json_values,
        "accountNumber": json_values,
        "currency": json_values,
        "balance": st.one_of(json_values, st.just("1e999999"), st.just("-0"), st.just("NaN")),
        "routingInfo": json_values,
        "lang": json_values,
        "lifetime_seconds": json_values,
    },
)
raw_bodies = st.one_of(
    account_like.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(1, 60).map(lambda n: b"[" * n * 1000 + b"]" * n * 1000),
    st.integers(1, 9).map(lambda n: b'{"name": "' + b"A" * n * 100_000 + b'", "country": "US"}'),
    st.just(b"id,name,country\n" + b"c,\x00,US\n" * 3),
)
content_types = st.sampled_from(
    ["application/json", "text/csv", "text/plain", "application/x-www-form-urlencoded", ""]
)
wrong_auth = st.one_of(
    st.none(),
    st.builds(
        lambda scheme, token: f"{scheme} {token}",
        st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]),
        st.one_of(
            st.text(max_size=60),
            st.just(OPS_TOKEN[:-1]),
            st.just(OPS_TOKEN + "x"),
            st.just(OPS_TOKEN.upper()),
            st.just(base64.b64encode(OPS_TOKEN.encode()).decode()),
        ),
    ).filter(lambda h: not h.startswith(("Bearer ", "bearer ")) or h[7:].strip() != OPS_TOKEN),
    st.just(OPS_TOKEN),
)


def _url(path: str, values: list[str]) -> str:
    parts = iter(values)
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + quote(next(parts), safe="") + path[end + 1 :]
    return path


@pytest.fixture
async def ops(database_url: str) -> AsyncIterator[Service]:
    await _truncate(database_url)
    async for service in start_service(database_url):
        await add_customer(service.sessions, "cus-1", accounts=2)
        yield service
    await _truncate(database_url)


@FUZZ
@given(
    operation=st.sampled_from(OPERATIONS),
    values=st.lists(segments, min_size=3, max_size=3),  # the most placeholders a path has
    body=raw_bodies,
    authorization=wrong_auth,
)
async def test_without_the_ops_token_nothing_answers_and_nothing_changes(
    ops: Service,
    database_url: str,
    tally: Tally,
    operation: Any,
    values: list[str],
    body: bytes,
    authorization: str | None,
) -> None:
    method, path, _ = operation
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    before = await database_state(ops.sessions)
    calls = len(ops.sandbox.calls)
    response = await ops.client.request(
        method,
        _url(path, values),
        content=body if method in ("POST", "PUT") else None,
        headers={k.encode(): v.encode() for k, v in headers.items()},
    )
    tally.answers[response.status_code] += 1
    tally.tick()
    tally.proof, tally.variant, tally.figures = "hostile", db_name(database_url), _without_token

    # The token is checked before anything reads the body or even matches a route.
    assert response.status_code == 401, (method, path, response.status_code)
    assert response.json() == {"detail": "A valid ops bearer token is required."}
    assert await database_state(ops.sessions) == before
    assert len(ops.sandbox.calls) == calls


@FUZZ
@given(
    operation=st.sampled_from(OPERATIONS),
    values=st.lists(segments, min_size=3, max_size=3),  # the most placeholders a path has
    body=raw_bodies,
    content_type=content_types,
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "refresh", "purge", "updated_since", "status"]),
        st.text(max_size=30),
        max_size=3,
    ),
)
async def test_hostile_input_with_the_token_never_gets_a_5xx(
    ops: Service,
    database_url: str,
    tally: Tally,
    operation: Any,
    values: list[str],
    body: bytes,
    content_type: str,
    query: dict[str, str],
) -> None:
    method, path, _ = operation
    started = time.monotonic()
    response = await ops.client.request(
        method,
        _url(path, values),
        params=query,
        content=body if method in ("POST", "PUT") else None,
        headers={**AUTH, "content-type": content_type},
    )
    tally.answers[response.status_code] += 1
    tally.tick()
    tally.slowest_ms = max(tally.slowest_ms, round((time.monotonic() - started) * 1000))
    tally.proof, tally.variant, tally.figures = "hostile", db_name(database_url), _with_token

    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert "detail" in response.json()


def _without_token(tally: Tally) -> dict[str, Any]:
    return {"requests without a valid token": tally.examples, "- answers": tally.answered()}


def _with_token(tally: Tally) -> dict[str, Any]:
    return {
        "hostile requests with the token": tally.examples,
        "- answers (never 5xx)": tally.answered(),
        "- slowest answer (ms)": tally.slowest_ms,
    }


async def test_the_ops_oracle_tells_a_token_from_none(ops: Service) -> None:
    """The fuzz's oracle can see a success: the same request answers once the token is right."""
    refused = await ops.client.get("/ops/customers/cus-1")
    allowed = await ops.client.get("/ops/customers/cus-1", headers=AUTH)
    assert (refused.status_code, allowed.status_code) == (401, 200)


async def test_absurdly_nested_import_is_refused_not_a_500(ops: Service) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    before = await database_state(ops.sessions)
    response = await ops.client.post(
        "/ops/customers:import", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert await database_state(ops.sessions) == before


# --- oversized bodies, streamed ---------------------------------------------------------------

CHUNK = 64 * 1024


@pytest.mark.parametrize(
    ("method", "path", "limit", "headers"),
    [
        ("PUT", "/ops/customers/cus-2", MAX_BODY_BYTES,
         {**AUTH, "content-type": "application/json"}),
        ("POST", "/webhooks/codat", MAX_WEBHOOK_BYTES, {"content-type": "application/json"}),
        ("POST", "/connect-bank-feeds", MAX_BODY_BYTES,
         {"content-type": "application/x-www-form-urlencoded"}),
    ],
)  # fmt: skip
async def test_oversized_streamed_body_is_refused_before_it_is_read(
    ops: Service, record: Record, method: str, path: str, limit: int, headers: dict[str, str]
) -> None:
    total = 20 * 1024 * 1024
    pulled = 0

    async def stream() -> AsyncIterator[bytes]:  # chunked: no content-length to refuse early
        nonlocal pulled
        for _ in range(total // CHUNK):
            pulled += CHUNK
            yield b"a" * CHUNK

    before = await database_state(ops.sessions)
    response = await ops.client.request(method, path, content=stream(), headers=headers)
    record(
        "hostile",
        {
            "limit (bytes)": limit,
            "offered, chunked (bytes)": total,
            "read before the 413 (bytes)": pulled,
            "answer": response.status_code,
        },
        variant=f"{method} {path}",
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert pulled <= limit + CHUNK  # it stopped at the first chunk over the limit
    assert await database_state(ops.sessions) == before

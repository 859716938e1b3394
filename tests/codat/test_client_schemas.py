"""Property: any answer Codat's OpenAPI files allow, for every operation the client calls,
comes back as the client's result or as one of its own errors; nothing else escapes.

Bodies are generated from the response schemas (normalised as in `tests/sandbox/sandbox_oas`,
formats dropped so that any string the spec's plain `type: string` allows can appear) by a small
JSON Schema strategy below: hypothesis-jsonschema does not run on the Hypothesis release that
schemathesis needs. Optional properties come and go, objects that allow more get extra keys.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.codat.client import CodatClient, retry_budget
from app.codat.errors import CodatError
from app.codat.models import SourceAccountCreate, SourceAccountUpdate
from tests.sandbox.sandbox_oas import find_operation, spec

ACCOUNT = SourceAccountCreate(
    id="a1",
    accountName="A",
    accountType="checking",
    accountNumber="1",
    currency="USD",
    balance=1,
)
C, X = "7d8b7b1e-8f1c-4a2a-9b6f-1d2e3f4a5b6c", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
BASE = f"/companies/{C}/connections/{X}/connectionInfo/bankFeedAccounts"

Call = Callable[[CodatClient], Awaitable[Any]]
OPERATIONS: list[tuple[str, str, Call]] = [
    ("POST", "/companies", lambda c: c.create_company("Acme", tags={"k": "v"})),
    ("GET", "/companies", lambda c: c.find_companies_by_tag("k", "v")),
    ("GET", f"/companies/{C}", lambda c: c.get_company(C)),
    ("DELETE", f"/companies/{C}", lambda c: c.delete_company(C)),
    ("POST", f"/companies/{C}/connections", lambda c: c.create_connection(C)),
    ("GET", f"/companies/{C}/connections", lambda c: c.list_connections(C)),
    ("GET", f"/companies/{C}/connections/{X}", lambda c: c.get_connection(C, X)),
    ("PATCH", f"/companies/{C}/connections/{X}", lambda c: c.unlink_connection(C, X)),
    ("DELETE", f"/companies/{C}/connections/{X}", lambda c: c.delete_connection(C, X)),
    ("POST", BASE + "/batch", lambda c: c.create_source_accounts(C, X, [ACCOUNT])),
    ("GET", BASE, lambda c: c.list_source_accounts(C, X)),
    (
        "PATCH",
        BASE + "/a1",
        lambda c: c.update_source_account(C, X, SourceAccountUpdate(id="a1", account_name="B")),
    ),
    ("DELETE", BASE + "/a1", lambda c: c.delete_source_account(C, X, "a1")),
    ("DELETE", BASE + "/credentials", lambda c: c.revoke_credentials(C, X)),
    ("GET", "/integrations/hcws", lambda c: c.get_integration()),
]


def _inline(name: str, node: Any, depth: int = 0) -> Any:
    """The schema with every `$ref` replaced by its target and every `format` dropped."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [_inline(name, item, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec(name)
        for part in node["$ref"].removeprefix("#/").split("/"):
            part = (
                part.replace("~1", "/").replace("~0", "~").replace("%7B", "{").replace("%7D", "}")
            )
            target = target[int(part)] if isinstance(target, list) else target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline(name, {**copy.deepcopy(target), **rest}, depth + 1)
    skip = {"format", "examples", "example", "description", "title", "readOnly", "writeOnly"}
    return {k: _inline(name, v, depth) for k, v in node.items() if k not in skip}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)


def from_schema(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid under a JSON Schema (the subset Codat's response schemas use)."""
    if not isinstance(schema, dict) or not schema or depth > 12:
        return JSON
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema({**rest, **b}, depth + 1) for b in schema[key]])
    if "allOf" in schema:
        merged: dict[str, Any] = dict(rest)
        for branch in schema["allOf"]:
            for k, v in branch.items():
                if k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required":
                    merged["required"] = sorted({*merged.get("required", []), *v})
                else:
                    merged.setdefault(k, v)
        return from_schema(merged, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, depth) for k in kind])
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        required = [p for p in schema.get("required", []) if p in properties]
        optional = {
            p: from_schema(v, depth + 1) for p, v in properties.items() if p not in required
        }
        fixed = st.fixed_dictionaries(
            {p: from_schema(properties[p], depth + 1) for p in required}, optional=optional
        )
        if schema.get("additionalProperties") is False:
            return fixed
        extra = st.dictionaries(st.text(min_size=1, max_size=6), JSON, max_size=2)
        return st.tuples(fixed, extra).map(lambda pair: {**pair[1], **pair[0]})
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), depth + 1), max_size=3)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 24))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON


def _answers(method: str, path: str) -> list[tuple[int, Any]]:
    """(status, body schema or None) for every response the spec documents."""
    found = find_operation(method, path)
    assert found is not None, f"{method} {path} is not in Codat's spec"
    name, _, operation = found
    answers = []
    for status, response in operation["responses"].items():
        if not status.isdigit():
            continue
        response = _inline(name, response)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        answers.append((int(status), schema))
    return answers


@pytest.mark.parametrize(
    ("method", "path", "call"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_any_answer_the_spec_allows_is_a_result_or_a_codat_error(
    method: str, path: str, call: Call
) -> None:
    answers = _answers(method, path)
    strategies = [
        st.tuples(st.just(status), from_schema(schema) if schema else st.none())
        for status, schema in answers
    ]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(st.one_of(strategies))
    def check(answer: tuple[int, Any]) -> None:
        status, body = answer

        def respond(request: httpx.Request) -> httpx.Response:
            if body is None:
                return httpx.Response(status)
            return httpx.Response(status, json=body)

        import asyncio

        async def run() -> None:
            client = CodatClient("https://codat.test", "k", transport=httpx.MockTransport(respond))
            try:
                with retry_budget(0.01):  # no waiting between retries
                    await call(client)
            except CodatError:
                pass  # the client's own error: the service turns it into a page
            finally:
                await client.aclose()

        asyncio.run(run())

    check()

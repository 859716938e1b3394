"""Schemathesis against every operation of the API: no 5xx, and every answer matches its
documented schema."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.db import create_engine, session_factory
from app.main import create_app
from tests.conftest import OPS_TOKEN, _truncate, make_settings
from tests.factories import add_customer

# Schemathesis calls the app as `testserver`.
SCHEMATHESIS_HOSTS = ["testserver"]


@pytest.fixture
def ops_app(database_url: str) -> Any:
    """The app on a database holding customer cus-1 with two accounts (ids as the examples)."""

    async def seed() -> None:
        await _truncate(database_url)
        engine = create_engine(database_url)
        await add_customer(session_factory(engine), "cus-1", accounts=2)
        await engine.dispose()

    asyncio.run(seed())
    return create_app(
        make_settings(database_url, allowed_hosts=SCHEMATHESIS_HOSTS),
        run_background=False,
        seed_demo=False,
    )


# The schema is the app's own /openapi.json; each test sends its cases to `ops_app`.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(
        make_settings("sqlite+aiosqlite:///:memory:", allowed_hosts=SCHEMATHESIS_HOSTS),
        run_background=False,
        seed_demo=False,
    ),
)


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_its_schema(case: Any, ops_app: Any) -> None:
    case.call_and_validate(
        app=ops_app,
        headers={"Authorization": f"Bearer {OPS_TOKEN}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )

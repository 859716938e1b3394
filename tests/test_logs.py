"""Log lines as text or JSON: redacted in both formats (tracebacks included), a request id on
every line of a request, Codat's correlationId on the line of each Codat call that has one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.connect.tokens import mint_connect_token
from app.logs import RedactingFilter, log_handler, redaction_list
from app.request_ids import current
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    WEBHOOK_SECRET,
    FaultyService,
    Service,
    make_settings,
)
from tests.factories import add_customer

CODAT_KEY = "codat-key-for-the-log-tests-7Hq2"
LINK = "https://link-api.codat.io/companies/c/connections/k/start?otp=482913"


def redactor() -> RedactingFilter:
    settings = make_settings("sqlite://", codat_api_key=SecretStr(CODAT_KEY))
    return RedactingFilter(redaction_list(settings))


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A logger writing through the service's handler, in the format the test names."""
    stream = io.StringIO()
    handler = log_handler(redactor(), request.param, stream)
    logger = logging.getLogger(f"app.test_logs.{request.param}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream, logger
    logger.removeHandler(handler)


def fail_with_secrets() -> None:
    try:
        raise ConnectionError(f"Codat refused key {CODAT_KEY}")
    except ConnectionError as cause:
        raise RuntimeError(f"could not connect; token {OPS_TOKEN}, link {LINK}") from cause


def log_everything(logger: logging.Logger) -> None:
    logger.info("plain line")
    logger.warning("secret %s and link %s", CONNECT_SECRET, LINK)
    try:
        fail_with_secrets()
    except RuntimeError:
        logger.exception("click failed with webhook secret %s", WEBHOOK_SECRET)
    token = current.set("req-42")
    try:
        logger.info("inside a request")
    finally:
        current.reset(token)


def assert_no_secret(text: str) -> None:
    for secret in (CODAT_KEY, OPS_TOKEN, CONNECT_SECRET, WEBHOOK_SECRET, "482913"):
        assert secret not in text


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_json_lines_are_objects_and_redacted(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    log_everything(logger)
    text = stream.getvalue()
    assert_no_secret(text)
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 4  # one object a line, the traceback inside its line
    plain, warned, failed, inside = lines
    assert plain["message"] == "plain line" and plain["level"] == "INFO"
    assert plain["logger"] == "app.test_logs.json" and plain["time"].endswith("+00:00")
    assert "request_id" not in plain
    assert (
        warned["message"]
        == "secret [redacted] and link https://link-api.codat.io/companies/c/connections/k/start?[redacted]"
    )
    assert failed["level"] == "ERROR"
    traceback = failed["exception"]
    assert "Traceback" in traceback and "ConnectionError: Codat refused key [redacted]" in traceback
    assert "RuntimeError: could not connect; token [redacted]" in traceback
    assert inside["request_id"] == "req-42"


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_text_lines_are_redacted_tracebacks_included(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log_everything(logger)
    text = stream.getvalue()
    assert_no_secret(text)
    assert " INFO app.test_logs.text [-] plain line" in text
    assert "Traceback" in text and "ConnectionError: Codat refused key [redacted]" in text
    assert "click failed with webhook secret [redacted]" in text
    assert " [req-42] inside a request" in text


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """Every line the service writes, as JSON, while the test runs."""
    stream = io.StringIO()
    handler = log_handler(redactor(), "json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_every_line_of_a_request_carries_its_id(
    service: Service, service_log: io.StringIO
) -> None:
    await add_customer(service.sessions, "cus-1")
    token = mint_connect_token(CONNECT_SECRET, "cus-1")
    response = await service.client.get(
        "/connect-bank-feeds", params={"token": token}, headers={"X-Request-ID": "click-7f3a"}
    )
    assert response.status_code == 302
    assert response.headers["X-Request-ID"] == "click-7f3a"
    lines = lines_of(service_log)
    codat = [line for line in lines if line.get("codat_operation")]
    assert [c["codat_operation"] for c in codat][:3] == [
        "create-company",
        "create-connection",
        "create-batch-source-account",
    ]
    assert all(line.get("request_id") == "click-7f3a" for line in lines), lines


@pytest.mark.parametrize("offered", [None, "", "has spaces", "x" * 129, 'quote"d', "new\\nline"])
async def test_a_missing_or_unsafe_request_id_is_replaced(
    service: Service, offered: str | None
) -> None:
    headers = {"X-Request-ID": offered} if offered is not None else {}
    response = await service.client.get("/healthz", headers=headers)
    echoed = response.headers["X-Request-ID"]
    assert echoed != offered and len(echoed) == 32 and int(echoed, 16) >= 0


async def test_codat_calls_log_codats_correlation_id(
    faulty: FaultyService, service_log: io.StringIO
) -> None:
    await add_customer(faulty.service.sessions, "cus-1")
    faulty.fail(status=404)
    token = mint_connect_token(CONNECT_SECRET, "cus-1")
    response = await faulty.service.client.get(
        "/connect-bank-feeds", params={"token": token}, headers={"X-Request-ID": "click-9"}
    )
    assert response.status_code == 502
    [call] = [line for line in lines_of(service_log) if line.get("codat_operation")]
    assert call["codat_operation"] == "create-company" and call["codat_status"] == 404
    assert call["codat_correlation_id"] == "test" and call["request_id"] == "click-9"
    assert "(correlationId test)" in call["message"]

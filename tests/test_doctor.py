"""`bankfeeds doctor`: passes on a sandbox, names each failure with its fix, exits non-zero."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.cli import main
from app.doctor import Check, report, run_checks
from app.sandbox import SandboxConfig, create_sandbox_app
from app.settings import SANDBOX_API_KEY
from app.webhooks.subscription import NEEDED_EVENT_TYPES
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    WEBHOOK_SECRET,
    _drop_postgres_db,
    _make_postgres_db,
    make_settings,
)

REAL_KEY = "real-looking-codat-key-0123456789"


def checks(database_url: str, transport: Any = None, **overrides: Any) -> dict[str, Check]:
    settings = make_settings(database_url, **overrides)
    return {c.name: c for c in asyncio.run(run_checks(settings, codat_transport=transport))}


def failed(found: dict[str, Check]) -> set[str]:
    return {name for name, c in found.items() if not c.ok}


def codat(
    key: str = REAL_KEY,
    *,
    enabled: bool = True,
    integration: int = 200,
    consumers: list[dict[str, Any]] | None = None,
    data_types: tuple[str, ...] | None = ("bankAccounts", "bankTransactions"),
    features: list[dict[str, Any]] | None = None,
) -> Any:
    """A Codat that accepts `key`, says whether hcws is enabled and lists webhook consumers
    (by default one for the service's URL, taking every event type it handles)."""
    expected = "Basic " + base64.b64encode(key.encode()).decode()
    if consumers is None:
        consumers = [consumer()]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != expected:
            return httpx.Response(401, json={"statusCode": 401, "error": "Unauthorized"})
        if request.url.path == "/webhooks":
            return httpx.Response(200, json={"results": consumers})
        if request.url.path == "/companies":
            return httpx.Response(
                200, json={"results": [], "pageNumber": 1, "pageSize": 1, "totalResults": 0}
            )
        if request.url.path == "/integrations/hcws" and integration == 200:
            body = {"key": "hcws", "name": "QuickBooks Online Bank Feeds", "enabled": enabled}
            if features is not None:
                body["datatypeFeatures"] = features
            return httpx.Response(200, json={**body, "logoUrl": "https://x/y.svg"})
        if request.url.path == "/profile/syncSettings" and data_types is None:
            return httpx.Response(404, json={"statusCode": 404, "error": "Not Found"})
        if request.url.path == "/profile/syncSettings":
            settings = [
                {"dataType": d, "fetchOnFirstLink": True, "syncSchedule": 24, "syncOrder": 0}
                for d in data_types
            ]
            return httpx.Response(
                200, json={"clientId": "c", "settings": settings, "overridesDefaults": False}
            )
        return httpx.Response(integration, json={"statusCode": integration, "error": "no"})

    return httpx.MockTransport(handle)


def consumer(
    url: str = "http://127.0.0.1:8000/webhooks/codat",
    event_types: tuple[str, ...] = NEEDED_EVENT_TYPES,
    **changes: Any,
) -> dict[str, Any]:
    return {
        "id": "8a210b68-6988-11ed-a1eb-0242ac120002",
        "url": url,
        "eventTypes": list(event_types),
        "disabled": False,
        **changes,
    }


def test_a_sandbox_deployment_passes(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(
        database_url, link_callout_title_en="Connect", link_callout_body_en="Two minutes."
    )
    found = asyncio.run(run_checks(settings))
    assert all(c.ok for c in found), [c.line() for c in found if not c.ok]
    assert len(found) == 11
    assert report(found, print) == 0
    out = capsys.readouterr().out
    assert out.count("✓") == 11 and "✗" not in out
    assert "Codat webhook consumer: http://127.0.0.1:8000/webhooks/codat receives all" in out
    assert "Codat API key (sandbox mode: no CODAT_API_KEY): the built-in sandbox accepts it" in out
    assert "'hcws': QuickBooks Online Bank Feeds is enabled" in out
    assert "migrated to head" in out and "Link callout (en): title 7/50, body 12/150" in out
    for reminder in ("Bank accounts and Bank transactions", "logo", "Intuit", "Integrations"):
        assert reminder in out
    for secret in (CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET):
        assert secret not in out


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CODAT_API_KEY", "")
    monkeypatch.setenv("CONNECT_TOKEN_SECRET", CONNECT_SECRET)
    monkeypatch.setenv("OPS_API_TOKEN", OPS_TOKEN)
    monkeypatch.setenv("CODAT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    yield


def test_cli_doctor_passes_on_the_sandbox(
    cli_environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "Sandbox mode" in out and "All checks passed." in out


def test_cli_doctor_fails_on_a_placeholder(
    cli_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPS_API_TOKEN", "change-me-ops-api-token")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ OPS_API_TOKEN: still a placeholder" in out and "Fix: set it to a random" in out
    assert "1 check(s) failed." in out and "change-me-ops-api-token" not in out


@pytest.mark.parametrize(
    ("overrides", "name", "detail"),
    [
        ({"connect_token_secret": None}, "CONNECT_TOKEN_SECRET", "not set"),
        ({"ops_api_token": SecretStr("short")}, "OPS_API_TOKEN", "placeholder"),
        (
            {"codat_webhook_secret": SecretStr("a-long-but-wrong-secret")},
            "CODAT_WEBHOOK_SECRET",
            "whsec_",
        ),
        ({"public_base_url": "not a url"}, "PUBLIC_BASE_URL", "absolute"),
        (
            {"link_callout_title_en": "T" * 51, "link_callout_body_en": "Body"},
            "Link callout",
            "51 characters, at most 50",
        ),
        (
            {"link_callout_title_fr": "Titre", "link_callout_body_fr": "B" * 151},
            "Link callout",
            "151 characters, at most 150",
        ),
        (
            {"link_callout_title_en": "<b>Hi</b>", "link_callout_body_en": "Body"},
            "Link callout",
            "plain text",
        ),
        ({"link_callout_body_en": "A body alone"}, "Link callout", "no title"),
    ],
)
def test_bad_settings_fail_with_a_fix(
    database_url: str, overrides: dict[str, Any], name: str, detail: str
) -> None:
    found = checks(database_url, **overrides)
    bad = [c for c in found.values() if not c.ok]
    named = [c for c in bad if c.name.startswith(name)]
    assert any(detail in c.detail for c in named), [c.line() for c in bad]
    others = {c.name for c in bad} - {c.name for c in named}
    # A callout Codat could not hold also stops the sandbox the Codat checks talk to.
    assert others <= {"Codat API key (sandbox mode: no CODAT_API_KEY)"}
    assert all(c.fix and c.line().startswith("✗ ") and "Fix: " in c.line() for c in bad)
    assert report(list(found.values()), lambda _: None) == 1


def test_real_codat_needs_a_public_base_url(database_url: str) -> None:
    settings = make_settings(database_url, codat_api_key=SecretStr(REAL_KEY))
    settings = settings.model_copy()
    object.__setattr__(settings, "__pydantic_fields_set__", {"database_url"})
    found = {c.name: c for c in asyncio.run(run_checks(settings, codat_transport=codat()))}
    assert not found["PUBLIC_BASE_URL"].ok and "not set" in found["PUBLIC_BASE_URL"].detail


def test_codat_key_refused(database_url: str) -> None:
    sandbox = create_sandbox_app(
        SandboxConfig(
            api_key=SANDBOX_API_KEY,
            public_url="http://x",
            webhook_url="http://127.0.0.1:8000/webhooks/codat",
        )
    )
    transport = httpx.ASGITransport(app=sandbox)
    found = checks(database_url, transport, codat_api_key=SecretStr(REAL_KEY))
    assert failed(found) == {
        "Codat API key",
        "Codat integration 'hcws'",
        "Codat data type 'bankTransactions'",
        "Codat webhook consumer",
    }
    assert "refused the key, given as the raw API key (401)" in found["Codat API key"].detail
    assert "Developers > API keys" in (found["Codat API key"].fix or "")
    assert found["Codat integration 'hcws'"].detail == "not checked"
    assert found["Codat webhook consumer"].detail == "not checked"
    accepted = checks(database_url, transport, codat_api_key=SecretStr(SANDBOX_API_KEY))
    assert failed(accepted) == set()
    assert "(given as the raw API key)" in accepted["Codat API key"].detail
    header = "Basic " + base64.b64encode(SANDBOX_API_KEY.encode()).decode()  # as the Portal shows
    ready_made = checks(database_url, transport, codat_api_key=SecretStr(header))
    assert failed(ready_made) == set()
    assert "(given as the ready-made Basic header)" in ready_made["Codat API key"].detail


@pytest.mark.parametrize(
    ("transport", "detail"),
    [
        (codat(enabled=False), "is not enabled"),
        (codat(integration=404), "not available to this Codat account"),
    ],
)
def test_hcws_integration_not_enabled(database_url: str, transport: Any, detail: str) -> None:
    found = checks(database_url, transport, codat_api_key=SecretStr(REAL_KEY))
    assert failed(found) == {"Codat integration 'hcws'"}
    check = found["Codat integration 'hcws'"]
    assert detail in check.detail
    assert "Settings > Integrations > Bank feeds" in (check.fix or "")


def test_database_unreachable(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        url = "sqlite+aiosqlite:////nonexistent-dir/bankfeeds.db"
        expected = "does not exist"
    else:
        url = "postgresql+asyncpg://postgres:secret-pw@127.0.0.1:1/bankfeeds"
        expected = "cannot reach"
    found = checks(url)
    assert failed(found) == {"Database"}
    assert expected in found["Database"].detail and "secret-pw" not in found["Database"].line()


def test_database_not_migrated(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        url = f"sqlite+aiosqlite:///{path}"
        found = checks(url)
    else:
        url = _make_postgres_db()
        try:
            found = checks(url)
        finally:
            _drop_postgres_db(url)
    assert failed(found) == {"Database"}
    assert "no tables" in found["Database"].detail
    assert "bankfeeds migrate" in (found["Database"].fix or "")


@pytest.mark.parametrize(
    ("consumers", "detail"),
    [
        ([], "none sends events to http://127.0.0.1:8000/webhooks/codat"),
        ([consumer(url="https://elsewhere.example/webhooks/codat")], "none sends events"),
        (
            [consumer(event_types=("connection.connected", "connection.disconnected"))],
            "does not receive bankFeeds.sourceAccount.connected, "
            "bankFeeds.sourceAccount.disconnected, bankTransactions.write.successful, "
            "bankTransactions.write.unsuccessful, client.rateLimit.reached",
        ),
        ([consumer(disabled=True)], "is disabled"),
        ([consumer(companyTags=["region:west"])], "only sends region:west"),
    ],
)
def test_webhook_consumer_missing_or_incomplete(
    database_url: str, consumers: list[dict[str, Any]], detail: str
) -> None:
    found = checks(database_url, codat(consumers=consumers), codat_api_key=SecretStr(REAL_KEY))
    assert failed(found) == {"Codat webhook consumer"}
    check = found["Codat webhook consumer"]
    assert detail in check.detail, check.detail
    assert "bankfeeds codat setup-webhooks" in (check.fix or "")


def test_the_closest_consumer_is_the_one_judged(database_url: str) -> None:
    partial = consumer(event_types=("connection.connected",), id="partial")
    complete = consumer(id="complete", url="http://127.0.0.1:8000/webhooks/codat/")
    found = checks(
        database_url, codat(consumers=[partial, complete]), codat_api_key=SecretStr(REAL_KEY)
    )
    assert failed(found) == set()


BANK_TRANSACTIONS = "Codat data type 'bankTransactions'"


@pytest.mark.parametrize(
    ("transport", "ok", "detail"),
    [
        (codat(data_types=("bankAccounts", "bankTransactions")), True, "enabled"),
        (codat(data_types=("bankAccounts",)), False, "not in the data type settings"),
        (
            codat(
                data_types=None,  # not readable: the integration's features decide
                features=[
                    {
                        "datatype": "bankTransactions",
                        "supportedFeatures": [
                            {"featureType": "Post", "featureState": "NotSupported"}
                        ],
                    }
                ],
            ),
            False,
            "writes are NotSupported",
        ),
        (
            codat(
                data_types=None,
                features=[
                    {
                        "datatype": "bankTransactions",
                        "supportedFeatures": [{"featureType": "post", "featureState": "release"}],
                    }
                ],
            ),
            True,
            "writes are release",
        ),
    ],
)
def test_the_bank_transactions_data_type_must_be_enabled(
    database_url: str, transport: Any, ok: bool, detail: str
) -> None:
    found = checks(database_url, transport, codat_api_key=SecretStr(REAL_KEY))
    check = found[BANK_TRANSACTIONS]
    assert check.ok is ok and detail in check.detail
    assert failed(found) == (set() if ok else {BANK_TRANSACTIONS})
    if not ok:
        assert "Settings > Data types" in (check.fix or "")

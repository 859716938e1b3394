"""`bankfeeds codat setup-webhooks`: the one consumer for the service's URL, with exactly the
event types it handles, made through Codat's API (the sandbox here), idempotent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.cli import main
from app.codat_setup import setup_webhooks
from app.doctor import run_checks
from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.webhook_consumers import Consumer
from app.webhooks.handlers import HANDLERS
from app.webhooks.subscription import NEEDED_EVENT_TYPES
from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET, make_settings
from tests.servers import against_sandbox, run_sandbox_process, sandbox_headers

KEY = "setup-test-codat-key-0123456789"
PUBLIC = "https://bank.example.com"
URL = PUBLIC + "/webhooks/codat"


class Codat:
    """A sandbox standing in for Codat, and the settings of a service pointed at it."""

    def __init__(self, database_url: str) -> None:
        self.app = create_sandbox_app(SandboxConfig(api_key=KEY, public_url="http://sandbox"))
        self.settings = make_settings(
            database_url, codat_api_key=SecretStr(KEY), public_base_url=PUBLIC
        )
        self.out: list[str] = []

    @property
    def consumers(self) -> dict[str, Consumer]:
        return dict(self.app.state.sandbox.webhook_consumers.consumers)

    def add(self, url: str, event_types: list[str], **changes: Any) -> str:
        consumer = Consumer(f"old-{len(self.consumers)}", url, event_types, **changes)
        self.app.state.sandbox.webhook_consumers.add(consumer)
        return consumer.id

    def run(self, url: str = URL) -> int:
        transport = httpx.ASGITransport(app=self.app)
        return asyncio.run(
            setup_webhooks(
                self.settings, url, codat_transport=transport, print_line=self.out.append
            )
        )

    def text(self) -> str:
        return "\n".join(self.out)


@pytest.fixture
def codat(database_url: str) -> Codat:
    return Codat(database_url)


def test_creates_the_consumer_then_changes_nothing(codat: Codat) -> None:
    assert codat.run() == 0
    [consumer] = codat.consumers.values()
    assert consumer.url == URL and not consumer.disabled and consumer.company_tags is None
    assert sorted(consumer.event_types) == sorted(HANDLERS)
    assert f"Created Codat webhook consumer {consumer.id} for {URL}." in codat.text()
    assert "copy its Signing secret (whsec_...) into CODAT_WEBHOOK_SECRET" in codat.text()

    codat.out.clear()
    assert codat.run() == 0
    assert list(codat.consumers) == [consumer.id]
    assert "is already right" in codat.text() and "Created" not in codat.text()


def test_replaces_what_is_wrong_for_its_url_only(codat: Codat) -> None:
    partial = codat.add(URL, ["connection.connected"])
    disabled = codat.add(URL + "/", list(NEEDED_EVENT_TYPES), disabled=True)
    elsewhere = codat.add("https://other.example.com/hooks", ["connection.connected"])

    assert codat.run() == 0

    remaining = codat.consumers
    assert partial not in remaining and disabled not in remaining
    assert elsewhere in remaining
    [ours] = [c for c in remaining.values() if c.url == URL]
    assert sorted(ours.event_types) == sorted(NEEDED_EVENT_TYPES)
    assert f"Deleted consumer {partial}" in codat.text()
    assert f"Deleted consumer {disabled}" in codat.text()


def test_keeps_an_exact_consumer_and_drops_its_duplicates(codat: Codat) -> None:
    first = codat.add(URL, list(NEEDED_EVENT_TYPES))
    second = codat.add(URL, list(reversed(NEEDED_EVENT_TYPES)))
    assert codat.run() == 0
    assert list(codat.consumers) == [first]
    assert f"Deleted consumer {second}" in codat.text()


def test_doctor_passes_once_it_ran(codat: Codat) -> None:
    def consumer_check() -> Any:
        transport = httpx.ASGITransport(app=codat.app)
        checks = asyncio.run(run_checks(codat.settings, codat_transport=transport))
        return next(c for c in checks if c.name == "Codat webhook consumer")

    assert not consumer_check().ok
    assert codat.run() == 0
    assert consumer_check().ok


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://bank.example.com/webhooks/codat", "not https"),
        ("https://bank.example.com/hooks", "ends in /webhooks/codat"),
        ("https://bank.example.com/webhooks/codat?x=1", "ends in /webhooks/codat"),
        ("bank.example.com/webhooks/codat", "not an absolute URL"),
    ],
)
def test_a_bad_url_is_refused_before_codat_is_called(codat: Codat, url: str, problem: str) -> None:
    assert codat.run(url) == 2
    assert problem in codat.text()
    assert codat.consumers == {}
    assert codat.app.state.sandbox.calls == []


def test_a_url_elsewhere_than_public_base_url_is_noted(codat: Codat) -> None:
    other = "https://hooks.bank.example.com/bankfeeds/webhooks/codat"
    assert codat.run(other) == 0
    assert f"Note: {other} is not PUBLIC_BASE_URL/webhooks/codat ({URL})." in codat.text()
    assert [c.url for c in codat.consumers.values()] == [other]


def test_codat_refusing_is_reported(codat: Codat) -> None:
    codat.settings = codat.settings.model_copy(
        update={"codat_api_key": SecretStr("wrong-key-0000")}
    )
    assert codat.run() == 1
    assert "Codat did not set up the webhook consumer" in codat.text()
    assert "wrong-key-0000" not in codat.text()


def test_sandbox_mode_has_nothing_to_set_up(database_url: str) -> None:
    out: list[str] = []
    settings = make_settings(database_url)
    assert asyncio.run(setup_webhooks(settings, URL, print_line=out.append)) == 2
    assert "needs CODAT_API_KEY" in out[0]


def test_the_command_against_a_sandbox_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_sandbox_process(tmp_path) as sandbox:
        for name, value in against_sandbox(sandbox).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
        monkeypatch.setenv("CONNECT_TOKEN_SECRET", CONNECT_SECRET)
        monkeypatch.setenv("OPS_API_TOKEN", OPS_TOKEN)
        monkeypatch.setenv("CODAT_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/unused.db")
        for _ in range(2):
            assert (
                main(["codat", "setup-webhooks", "--url", "http://127.0.0.1:8000/webhooks/codat"])
                == 0
            )
        listed = httpx.get(sandbox.url + "/webhooks", headers=sandbox_headers()).json()["results"]
    ours = [c for c in listed if c["url"] == "http://127.0.0.1:8000/webhooks/codat"]
    assert len(ours) == 1 and sorted(ours[0]["eventTypes"]) == sorted(NEEDED_EVENT_TYPES)
    out = capsys.readouterr().out
    assert out.count("Created Codat webhook consumer") == 1 and "is already right" in out

"""Production refuses unsafe settings with one clear line; secrets never print."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

from app.settings import AppEnv, ConfigurationError, Settings

GOOD = {
    "app_env": AppEnv.production,
    "database_url": "postgresql+asyncpg://u:p@db/bankfeeds",
    "codat_api_key": SecretStr("k3y-real-codat-api-key-0123456789"),
    "connect_token_secret": SecretStr("Zr8pQ2mV7xL1nT4wK9sD3fH6jB0cG5aE"),
    "ops_api_token": SecretStr("opsT0ken-9f8e7d6c5b4a3f2e1d0c-b4a3"),
    "codat_webhook_secret": SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
}


def settings(**overrides: object) -> Settings:
    return Settings.model_construct(**{**Settings().model_dump(), **GOOD, **overrides})


def test_production_with_everything_set_starts() -> None:
    settings().check()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"codat_api_key": None}, "refusing to run on the built-in sandbox"),
        ({"database_url": "sqlite+aiosqlite:///./var/x.db"}, "refusing to run on SQLite"),
        ({"connect_token_secret": None}, "CONNECT_TOKEN_SECRET: it is not set"),
        (
            {"ops_api_token": SecretStr("change-me-ops-api-token")},
            "OPS_API_TOKEN: it is still a placeholder",
        ),
        (
            {"codat_webhook_secret": SecretStr("whsec_change-me")},
            "CODAT_WEBHOOK_SECRET must be Codat's signing secret",
        ),
        ({"connect_token_secret": SecretStr("short")}, "CONNECT_TOKEN_SECRET: it is still"),
    ],
)
def test_production_refuses(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(**overrides).check()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_development_allows_sandbox_and_sqlite() -> None:
    settings(
        app_env=AppEnv.development, codat_api_key=None, database_url="sqlite+aiosqlite:///x.db"
    ).check()


def test_no_api_key_means_sandbox_mode_with_its_link_host() -> None:
    s = settings(
        app_env=AppEnv.development, codat_api_key=None, public_base_url="http://127.0.0.1:8000"
    )
    assert s.sandbox_mode
    assert s.codat_url == "http://127.0.0.1:8000/sandbox/codat"
    assert "127.0.0.1" in s.allowed_link_hosts
    assert "link-api.codat.io" in s.allowed_link_hosts


def test_real_key_means_codat_and_only_configured_link_hosts() -> None:
    s = settings()
    assert not s.sandbox_mode
    assert s.codat_url == "https://api.codat.io"
    assert s.allowed_link_hosts == frozenset({"link-api.codat.io"})


def test_link_hosts_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODAT_LINK_HOSTS", "link-api.codat.io, link.example.test")
    assert Settings().codat_link_hosts == ["link-api.codat.io", "link.example.test"]


def test_secrets_do_not_appear_in_repr() -> None:
    text = repr(settings()) + str(settings().model_dump())
    for value in GOOD.values():
        if isinstance(value, SecretStr):
            assert value.get_secret_value() not in text


def test_serve_refuses_production_on_sandbox_with_one_line(tmp_path: object) -> None:
    env = {"APP_ENV": "production", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "bankfeeds: APP_ENV=production needs CODAT_API_KEY: refusing to run on the built-in sandbox"
    ]

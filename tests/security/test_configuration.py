"""Configuration fails closed: with a Codat key set, whatever APP_ENV says, placeholder, short
or missing secrets, a malformed webhook secret, plain http and a trust-everyone proxy list are
refused with one line naming the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.main import create_app
from app.settings import AppEnv, ConfigurationError, Settings

GOOD: dict[str, Any] = {
    "app_env": AppEnv.development,  # APP_ENV unset: a key alone makes the rules strict
    "database_url": "sqlite+aiosqlite:///./var/x.db",
    "codat_api_key": SecretStr("k3y-real-codat-api-key-0123456789"),
    "public_base_url": "https://bankfeeds.example.com",
    "connect_token_secret": SecretStr("Zr8pQ2mV7xL1nT4wK9sD3fH6jB0cG5aE"),
    "ops_api_token": SecretStr("opsT0ken-9f8e7d6c5b4a3f2e1d0c-b4a3"),
    "codat_webhook_secret": SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
}


def settings(**overrides: Any) -> Settings:
    return Settings.model_construct(**{**Settings().model_dump(), **GOOD, **overrides})


def refusal(**overrides: Any) -> str:
    with pytest.raises(ConfigurationError) as caught:
        settings(**overrides).check()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_key_with_good_settings_starts() -> None:
    settings().check()
    create_app(settings(), run_background=False)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # The placeholders .env.example used to carry.
        ({"connect_token_secret": SecretStr("change-me-connect-token-secret")}, "CONNECT_TOKEN"),
        ({"ops_api_token": SecretStr("change-me-ops-api-token")}, "OPS_API_TOKEN"),
        ({"codat_webhook_secret": SecretStr("whsec_change-me")}, "CODAT_WEBHOOK_SECRET"),
        ({"connect_token_secret": None}, "CONNECT_TOKEN_SECRET"),
        ({"ops_api_token": None}, "OPS_API_TOKEN"),
        ({"codat_webhook_secret": None}, "CODAT_WEBHOOK_SECRET"),
        # Random, but shorter than 32 characters.
        ({"connect_token_secret": SecretStr("Zr8pQ2mV7xL1nT4wK9sD3fH6jB0c")}, "CONNECT_TOKEN"),
        ({"ops_api_token": SecretStr("opsT0ken-9f8e7d6c5b4a3f2e1d")}, "OPS_API_TOKEN"),
        ({"public_base_url": "http://bankfeeds.example.com"}, "PUBLIC_BASE_URL"),
        ({"codat_base_url": "http://api.codat.io"}, "CODAT_BASE_URL"),
        ({"forwarded_allow_ips": ["*"]}, "FORWARDED_ALLOW_IPS"),
    ],
)
def test_a_key_makes_unsafe_settings_refused_in_development(
    overrides: dict[str, Any], named: str
) -> None:
    assert named in refusal(**overrides)
    with pytest.raises(ConfigurationError):
        create_app(settings(**overrides), run_background=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]"])
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    settings(public_base_url=url, codat_base_url=url).check()


def test_a_stand_in_codat_may_be_reached_by_private_address_but_not_by_name() -> None:
    settings(codat_base_url="http://172.28.5.1:9000").check()
    assert "CODAT_BASE_URL" in refusal(codat_base_url="http://codat.internal:9000")
    assert "CODAT_BASE_URL" in refusal(codat_base_url="http://169.254.169.254")
    assert "PUBLIC_BASE_URL" in refusal(public_base_url="http://172.28.5.1:8000")


@pytest.mark.parametrize(
    "secret",
    ["whsec_change-me", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_abc", "whsec_a b"],
)
def test_a_webhook_secret_that_is_not_whsec_base64_is_refused_even_on_the_sandbox(
    secret: str,
) -> None:
    message = refusal(codat_api_key=None, codat_webhook_secret=SecretStr(secret))
    assert "CODAT_WEBHOOK_SECRET" in message


def test_the_sandbox_without_a_key_keeps_its_easy_development_defaults() -> None:
    settings(
        codat_api_key=None,
        public_base_url="http://192.168.1.20:8000",
        ops_api_token=SecretStr("short"),
        connect_token_secret=None,
    ).check()


def test_serve_refuses_a_placeholder_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "CODAT_API_KEY": "k3y-real-codat-api-key-0123456789",
        "PUBLIC_BASE_URL": "https://bankfeeds.example.com",
        "CONNECT_TOKEN_SECRET": "change-me-connect-token-secret",
        "OPS_API_TOKEN": "change-me-ops-api-token",
        "CODAT_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
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
    assert len(lines) == 1
    assert "CONNECT_TOKEN_SECRET" in lines[0]
    assert "change-me" not in lines[0]


def test_env_example_as_given_starts_on_the_sandbox_and_is_refused_with_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    given = Settings(_env_file=example)  # type: ignore[call-arg]
    given.check()
    assert given.hosts_allowed[0] == "127.0.0.1"
    assert given.docs_mode == "public" and not given.connect_reusable_tokens
    keyed = given.model_copy(update={"codat_api_key": SecretStr("k3y-real-codat-0123456789")})
    with pytest.raises(ConfigurationError, match="CONNECT_TOKEN_SECRET: it is not set"):
        keyed.check()


def test_doctor_agrees_that_a_short_ops_token_is_refused_with_a_key() -> None:
    from app.doctor import _secret

    short = settings(ops_api_token=SecretStr("opsT0ken-9f8e7d6c5b4a3f2e1d"))
    check = _secret(short, "ops_api_token", "make a longer one")
    assert not check.ok and "32 characters" in check.line()
    assert _secret(settings(), "ops_api_token", "").ok

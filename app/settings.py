"""Service settings, read from the environment (and `.env`), documented in `.env.example`."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_MOUNT = "/sandbox/codat"
PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "replace-me", "xxx", "example")
DEV_SECRETS_FILE = Path("var/dev-secrets.json")
# The settings that are secrets: required in production, never shown (`app.logs`).
SECRET_SETTINGS = ("codat_api_key", "connect_token_secret", "ops_api_token", "codat_webhook_secret")
# Secrets the service itself checks with: long enough that guessing is hopeless.
MIN_SECRET_LENGTH = 32
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]+={0,2}")


class AppEnv(StrEnum):
    development = "development"
    production = "production"


class ConfigurationError(RuntimeError):
    """The service refuses to start; the message is one line saying why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: AppEnv = AppEnv.development
    database_url: str = "sqlite+aiosqlite:///./var/bankfeeds.db"
    codat_api_key: SecretStr | None = None
    codat_base_url: str = "https://api.codat.io"
    codat_link_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["link-api.codat.io"]
    )
    public_base_url: str = "http://127.0.0.1:8000"
    connect_token_secret: SecretStr | None = None
    ops_api_token: SecretStr | None = None
    codat_webhook_secret: SecretStr | None = None

    # The production surface (docs/security.md). ALLOWED_HOSTS: the Host names this service
    # answers for (default: PUBLIC_BASE_URL's host and loopback). FORWARDED_ALLOW_IPS: the proxy
    # addresses whose X-Forwarded-* headers are believed. API_DOCS: /docs, /redoc and
    # /openapi.json for everyone (`public`), behind the ops token (`ops`) or not at all (`off`);
    # default `public` on the sandbox, `ops` when a Codat key is set.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"]
    )
    api_docs: Literal["public", "ops", "off"] | None = None

    # Connect links: the origins of the host app's pages whose form may POST a token (the
    # service's own origin is always one), whether tokens without a `jti` are accepted (weaker:
    # such a link works again and again until it expires), and how many clicks a customer
    # may make in a minute.
    host_app_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    connect_reusable_tokens: bool = False
    connect_clicks_per_minute: int = Field(default=10, ge=1)

    # Bulk import over HTTP: at most this many rows a request (`bankfeeds import` has no cap).
    import_max_rows: int = Field(default=10_000, ge=1)

    # Codat client behaviour
    codat_timeout_seconds: float = 10.0
    codat_max_connections: int = 20
    connect_retry_budget_seconds: float = 4.0
    background_retry_budget_seconds: float = 30.0

    # Link page callout (the sandbox shows it; Codat's is set in the Portal)
    link_callout_title_en: str | None = None
    link_callout_body_en: str | None = None
    link_callout_title_fr: str | None = None
    link_callout_body_fr: str | None = None

    # Background reconciler
    reconciler_enabled: bool = True
    reconciler_interval_seconds: float = 30.0
    reconciler_budget_per_minute: int = 60
    reconciler_pending_interval_seconds: float = Field(default=15.0, gt=0)
    reconciler_pending_window_seconds: float = Field(default=3600.0, ge=0)
    reconciler_linked_interval_seconds: float = Field(default=21600.0, gt=0)
    # Background work's share of Codat's daily quota, counted across replicas; clicks get the rest.
    reconciler_quota_share: float = Field(default=0.25, gt=0, le=1)
    reconciler_poll_while_webhooks_healthy: bool = False

    # The transaction feed: pushes to Codat, coalesced after arrival and at least daily.
    transactions_push_enabled: bool = True
    transactions_push_delay_seconds: float = Field(default=60.0, ge=0)
    transactions_history_days: int = Field(default=7, ge=1, le=90)
    transactions_timezone: str = "UTC"  # the bank's: what "today" is for a cleared date
    transactions_poll_after_seconds: float = Field(default=300.0, gt=0)
    # Accounts pushed at once; at most Codat's 10 concurrent requests per company, and never
    # more than the Codat client's connections.
    transactions_push_concurrency: int = Field(default=8, ge=1, le=10)

    # Provisioning ahead of the click: a US/CA customer's company, connection and accounts are
    # made in Codat in the background (within the quota share), so a first click costs 1 call.
    provision_ahead: bool = False

    # Webhook inbox worker and where background work runs: `in-process` in each service
    # process, `off` to leave it to `bankfeeds worker` (several web replicas).
    background_workers: Literal["in-process", "off"] = "in-process"
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    sandbox_disconnect_delay_seconds: float | None = None  # None: the sandbox's own default

    # Events for the host app: how often to look for due deliveries, how long to wait for an
    # endpoint's answer, and the backoff between attempts (within 24 hours).
    event_poll_seconds: float = Field(default=1.0, gt=0)
    event_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    event_retry_base_seconds: float = Field(default=5.0, gt=0)
    event_retry_max_seconds: float = Field(default=3600.0, gt=0)

    # Observability: log lines as text or JSON objects; GET /metrics on the service's port
    # behind the ops token, or, with METRICS_PORT, on a port of its own without a token.
    log_format: Literal["text", "json"] = "text"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    _secrets_from_dev_file: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @field_validator("transactions_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator(
        "codat_link_hosts",
        "allowed_hosts",
        "forwarded_allow_ips",
        "host_app_origins",
        mode="before",
    )
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [h.strip() for h in text.split(",") if h.strip()]
        return value

    @field_validator(
        *SECRET_SETTINGS,
        "link_callout_title_en",
        "link_callout_body_en",
        "link_callout_title_fr",
        "link_callout_body_fr",
        "metrics_port",
        "api_docs",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_base_url", "codat_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def sandbox_mode(self) -> bool:
        return self.codat_api_key is None or not self.codat_api_key.get_secret_value()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def codat_url(self) -> str:
        """Where the Codat client sends requests: the built-in sandbox in sandbox mode."""
        if self.sandbox_mode:
            return self.public_base_url + SANDBOX_MOUNT
        return self.codat_base_url

    @cached_property
    def codat_key(self) -> str:
        if self.sandbox_mode:
            return SANDBOX_API_KEY
        assert self.codat_api_key is not None
        return self.codat_api_key.get_secret_value()

    @cached_property
    def allowed_link_hosts(self) -> frozenset[str]:
        hosts = {h.lower() for h in self.codat_link_hosts}
        if self.sandbox_mode:
            hosts.add((urlsplit(self.public_base_url).hostname or "").lower())
        return frozenset(hosts)

    @property
    def strict(self) -> bool:
        """Talking to real Codat (a key is set) or in production: unsafe settings are refused."""
        return self.app_env is AppEnv.production or not self.sandbox_mode

    @cached_property
    def hosts_allowed(self) -> list[str]:
        """The Host names answered: ALLOWED_HOSTS, else PUBLIC_BASE_URL's host and loopback."""
        if self.allowed_hosts:
            return [h.lower() for h in self.allowed_hosts]
        public = (urlsplit(self.public_base_url).hostname or "").lower()
        return [public, *(h for h in LOOPBACK_HOSTS if h != public)]

    @cached_property
    def form_origins(self) -> frozenset[str]:
        """The origins whose pages may POST a connect token: the host app's and our own."""
        own = urlsplit(self.public_base_url)
        return frozenset(
            {f"{own.scheme}://{own.netloc}".lower()}
            | {o.rstrip("/").lower() for o in self.host_app_origins}
        )

    @property
    def docs_mode(self) -> Literal["public", "ops", "off"]:
        if self.api_docs is not None:
            return self.api_docs
        return "ops" if self.strict else "public"

    @property
    def ops_token_from_dev_file(self) -> bool:
        """The ops token was made for this machine (var/dev-secrets.json), not given."""
        return "ops_api_token" in self._secrets_from_dev_file

    def check(self) -> None:
        """Raise ConfigurationError with one line naming the setting if running would be
        unsafe: in production, or whenever a Codat key is set, whatever APP_ENV says."""
        production = self.app_env is AppEnv.production
        if production and self.sandbox_mode:
            raise ConfigurationError(
                "APP_ENV=production needs CODAT_API_KEY: refusing to run on the built-in sandbox"
            )
        if production and self.is_sqlite:
            raise ConfigurationError(
                "APP_ENV=production needs a Postgres DATABASE_URL: refusing to run on SQLite"
            )
        webhook = self.codat_webhook_secret
        if webhook is not None and not _is_webhook_secret(webhook.get_secret_value()):
            raise ConfigurationError(
                "CODAT_WEBHOOK_SECRET must be Codat's signing secret: whsec_ then base64"
            )
        if not self.strict:
            return
        why = "APP_ENV=production" if production else "with CODAT_API_KEY set, the service"
        for name in SECRET_SETTINGS:
            value: SecretStr | None = getattr(self, name)
            if value is None or not value.get_secret_value().strip():
                raise ConfigurationError(f"{why} needs {name.upper()}: it is not set")
            secret = value.get_secret_value()
            if is_placeholder(secret):
                raise ConfigurationError(f"{why} needs {name.upper()}: it is still a placeholder")
            if name in ("connect_token_secret", "ops_api_token") and len(secret) < (
                MIN_SECRET_LENGTH
            ):
                raise ConfigurationError(
                    f"{why} needs {name.upper()} of at least {MIN_SECRET_LENGTH} characters"
                )
        for name in ("public_base_url", "codat_base_url"):
            parts = urlsplit(getattr(self, name))
            # Codat itself is https; a stand-in for it may sit on this machine or, given by
            # its private address, on the same private network (the container check's).
            plain_ok = _is_loopback(parts.hostname) or (
                name == "codat_base_url" and _is_private_address(parts.hostname)
            )
            if parts.scheme != "https" and not (parts.scheme == "http" and plain_ok):
                raise ConfigurationError(
                    f"{why} needs an https {name.upper()} (plain http only on loopback)"
                )
        if "*" in self.forwarded_allow_ips:
            raise ConfigurationError(
                f"{why} needs FORWARDED_ALLOW_IPS to list the proxies' addresses, not *"
            )

    def secret_values(self) -> list[str]:
        """The values of the secrets that are set."""
        secrets = (getattr(self, name) for name in SECRET_SETTINGS)
        return [s.get_secret_value() for s in secrets if s is not None]

    def with_dev_secrets(self) -> Settings:
        """In development, fill missing secrets from `var/dev-secrets.json` (made on first run)."""
        if self.app_env is AppEnv.production:
            return self
        missing = [
            n
            for n in SECRET_SETTINGS
            # Never a made-up Codat key: without one, the sandbox stands in for Codat.
            if n != "codat_api_key" and getattr(self, n) is None
        ]
        if not missing:
            return self
        stored: dict[str, str] = {}
        if DEV_SECRETS_FILE.exists():
            stored = json.loads(DEV_SECRETS_FILE.read_text())
        generated = {
            "connect_token_secret": secrets.token_urlsafe(32),
            "ops_api_token": "ops_" + secrets.token_urlsafe(24),
            "codat_webhook_secret": "whsec_" + _b64(secrets.token_bytes(24)),
        }
        changed = False
        for name in missing:
            if name not in stored:
                stored[name] = generated[name]
                changed = True
        if changed:
            DEV_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
            DEV_SECRETS_FILE.write_text(json.dumps(stored, indent=2))
            DEV_SECRETS_FILE.chmod(0o600)
        filled = self.model_copy(update={n: SecretStr(stored[n]) for n in missing})
        filled._secrets_from_dev_file = frozenset(missing)
        return filled


def is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return len(value) < 16 or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def _is_webhook_secret(value: str) -> bool:
    if not _WEBHOOK_SECRET.fullmatch(value):
        return False
    try:
        base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    return True


def _is_loopback(host: str | None) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _is_private_address(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False  # a name could resolve anywhere
    return address.is_private and not address.is_link_local


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def load_settings() -> Settings:
    return Settings().with_dev_secrets()

"""How a sandbox is set up: the API key it accepts, where it lives, where it sends webhooks."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from app.sandbox.faults import FaultConfig

CALLOUT_TITLE_MAX = 50
CALLOUT_BODY_MAX = 150
# Tags, entities, Markdown links and emphasis: the Portal accepts plain text only.
_MARKUP = re.compile(r"<|>|&[#a-zA-Z0-9]+;|\]\(|\*\*|__")


@dataclass(frozen=True)
class Callout:
    title: str
    body: str


@dataclass(frozen=True)
class SandboxConfig:
    api_key: str
    public_url: str
    webhook_url: str | None = None
    webhook_secret: str | None = None
    callout_title_en: str | None = None
    callout_body_en: str | None = None
    callout_title_fr: str | None = None
    callout_body_fr: str | None = None
    # Codat takes 10 days to mark a source account disconnected; the sandbox compresses it.
    disconnect_delay: timedelta = timedelta(seconds=20)
    return_url: str | None = None
    # How long Codat takes to process a create-bank-transactions write (Pending until then).
    push_delay: timedelta = timedelta(seconds=1)
    webhook_transport: httpx.AsyncBaseTransport | None = None
    webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)
    # As Svix allows: each message is held a random 0..webhook_max_delay seconds, so they
    # arrive out of order, and a delivered one is sent again at `webhook_duplicate_rate`.
    webhook_max_delay: float = 0.05
    webhook_duplicate_rate: float = 0.2
    webhook_seed: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)  # none unless asked for

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def sends_webhooks(self) -> bool:
        return bool(self.webhook_url and self.webhook_secret)

    def callout(self, lang: str) -> Callout | None:
        """The callout for a page language, falling back to English when French is not set."""
        if lang == "fr" and self.callout_title_fr:
            return Callout(self.callout_title_fr, self.callout_body_fr or "")
        if self.callout_title_en:
            return Callout(self.callout_title_en, self.callout_body_en or "")
        return None

    def validate(self) -> None:
        """Raise ValueError naming the first setting that a real Codat account could not have."""
        if not self.api_key:
            raise ValueError("SandboxConfig.api_key must not be empty")
        _require_http_url("public_url", self.public_url)
        if self.webhook_url is not None:
            _require_http_url("webhook_url", self.webhook_url)
        if self.webhook_secret is not None:
            webhook_signing_key(self.webhook_secret)
        if self.return_url is not None:
            _require_http_url("return_url", self.return_url)
        if self.disconnect_delay < timedelta(0):
            raise ValueError("SandboxConfig.disconnect_delay must not be negative")
        if self.push_delay < timedelta(0):
            raise ValueError("SandboxConfig.push_delay must not be negative")
        if any(delay < 0 for delay in self.webhook_retry_delays):
            raise ValueError("SandboxConfig.webhook_retry_delays must not be negative")
        if self.webhook_max_delay < 0:
            raise ValueError("SandboxConfig.webhook_max_delay must not be negative")
        if not 0 <= self.webhook_duplicate_rate <= 1:
            raise ValueError("SandboxConfig.webhook_duplicate_rate must be between 0 and 1")
        for lang in ("en", "fr"):
            _validate_callout(
                lang,
                getattr(self, f"callout_title_{lang}"),
                getattr(self, f"callout_body_{lang}"),
            )


def webhook_signing_key(secret: str) -> bytes:
    """The HMAC key inside a Standard Webhooks `whsec_<base64>` secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("SandboxConfig.webhook_secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("SandboxConfig.webhook_secret is not valid base64 after whsec_") from exc
    if not key:
        raise ValueError("SandboxConfig.webhook_secret has an empty key")
    return key


def _require_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"SandboxConfig.{name} must be an absolute http(s) URL, got {value!r}")


def _validate_callout(lang: str, title: str | None, body: str | None) -> None:
    # Codat's Portal refuses what its Link page cannot show: a half callout, long or rich text.
    if not title and not body:
        return
    if not title:
        raise ValueError(f"Link callout ({lang}): a body needs a title")
    if not body:
        raise ValueError(f"Link callout ({lang}): a title needs a body")
    if len(title) > CALLOUT_TITLE_MAX:
        raise ValueError(
            f"Link callout ({lang}): title is {len(title)} characters, "
            f"at most {CALLOUT_TITLE_MAX} allowed"
        )
    if len(body) > CALLOUT_BODY_MAX:
        raise ValueError(
            f"Link callout ({lang}): body is {len(body)} characters, "
            f"at most {CALLOUT_BODY_MAX} allowed"
        )
    for part, text in (("title", title), ("body", body)):
        if _MARKUP.search(text):
            raise ValueError(
                f"Link callout ({lang}): {part} must be plain text, without HTML or markup"
            )
        if part == "title" and ("\n" in text or "\r" in text):
            raise ValueError(f"Link callout ({lang}): title must be a single line")

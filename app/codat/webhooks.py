"""Codat's webhooks as they arrive: the Standard Webhooks signature (Codat sends through Svix),
checked on the raw body with the `standardwebhooks` library, then the envelope and the payloads
we act on, with Link URLs scrubbed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, TypeAdapter, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.codat.models import (
    CodatDateTime,
    Connection,
    Lenient,
    LenientStr,
    OptionalStr,
    SourceAccount,
)

MAX_EVENT_TYPE = 100
MAX_WEBHOOK_ID = 128
# Link URLs carry one-time passwords: they are never stored, so never shown or logged.
SCRUBBED_KEYS = frozenset({"linkUrl", "redirect"})
_DATETIME = TypeAdapter(CodatDateTime)
SECRET_PREFIX = "whsec_"
# Codat's headers, and the svix-* spelling its library also accepts.
_HEADER_NAMES = {
    "id": ("webhook-id", "svix-id"),
    "timestamp": ("webhook-timestamp", "svix-timestamp"),
    "signature": ("webhook-signature", "svix-signature"),
}


class WebhookRejected(Exception):
    """The delivery is not acted on; `status_code` is what the sender gets."""

    status_code = 401


class MissingHeaders(WebhookRejected):
    status_code = 400


class BadSignature(WebhookRejected):
    """A wrong or unreadable signature, or a timestamp more than 5 minutes off."""


class MalformedEnvelope(WebhookRejected):
    """The body is not a Codat webhook envelope."""

    status_code = 400


class InvalidSecret(ValueError):
    """CODAT_WEBHOOK_SECRET is not `whsec_<base64>`: a configuration error, not the sender's."""


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: str
    signatures: str


def signing_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret (checked strictly: the library would
    skip characters that are not base64)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the webhook secret is not whsec_<base64>") from None
    if not key:
        raise InvalidSecret("the webhook secret has an empty key")
    return key


def signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    found: dict[str, str] = {}
    for field, names in _HEADER_NAMES.items():
        value = next((headers[n] for n in names if headers.get(n)), None)
        if value is None or not value.strip():
            raise MissingHeaders(f"missing {names[0]} header")
        found[field] = value.strip()
    return SignedHeaders(found["id"], found["timestamp"], found["signature"])


def verify(key: bytes, headers: Mapping[str, str], body: bytes) -> str:
    """Check a delivery; return its `webhook-id`. Raises a `WebhookRejected` subclass."""
    signed = signed_headers(headers)
    try:
        # The library signs text: a body that is not UTF-8 cannot be a Codat envelope.
        text = body.decode()
    except UnicodeDecodeError:
        raise MalformedEnvelope("the body is not UTF-8 JSON") from None
    standard = {
        "webhook-id": signed.webhook_id,
        "webhook-timestamp": signed.timestamp,
        "webhook-signature": " ".join(signed.signatures.split()),
    }
    try:
        Webhook(key).verify(text, standard, json_parse=False)
    except WebhookVerificationError as exc:
        raise BadSignature(_reason(str(exc))) from None
    except ValueError:  # a signature entry that is not `version,base64`
        raise BadSignature("no matching signature") from None
    return signed.webhook_id


def _reason(library_message: str) -> str:
    if "timestamp" in library_message.lower() or "headers" in library_message.lower():
        return "webhook-timestamp is missing, not a unix time or more than 5 minutes off"
    return "no matching signature"


# --- the envelope -------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    event_type: str
    generated_date: datetime | None
    payload: dict[str, Any]
    company_id: str | None


def read_delivery(key: bytes, headers: Mapping[str, str], body: bytes) -> tuple[str, Envelope]:
    """A verified delivery's `webhook-id` and envelope. Raises a `WebhookRejected` subclass."""
    webhook_id = verify(key, headers, body)
    if len(webhook_id) > MAX_WEBHOOK_ID:
        raise MalformedEnvelope("webhook-id is too long")
    return webhook_id, parse_envelope(body)


def parse_envelope(body: bytes) -> Envelope:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can parse
        raise MalformedEnvelope("the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEnvelope("the body is not a JSON object")
    event_type = data.get("eventType")
    if not isinstance(event_type, str) or not event_type.strip():
        raise MalformedEnvelope("eventType is missing")
    if len(event_type) > MAX_EVENT_TYPE:
        raise MalformedEnvelope("eventType is too long")
    payload = data.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise MalformedEnvelope("payload is not a JSON object")
    payload = scrub(payload)
    return Envelope(
        event_type=event_type.strip(),
        generated_date=_datetime_or_none(data.get("generatedDate")),
        payload=payload,
        company_id=_company_id(payload),
    )


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in SCRUBBED_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _datetime_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _DATETIME.validate_python(value)
    except ValidationError:
        return None


def _company_id(payload: dict[str, Any]) -> str | None:
    reference = payload.get("referenceCompany")
    if isinstance(reference, dict) and isinstance(reference.get("id"), str):
        return str(reference["id"])[:64]
    legacy = payload.get("companyId")
    return legacy[:64] if isinstance(legacy, str) else None


# --- the payloads we act on, read leniently with the client's models ----------------------


class CompanyReference(Lenient):
    id: str


class ConnectionPayload(Lenient):
    """connection.created / connected / disconnected / reconnected / failed / deleted."""

    reference_company: CompanyReference | None = Field(default=None, alias="referenceCompany")
    connection: Connection

    @property
    def company_id(self) -> str | None:
        return self.reference_company.id if self.reference_company else None

    def failure_summary(self) -> str:
        """The first of the connection's `dataConnectionErrors`, for a log line."""
        errors = (self.connection.model_extra or {}).get("dataConnectionErrors")
        if not isinstance(errors, list) or not errors:
            return "no error details"
        parts = []
        for error in errors[:3]:
            if isinstance(error, dict):
                code = str(error.get("statusCode") or "")[:10]
                text = str(error.get("errorMessage") or error.get("statusText") or "")[:200]
                parts.append(f"{code} {text}".strip())
        return "; ".join(parts) or "no error details"


class SourceAccountPayload(Lenient):
    """bankFeeds.sourceAccount.connected / disconnected.

    Since 2025-01-10: `referenceCompany`, `connectionId`, `sourceAccount`. Before: `companyId`
    and the account under `bankAccount`.
    """

    reference_company: CompanyReference | None = Field(default=None, alias="referenceCompany")
    legacy_company_id: str | None = Field(default=None, alias="companyId")
    connection_id: str | None = Field(default=None, alias="connectionId")
    source_account: SourceAccount | None = Field(default=None, alias="sourceAccount")
    bank_account: SourceAccount | None = Field(default=None, alias="bankAccount")

    @property
    def company_id(self) -> str | None:
        return self.reference_company.id if self.reference_company else self.legacy_company_id

    @property
    def account(self) -> SourceAccount | None:
        return self.source_account or self.bank_account


class CompanyPayload(Lenient):
    """company.created / company.deleted: Codat's `companyDetails`."""

    id: LenientStr


class RateLimitPayload(Lenient):
    """client.rateLimit.reached / reset."""

    daily_quota: int | None = Field(default=None, alias="dailyQuota")
    quota_remaining: int | None = Field(default=None, alias="quotaRemaining")
    expiry_date: CodatDateTime | None = Field(default=None, alias="expiryDate")


class WritePayload(Lenient):
    """{dataType}.write.successful / unsuccessful: `id` is the push operation's key."""

    id: LenientStr
    reference_company: CompanyReference | None = Field(default=None, alias="referenceCompany")
    connection_id: OptionalStr = Field(default=None, alias="connectionId")
    status: OptionalStr = None  # Pending, Failed, Success, TimedOut
    type: OptionalStr = None
    completed_date: CodatDateTime | None = Field(default=None, alias="completedDate")

    @property
    def company_id(self) -> str | None:
        return self.reference_company.id if self.reference_company else None

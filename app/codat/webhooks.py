"""Standard Webhooks signatures, as Codat (Svix) sends them, checked on the raw body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

TOLERANCE_SECONDS = 5 * 60
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
    pass


class BadTimestamp(WebhookRejected):
    pass


class InvalidSecret(ValueError):
    """CODAT_WEBHOOK_SECRET is not `whsec_<base64>`: a configuration error, not the sender's."""


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: str
    signatures: str


def signing_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the webhook secret is not whsec_<base64>") from None
    if not key:
        raise InvalidSecret("the webhook secret has an empty key")
    return key


def sign(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` (no `v1,` prefix)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    found: dict[str, str] = {}
    for field, names in _HEADER_NAMES.items():
        value = next((headers[n] for n in names if headers.get(n)), None)
        if value is None or not value.strip():
            raise MissingHeaders(f"missing {names[0]} header")
        found[field] = value.strip()
    return SignedHeaders(found["id"], found["timestamp"], found["signature"])


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """Check a delivery; return its `webhook-id`. Raises a `WebhookRejected` subclass."""
    signed = signed_headers(headers)
    try:
        sent_at = int(signed.timestamp)
    except ValueError:
        raise BadTimestamp("webhook-timestamp is not a unix time") from None
    if abs(now.timestamp() - sent_at) > TOLERANCE_SECONDS:
        raise BadTimestamp("webhook-timestamp is more than 5 minutes off")
    expected = sign(key, signed.webhook_id, signed.timestamp, body).encode()
    matched = False
    for candidate in signed.signatures.split():
        version, _, value = candidate.partition(",")
        # Compare every candidate, so timing says nothing about which one matched.
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            matched = True
    if not matched:
        raise BadSignature("no matching signature")
    return signed.webhook_id

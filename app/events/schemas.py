"""The events API's bodies: endpoints, their secrets, and deliveries."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.events.catalog import EventType

MAX_URL = 2000
DeliveryStatus = Literal["pending", "delivered", "failed"]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str) -> str:
    """The host app's own URL: https, or http on loopback only; no credentials in it."""
    if len(url) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must use https (http is accepted only for loopback addresses)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return url


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Where events are POSTed: https, or http only on a loopback address. "
        "Redirects are never followed.",
        examples=["https://bank.example/hooks/bankfeeds"],
    )
    event_types: list[EventType] = Field(min_length=1, description="The event types to send.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_endpoint_url(value)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class EndpointOut(BaseModel):
    name: str
    url: str
    event_types: list[str]
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="Until then, events are also signed with the secret before the last rotation."
    )
    secret: str | None = Field(
        default=None,
        description="The whsec_ signing secret: only in the answer that creates the endpoint.",
    )


class EndpointList(BaseModel):
    endpoints: list[EndpointOut]


class SecretOut(BaseModel):
    name: str
    secret: str = Field(description="The new whsec_ signing secret, shown this once.")
    previous_secret_expires_at: datetime = Field(
        description="Until then events carry a signature with the old secret too."
    )


class DeliveryOut(BaseModel):
    id: int
    endpoint_name: str
    event_id: str
    event_type: str
    customer_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    deliver_until: datetime
    created_at: datetime
    event: dict[str, Any] = Field(description="The event as sent: id, type, timestamp, data.")


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]

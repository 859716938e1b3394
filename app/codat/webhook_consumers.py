"""Codat's webhook consumers (Platform API, `/webhooks`): the endpoints Codat delivers events to,
each subscribed to a list of event types. Codat has no update: a consumer is replaced by
creating the new one and deleting the old."""

from __future__ import annotations

from pydantic import Field

from app.codat.models import Lenient, Strict


class WebhookConsumer(Lenient):
    id: str
    url: str
    disabled: bool | None = False
    event_types: list[str] = Field(default_factory=list, alias="eventTypes")
    company_tags: list[str] | None = Field(default=None, alias="companyTags")


class WebhookConsumers(Lenient):
    results: list[WebhookConsumer] = Field(default_factory=list)


class WebhookConsumerCreate(Strict):
    url: str
    event_types: list[str] = Field(alias="eventTypes", min_length=1)
    disabled: bool = False

"""Codat's webhook consumers (Platform API `/webhooks`): list, create, delete.

The sandbox delivers an event to its configured webhook URL only while an enabled consumer for
that URL subscribes to the event's type. The configured URL starts with a consumer subscribed to
every event type, as an endpoint set up in the Portal with no filter would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.sandbox.errors import CodatError, FieldError, not_found
from app.sandbox.state import new_id
from app.sandbox.validation import INVALID_BODY, parse_json
from app.sandbox.wire import Json

MAX_CONSUMERS = 50
MAX_COMPANY_TAGS = 10
MAX_COMPANY_TAG_LENGTH = 128
FIELDS = ("url", "disabled", "eventTypes", "companyTags")
# The data types whose writes Codat announces (`{dataType}.write.successful/unsuccessful`).
WRITE_DATA_TYPES = (
    "bankAccounts", "bankTransactions", "billCreditNotes", "billPayments", "bills",
    "chartOfAccounts", "creditNotes", "customers", "directCosts", "directIncomes", "invoices",
    "items", "journalEntries", "journals", "payments", "purchaseOrders", "suppliers", "transfers",
)  # fmt: skip
# Every event type in the `webhooks` of Codat's Platform and Bank Feeds specs.
EVENT_TYPES = frozenset(
    {
        "company.created",
        "company.deleted",
        "company.product.added",
        "company.product.removed",
        "connection.created",
        "connection.connected",
        "connection.failed",
        "connection.disconnected",
        "connection.reconnected",
        "connection.deleted",
        "read.completed",
        "read.completed.initial",
        "client.rateLimit.reached",
        "client.rateLimit.reset",
        "bankFeeds.sourceAccount.connected",
        "bankFeeds.sourceAccount.disconnected",
    }
    | {f"{t}.write.{result}" for t in WRITE_DATA_TYPES for result in ("successful", "unsuccessful")}
)


@dataclass
class Consumer:
    id: str
    url: str
    event_types: list[str]
    disabled: bool = False
    company_tags: list[str] | None = None

    def json(self) -> Json:
        return {
            "id": self.id,
            "url": self.url,
            "disabled": self.disabled,
            "eventTypes": list(self.event_types),
            "companyTags": list(self.company_tags) if self.company_tags is not None else None,
        }


@dataclass
class WebhookConsumers:
    consumers: dict[str, Consumer] = field(default_factory=dict)

    @classmethod
    def configured(cls, webhook_url: str | None) -> WebhookConsumers:
        """The consumers of a new sandbox: one for its webhook URL, taking every event type."""
        found = cls()
        if webhook_url is not None:
            found.add(Consumer(new_id(), webhook_url, sorted(EVENT_TYPES)))
        return found

    def add(self, consumer: Consumer) -> Consumer:
        if len(self.consumers) >= MAX_CONSUMERS:
            raise CodatError(
                400,
                f"The maximum number of webhook consumers ({MAX_CONSUMERS}) has been reached. "
                "Delete an unused consumer first.",
            )
        self.consumers[consumer.id] = consumer
        return consumer

    def delete(self, consumer_id: str) -> None:
        if self.consumers.pop(consumer_id, None) is None:
            raise not_found("Webhook consumer", consumer_id)

    def wants(self, url: str | None, event_type: str) -> bool:
        """Whether an enabled consumer for `url` subscribes to `event_type` (no company tags:
        the sandbox's events are for every company)."""
        return any(
            c.url == url and not c.disabled and not c.company_tags and event_type in c.event_types
            for c in self.consumers.values()
        )


def consumer_request(body: object) -> Consumer:
    """A create body as Codat checks it; every fault is named in one 400."""
    errors: list[FieldError] = []

    def fail(item: str, message: str, validator: str) -> None:
        errors.append(FieldError(item, message, validator))

    if not isinstance(body, dict):
        raise CodatError(400, INVALID_BODY, [FieldError("", "The body must be an object.", "Type")])
    for key in body:
        if key not in FIELDS:
            fail(key, f"'{key}' is not a property of a webhook consumer.", "UnknownField")
    url = body.get("url")
    if url is None:
        fail("url", "'url' is required.", "Required")
    elif not isinstance(url, str) or not _is_http_url(url):
        fail("url", "'url' must be an absolute http(s) URL.", "Uri")
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        fail("disabled", "'disabled' must be a boolean.", "Type")
    event_types = body.get("eventTypes")
    if event_types is None:
        fail("eventTypes", "'eventTypes' is required.", "Required")
    elif not isinstance(event_types, list) or not event_types:
        fail("eventTypes", "'eventTypes' must be a non-empty array of event types.", "Type")
    else:
        for n, event_type in enumerate(event_types):
            if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
                fail(f"eventTypes[{n}]", f"{event_type!r} is not a Codat event type.", "Enum")
            elif event_types.index(event_type) != n:
                fail(f"eventTypes[{n}]", f"{event_type!r} is listed twice.", "Unique")
    tags = body.get("companyTags")
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > MAX_COMPANY_TAGS:
            fail("companyTags", f"'companyTags' holds at most {MAX_COMPANY_TAGS} tags.", "Type")
        else:
            for n, tag in enumerate(tags):
                if (
                    not isinstance(tag, str)
                    or len(tag) > MAX_COMPANY_TAG_LENGTH
                    or ":" not in tag.strip(":")
                ):
                    fail(f"companyTags[{n}]", "A company tag is 'tagKey:tagValue'.", "Pattern")
    if errors:
        raise CodatError(400, INVALID_BODY, errors)
    assert isinstance(url, str) and isinstance(event_types, list)
    return Consumer(
        id=new_id(),
        url=url,
        event_types=[str(t) for t in event_types],
        disabled=bool(disabled),
        company_tags=[str(t) for t in tags] if isinstance(tags, list) else None,
    )


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and value == value.strip()


router = APIRouter()


def _consumers(request: Request) -> WebhookConsumers:
    consumers: WebhookConsumers = request.app.state.sandbox.webhook_consumers
    return consumers


@router.get("/webhooks")
async def list_webhook_consumers(request: Request) -> JSONResponse:
    consumers = _consumers(request).consumers.values()
    return JSONResponse({"results": [c.json() for c in consumers]})


@router.post("/webhooks")
async def create_webhook_consumer(request: Request) -> JSONResponse:
    consumer = consumer_request(parse_json(await request.body()))
    _consumers(request).add(consumer)
    return JSONResponse(consumer.json(), status_code=201)


@router.delete("/webhooks/{webhookId}")
async def delete_webhook_consumer(request: Request) -> Response:
    _consumers(request).delete(request.path_params["webhookId"])
    return Response(status_code=204)

"""The webhook consumer this service needs at Codat: one for its URL, enabled, for every company,
subscribed to exactly the event types it handles (`handlers.HANDLERS`). `set_up` makes it so;
`read_subscription` says what is there (for `bankfeeds doctor`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.codat.client import CodatClient
from app.codat.webhook_consumers import WebhookConsumer
from app.webhooks.handlers import HANDLERS

NEEDED_EVENT_TYPES: tuple[str, ...] = tuple(sorted(HANDLERS))
RECEIVER_PATH = "/webhooks/codat"


def same_url(a: str, b: str) -> bool:
    """Two spellings of one URL: scheme and host are case-blind, a trailing slash is noise."""

    def key(url: str) -> tuple[str, str, str, str]:
        parts = urlsplit(url.strip())
        return (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query)

    return key(a) == key(b)


def delivers_all(consumer: WebhookConsumer) -> bool:
    """Enabled and not filtered by company tags: it is sent every company's events."""
    return not consumer.disabled and not consumer.company_tags


@dataclass(frozen=True)
class Subscription:
    """The consumers Codat holds for one URL."""

    url: str
    consumers: Sequence[WebhookConsumer]

    def missing(self, consumer: WebhookConsumer) -> list[str]:
        return [t for t in NEEDED_EVENT_TYPES if t not in consumer.event_types]

    def best(self) -> WebhookConsumer | None:
        """The consumer closest to what is needed: delivering everything, then fewest missing."""
        if not self.consumers:
            return None
        return min(self.consumers, key=lambda c: (not delivers_all(c), len(self.missing(c))))

    def exact(self) -> WebhookConsumer | None:
        """A consumer that is exactly what the service needs, if there is one."""
        for consumer in self.consumers:
            if delivers_all(consumer) and sorted(set(consumer.event_types)) == sorted(
                NEEDED_EVENT_TYPES
            ):
                return consumer
        return None


async def read_subscription(codat: CodatClient, url: str) -> Subscription:
    consumers = await codat.list_webhook_consumers()
    return Subscription(url, [c for c in consumers if same_url(c.url, url)])


@dataclass
class SetupResult:
    consumer: WebhookConsumer
    created: bool
    deleted: list[WebhookConsumer] = field(default_factory=list)


async def set_up(codat: CodatClient, url: str) -> SetupResult:
    """Leave exactly one consumer for `url`, subscribed to exactly the needed event types.

    Codat cannot change a consumer: a wrong one is replaced (created anew, then the old one
    deleted), and the new one has a new signing secret. Running it again changes nothing.
    """
    subscription = await read_subscription(codat, url)
    keep = subscription.exact()
    created = keep is None
    if keep is None:
        keep = await codat.create_webhook_consumer(url, list(NEEDED_EVENT_TYPES))
    result = SetupResult(keep, created)
    for consumer in subscription.consumers:
        if consumer.id != keep.id:
            await codat.delete_webhook_consumer(consumer.id)
            result.deleted.append(consumer)
    return result

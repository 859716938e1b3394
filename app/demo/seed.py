"""Demo customers for sandbox mode: a few in the US and Canada, one elsewhere to show refusal.
The demo host app also registers itself for our events."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.catalog import EVENT_TYPES
from app.events.schemas import EndpointIn, check_endpoint_url
from app.events.service import EventService
from app.models import Customer, SourceAccount

log = logging.getLogger("app.demo")

DEMO_ENDPOINT = "demo-host-app"
DEMO_EVENTS_PATH = "/demo/events"

DEMO_CUSTOMERS = [
    (
        "demo-us-bakery",
        "Maple Street Bakery LLC",
        "US",
        "en",
        [
            ("us-bakery-chk", "Business Checking", "checking", "000123456789", "USD", "12450.32"),
            (
                "us-bakery-cc",
                "Business Rewards Card",
                "creditCard",
                "4111000011112222",
                "USD",
                "-842.17",
            ),
        ],
    ),
    (
        "demo-ca-boulangerie",
        "Boulangerie Saint-Laurent Inc",
        "CA",
        "fr",
        [
            ("ca-boul-chq", "Compte chèques entreprise", "checking", "00412345", "CAD", "8300.00"),
            ("ca-boul-epa", "Compte épargne", "savings", "00467890", "CAD", "25000.00"),
        ],
    ),
    (
        "demo-ca-outfitters",
        "Northern Lights Outfitters",
        "CA",
        "en",
        [
            ("ca-out-chk", "Operating Account", "checking", "00998877", "CAD", "0"),
        ],
    ),
    (
        "demo-gb-cafe",
        "Thames Riverside Cafe Ltd",
        "GB",
        "en",
        [
            ("gb-cafe-cur", "Business Current Account", "checking", "41234567", "GBP", "1520.00"),
        ],
    ),
]


async def seed_demo_customers(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Add the demo customers that are missing; never touch existing rows."""
    added = 0
    async with sessions() as session:
        existing = set((await session.execute(select(Customer.id))).scalars())
        for customer_id, name, country, locale, accounts in DEMO_CUSTOMERS:
            if customer_id in existing:
                continue
            session.add(Customer(id=customer_id, name=name, country=country, locale=locale))
            for account_id, account_name, account_type, number, currency, balance in accounts:
                session.add(
                    SourceAccount(
                        customer_id=customer_id,
                        id=account_id,
                        account_name=account_name,
                        account_type=account_type,
                        account_number=number,
                        currency=currency,
                        balance=Decimal(balance),
                        sort_code="40-12-34" if currency == "GBP" else None,
                    )
                )
            added += 1
        await session.commit()
    return added


async def register_demo_endpoint(events: EventService, public_base_url: str) -> bool:
    """Point the demo endpoint at this service's demo receiver, for every event type."""
    url = public_base_url + DEMO_EVENTS_PATH
    try:
        check_endpoint_url(url)
    except ValueError as exc:
        log.warning("the demo host app receives no events: its URL %s", exc)
        return False
    body = EndpointIn.model_validate({"url": url, "event_types": list(EVENT_TYPES)})
    await events.put_endpoint(DEMO_ENDPOINT, body)
    return True

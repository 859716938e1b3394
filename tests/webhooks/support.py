"""Signed Codat deliveries, payloads in Codat's shapes, and rows to deliver them against."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.codat.webhooks import sign, signing_key
from app.models import BankFeed, BankFeedConnection, CodatEvent, ServiceState, SourceAccount
from tests.conftest import WEBHOOK_SECRET, Service, _truncate, start_service
from tests.factories import add_customer

COMPANY = "0498e921-1b5c-4e4b-9b1e-3f0c7a9d2a11"
CONNECTION = "2e9d2c44-f675-40ba-8049-353bfcb5e171"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def running(
    database_url: str, *, fresh: bool = True, **overrides: Any
) -> AsyncIterator[Service]:
    """The service on `database_url` (emptied first unless `fresh=False`), stopped on exit."""
    if fresh:
        await _truncate(database_url)
    services = start_service(database_url, **overrides)
    try:
        yield await anext(services)
    finally:
        await services.aclose()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def codat_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope(event_type: str, payload: dict[str, Any], generated: datetime = T0) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "eventType": event_type,
        "generatedDate": codat_time(generated),
        "payload": payload,
    }


def signed_headers(
    body: bytes,
    *,
    webhook_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> dict[str, str]:
    webhook_id = webhook_id or "msg_" + uuid.uuid4().hex
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = sign(signing_key(secret), webhook_id, stamp, body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{signature}",
        "content-type": "application/json",
    }


async def deliver(
    client: httpx.AsyncClient, event: dict[str, Any], *, webhook_id: str | None = None
) -> httpx.Response:
    body = json.dumps(event).encode()
    return await client.post(
        "/webhooks/codat", content=body, headers=signed_headers(body, webhook_id=webhook_id)
    )


def reference_company(company_id: str = COMPANY) -> dict[str, Any]:
    return {
        "id": company_id,
        "name": "Acme Plumbing LLC",
        "description": None,
        "links": {"portal": f"https://app.codat.io/companies/{company_id}/summary"},
    }


def connection_payload(
    status: str, *, company_id: str = COMPANY, connection_id: str = CONNECTION, **extra: Any
) -> dict[str, Any]:
    connection = {
        "id": connection_id,
        "integrationId": "bf083d72-62c7-493e-aec9-81b4dbabfc2b",
        "integrationKey": "hcws",
        "sourceId": "8a156a5a-39cb-4f9d-856e-76ef9b9a9607",
        "platformName": "QuickBooks Online Bank Feeds",
        "sourceType": "BankFeed",
        "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/"
        f"{connection_id}/start?otp=731902",
        "status": status,
        "created": "2026-11-20T11:00:00Z",
        **extra,
    }
    return {"referenceCompany": reference_company(company_id), "connection": connection}


def account_payload(
    account_id: str,
    status: str,
    *,
    company_id: str = COMPANY,
    connection_id: str = CONNECTION,
    legacy: bool = False,
    feed_start: str | None = "2026-11-18",
) -> dict[str, Any]:
    account = {
        "id": account_id,
        "accountName": "Account 0",
        "accountType": "checking",
        "accountNumber": "1000000",
        "currency": "USD",
        "balance": 99.99,
        "modifiedDate": "2026-11-20T11:59:00Z",
        "status": status,
        "feedStartDate": feed_start,
    }
    if legacy:  # before 2025-01-10: unwrapped, `companyId` and `bankAccount`
        return {"companyId": company_id, "connectionId": connection_id, "bankAccount": account}
    return {
        "referenceCompany": reference_company(company_id),
        "companyId": company_id,
        "connectionId": connection_id,
        "sourceAccount": account,
    }


async def seed_feed(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: str = "cus-1",
    *,
    company_id: str = COMPANY,
    connection_id: str = CONNECTION,
    status: str = "PendingAuth",
    status_at: datetime = at(-3600),
    accounts: int = 2,
) -> None:
    """A customer whose accounts are in Codat (`pending`) on a current connection."""
    await add_customer(sessions, customer_id, accounts=accounts)
    async with sessions() as session:
        session.add(
            BankFeed(
                customer_id=customer_id,
                company_id=company_id,
                connection_id=connection_id,
                connection_status=status,
                connection_status_at=status_at,
                created_at=status_at,
                connection_requested_at=status_at,
            )
        )
        await session.flush()
        session.add(
            BankFeedConnection(
                connection_id=connection_id,
                customer_id=customer_id,
                company_id=company_id,
                status=status,
                created_at=status_at,
            )
        )
        for account in (
            await session.execute(
                select(SourceAccount).where(SourceAccount.customer_id == customer_id)
            )
        ).scalars():
            account.pushed_at = status_at
            account.pushed_account_name = account.account_name
            account.pushed_balance = account.balance
            account.codat_status = "pending"
            account.status_changed_at = status_at
        await session.commit()


async def events(sessions: async_sessionmaker[AsyncSession]) -> list[CodatEvent]:
    async with sessions() as session:
        return list((await session.execute(select(CodatEvent).order_by(CodatEvent.id))).scalars())


async def feed(sessions: async_sessionmaker[AsyncSession], customer_id: str = "cus-1") -> BankFeed:
    async with sessions() as session:
        return (
            await session.execute(select(BankFeed).where(BankFeed.customer_id == customer_id))
        ).scalar_one()


async def history(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = (await session.execute(select(BankFeedConnection))).scalars()
        return {r.connection_id: r.status for r in rows}


async def accounts(
    sessions: async_sessionmaker[AsyncSession], customer_id: str = "cus-1"
) -> dict[str, SourceAccount]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(SourceAccount).where(SourceAccount.customer_id == customer_id)
            )
        ).scalars()
        return {a.id: a for a in rows}


async def service_state(
    sessions: async_sessionmaker[AsyncSession], key: str
) -> dict[str, Any] | None:
    async with sessions() as session:
        row = await session.get(ServiceState, key)
        return None if row is None else dict(row.value)

"""Connected accounts for the transaction feed: made in the sandbox the way a customer makes them
(company, connection, accounts, then the Link page and QuickBooks), and mirrored into the
service's tables with COPY."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from bench.feed_stack import FeedStack
from bench.processes import BenchFailure
from bench.seed import (
    ACCOUNT_COLUMNS,
    CUSTOMER_COLUMNS,
    FEED_COLUMNS,
    FEED_CONNECTION_COLUMNS,
    ROUTING,
    account_fields,
)

SEED_WORKERS = 32
_USERNAME = re.compile(r'id="username">([^<]+)<')
_PASSWORD = re.compile(r'id="password">([^<]+)<')
_SESSION = re.compile(r'name="session" value="([^"]*)"')


@dataclass(frozen=True)
class ConnectedCompany:
    customer_id: str
    company_id: str
    connection_id: str
    account_ids: tuple[str, ...]


def _found(pattern: re.Pattern[str], html: str, what: str) -> str:
    match = pattern.search(html)
    if match is None:
        raise BenchFailure(f"the sandbox's QuickBooks pages did not show the {what}")
    return match.group(1)


def _ok(response: Any, what: str) -> Any:
    if response.status_code >= 300:
        raise BenchFailure(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
    return response


async def connect_company(
    stack: FeedStack, customer_id: str, accounts: int, start: date
) -> ConnectedCompany:
    """What a customer does, in the sandbox: every account connected from `start`."""
    codat = stack.codat
    company = _ok(await codat.post("/companies", json={"name": customer_id}), "company").json()
    connection = _ok(
        await codat.post(f"/companies/{company['id']}/connections", json={"platformKey": "hcws"}),
        "connection",
    ).json()
    base = f"/companies/{company['id']}/connections/{connection['id']}"
    drafts = [account_fields(i) for i in range(accounts)]
    for draft in drafts:
        draft["balance"] = float(draft["balance"])
    _ok(await codat.post(base + "/connectionInfo/bankFeedAccounts/batch", json=drafts), "accounts")
    link_url = connection["linkUrl"]
    otp = parse_qs(urlsplit(link_url).query)["otp"][0]
    link = urlsplit(link_url).path.rsplit("/", 1)[0]
    page = _ok(await codat.post(link + "/credentials", data={"otp": otp, "lang": "en"}), "link")
    credentials = {
        "username": _found(_USERNAME, page.text, "username"),
        "password": _found(_PASSWORD, page.text, "password"),
    }
    chosen = _ok(await codat.post("/qbo/sign-in", data=credentials), "sign-in")
    ids = tuple(d["id"] for d in drafts)
    session = _found(_SESSION, chosen.text, "session")
    form = {"session": session, "account": list(ids), "start_date": start.isoformat()}
    _ok(await codat.post("/qbo/connect", data=form), "connect")
    return ConnectedCompany(customer_id, company["id"], connection["id"], ids)


WRITE_EVENTS = ("bankTransactions.write.successful", "bankTransactions.write.unsuccessful")


async def subscribe_to_writes(stack: FeedStack) -> None:
    """The service's webhook consumer takes the write events only: the bench writes the
    service's bank feeds itself, so the connection events of its seeding would be noise."""
    url = stack.service_url + "/webhooks/codat"
    listed = _ok(await stack.codat.get("/webhooks"), "webhook consumers").json()["results"]
    for consumer in listed:
        _ok(await stack.codat.delete(f"/webhooks/{consumer['id']}"), "webhook consumer")
    body = {"url": url, "eventTypes": list(WRITE_EVENTS)}
    _ok(await stack.codat.post("/webhooks", json=body), "webhook consumer")


async def connect_companies(
    stack: FeedStack, customer_ids: list[str], accounts: int, start: date
) -> list[ConnectedCompany]:
    queue = iter(customer_ids)
    done: list[ConnectedCompany] = []

    async def worker() -> None:
        for customer_id in queue:
            done.append(await connect_company(stack, customer_id, accounts, start))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(SEED_WORKERS, len(customer_ids))):
            group.create_task(worker())
    return sorted(done, key=lambda c: c.customer_id)


async def mirror_into_service(dsn: str, companies: list[ConnectedCompany], start: date) -> None:
    """The service's rows for companies connected in the sandbox: linked, accounts connected."""
    now = datetime.now(UTC)
    customers, accounts, feeds, history = [], [], [], []
    for company in companies:
        customers.append((company.customer_id, f"Business {company.customer_id}", "US", "en",
                          now, now))  # fmt: skip
        for index, _ in enumerate(company.account_ids):
            fields = account_fields(index)
            accounts.append((
                company.customer_id, fields["id"], fields["accountName"], fields["accountType"],
                fields["accountNumber"], None, ROUTING, fields["currency"], fields["balance"],
                None, now, now, now, fields["accountName"], fields["balance"], "connected",
                start, now, now, None,
            ))  # fmt: skip
        feeds.append((
            company.customer_id, company.company_id, company.connection_id, "Linked", now, now,
            now, now, now, now, None, None, None, now, now,
        ))  # fmt: skip
        history.append(
            (company.connection_id, company.customer_id, company.company_id, "Linked", now, None)
        )
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for table, columns, rows in (
                ("customers", CUSTOMER_COLUMNS, customers),
                ("source_accounts", ACCOUNT_COLUMNS, accounts),
                ("bank_feeds", FEED_COLUMNS, feeds),
                ("bank_feed_connections", FEED_CONNECTION_COLUMNS, history),
            ):
                await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()

"""What the reliability proofs share: clicks, a sandbox process with flags, and the audit that
compares the sandbox (Codat) with the database after the dust settles."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.codat.client import InProcess
from app.connect.tokens import mint_connect_token
from app.db import utcnow
from app.models import (
    BankFeed,
    BankFeedConnection,
    BankTransaction,
    SourceAccount,
    TransactionFeed,
    TransactionPush,
)
from app.transactions.repository import OUTSTANDING
from app.transactions.schemas import TransactionIn
from tests.conftest import CONNECT_SECRET, WEBHOOK_SECRET
from tests.servers import (
    SANDBOX_KEY,
    Process,
    _spawn,
    against_sandbox,
    free_port,
    run_service,
    sandbox_headers,
    service_env,
)

_LINK_IDS = re.compile(r"/companies/([^/?#]+)/connections/([^/?#]+)/start")
CUSTOMER_TAG = "bankfeedsCustomerId"


def db_name(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


def connect_token(customer_id: str, **kwargs: Any) -> str:
    return mint_connect_token(CONNECT_SECRET, customer_id, **kwargs)


async def click(client: httpx.AsyncClient, customer_id: str, base: str = "") -> httpx.Response:
    """One customer click, as the host app's button does it (a fresh single-use token)."""
    return await client.get(
        base + "/connect-bank-feeds", params={"token": connect_token(customer_id)}
    )


def link_ids(location: str) -> tuple[str, str]:
    """The company and connection a Link URL (Codat's or the sandbox's) is for."""
    match = _LINK_IDS.search(urlsplit(location).path)
    assert match, f"not a Link URL: {location}"
    return match.group(1), match.group(2)


@contextmanager
def sandbox_process(workdir: Path, *flags: str) -> Iterator[Process]:
    """`bankfeeds sandbox` with extra flags (faults), in its own process; stopped on exit."""
    port = free_port()
    args = ["sandbox", "--port", str(port), "--api-key", SANDBOX_KEY, *flags]
    with _spawn(args, workdir, port, "sandbox", "/_sandbox/calls") as process:
        yield process


async def sandbox_admin(client: httpx.AsyncClient, sandbox: Process, what: str) -> Any:
    """`GET /_sandbox/{what}` on a sandbox process: "state", "calls" or "faults"."""
    response = await client.get(f"{sandbox.url}/_sandbox/{what}", headers=sandbox_headers())
    response.raise_for_status()
    return response.json()


def service_process(database_url: str, workdir: Path, env: dict[str, str]) -> Any:
    """`tests.servers.run_service` with its environment as a dict (a context manager)."""
    start: Any = run_service
    return start(database_url, workdir, **env)


# --- the audit -------------------------------------------------------------------------------


@dataclass
class Audit:
    """Codat's state against ours. Every list is a problem; a good run has them all empty."""

    customers: int = 0
    companies: int = 0
    connections: int = 0
    accounts: int = 0
    duplicate_companies: list[str] = field(default_factory=list)
    duplicate_connections: list[str] = field(default_factory=list)
    duplicate_accounts: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    leases_held: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def problems(self) -> dict[str, list[str]]:
        names = (
            "duplicate_companies",
            "duplicate_connections",
            "duplicate_accounts",
            "half_written",
            "leases_held",
            "orphans",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n)}

    def figures(self) -> dict[str, int]:
        return {
            "customers": self.customers,
            "companies in Codat": self.companies,
            "connections in Codat": self.connections,
            "accounts in Codat": self.accounts,
            "duplicate companies": len(self.duplicate_companies),
            "duplicate connections": len(self.duplicate_connections),
            "duplicate accounts": len(self.duplicate_accounts),
            "half-written rows": len(self.half_written),
            "leases left held": len(self.leases_held),
            "orphans in Codat": len(self.orphans),
        }


async def audit(
    sessions: async_sessionmaker[AsyncSession],
    state: dict[str, Any],
    customer_ids: list[str],
) -> Audit:
    """Compare a sandbox snapshot (`/_sandbox/state`) with the database, customer by customer."""
    async with sessions() as session:
        feeds = {f.customer_id: f for f in (await session.execute(select(BankFeed))).scalars()}
        accounts = list((await session.execute(select(SourceAccount))).scalars())
        history = list((await session.execute(select(BankFeedConnection))).scalars())
    result = Audit(customers=len(customer_ids))
    companies = state["companies"]
    result.companies = len(companies)
    result.connections = sum(len(c["connections"]) for c in companies)
    result.accounts = sum(len(x["sourceAccounts"]) for c in companies for x in c["connections"])
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for company in companies:
        by_customer.setdefault(company["tags"].get(CUSTOMER_TAG, "?"), []).append(company)
    for customer_id, owned in by_customer.items():
        if len(owned) > 1:
            result.duplicate_companies.append(customer_id)
        connections = [x for c in owned for x in c["connections"]]
        if len([x for x in connections if x["status"] in ("PendingAuth", "Linked")]) > 1:
            result.duplicate_connections.append(customer_id)
        seen = Counter(a["id"] for x in connections for a in x["sourceAccounts"])
        result.duplicate_accounts += [f"{customer_id}/{a}" for a, n in seen.items() if n > 1]

    company_by_id = {c["id"]: c for c in companies}
    known_connections = {h.connection_id for h in history}
    now = utcnow()
    for customer_id in customer_ids:
        feed = feeds.get(customer_id)
        if feed is not None and feed.locked_until is not None and feed.locked_until > now:
            result.leases_held.append(customer_id)
        if feed is None or feed.company_id is None:
            if feed is not None and feed.connection_id is not None:
                result.half_written.append(f"{customer_id}: connection without company")
            if any(a.is_pushed for a in accounts if a.customer_id == customer_id):
                result.half_written.append(f"{customer_id}: accounts pushed without company")
            continue
        company = company_by_id.get(feed.company_id)
        if company is None or company["tags"].get(CUSTOMER_TAG) != customer_id:
            result.half_written.append(f"{customer_id}: company {feed.company_id} not theirs")
            continue
        connection = next(
            (x for x in company["connections"] if x["id"] == feed.connection_id), None
        )
        pushed = [a for a in accounts if a.customer_id == customer_id and a.is_pushed]
        if connection is None:
            if feed.connection_id is not None or pushed:
                result.half_written.append(f"{customer_id}: connection missing in Codat")
            continue
        in_codat = {a["id"] for a in connection["sourceAccounts"]}
        result.half_written += [
            f"{customer_id}: pushed account {a.id} not in Codat"
            for a in pushed
            if a.id not in in_codat
        ]
    referenced = {f.company_id for f in feeds.values() if f.company_id}
    for company in companies:
        if company["id"] not in referenced:
            result.orphans.append(f"company {company['id']}")
            continue
        result.orphans += [
            f"connection {x['id']}"
            for x in company["connections"]
            if x["id"] not in known_connections
        ]
    return result


def calls_summary(calls: list[dict[str, Any]]) -> dict[str, int]:
    """The sandbox's call log, counted: requests, each injected fault, idempotent replays."""
    summary: Counter[str] = Counter()
    for call in calls:
        summary["Codat requests"] += 1
        if call.get("fault"):
            summary[f"injected {call['fault']}"] += 1
        if call.get("idempotency"):
            summary[f"idempotency {call['idempotency']}"] += 1
    return dict(sorted(summary.items()))


_CREATE_PATHS = {
    "company": re.compile(r"/companies"),
    "connection": re.compile(r"/companies/[^/]+/connections"),
}
DID_WORK_UNANSWERED = ("lost_response", "timeout")  # Codat did the work, the answer was lost


def creates(calls: list[dict[str, Any]]) -> dict[str, int]:
    """How many companies and connections Codat created, counted from its call log: each create
    that ran (answered 2xx first time, or ran and lost its answer), never replays or refusals.

    The sandbox's state cannot show a duplicate the client asked for twice under two keys as
    anything but two objects; the call log shows every create that did work, whatever its key.
    """
    counted: Counter[str] = Counter({kind: 0 for kind in _CREATE_PATHS})
    for call in calls:
        if call["method"] != "POST":
            continue
        kind = next((k for k, p in _CREATE_PATHS.items() if p.fullmatch(call["path"])), None)
        if kind is None:
            continue
        answered = 200 <= call["status"] < 300 and call.get("idempotency") is None
        if answered or call.get("fault") in DID_WORK_UNANSWERED:
            counted[kind] += 1
    return dict(counted)


def calls_json(sandbox: Any) -> list[dict[str, Any]]:
    """An in-process sandbox's call log in the shape `GET /_sandbox/calls` gives."""
    return [
        {
            "method": c.method,
            "path": c.path,
            "route": c.route,
            "status": c.status,
            "fault": c.fault,
            "idempotency": c.idempotency,
        }
        for c in sandbox.calls
    ]


class LinkRewriter(httpx.AsyncBaseTransport):
    """Codat (the in-process sandbox) answering with whatever `link_url` says, when it is set."""

    def __init__(self) -> None:
        self.sandbox: Any = None
        self.link_url: str | None = None
        self.codat = InProcess()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.codat.app = self.sandbox
        response = await self.codat.handle_async_request(request)
        if self.link_url is None or response.status_code >= 300:
            return response
        await response.aread()
        data = json.loads(response.content)
        if not isinstance(data, dict) or "linkUrl" not in data:
            return httpx.Response(response.status_code, content=response.content)
        data["linkUrl"] = self.link_url
        return httpx.Response(response.status_code, json=data)

    async def aclose(self) -> None:
        await self.codat.aclose()


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def browser_target(location: str, base: str) -> tuple[str, str]:
    """The scheme and host a browser goes to for a `Location` header, WHATWG-style.

    Conservative: C0 controls and spaces trimmed, tabs and newlines dropped, backslashes read as
    slashes in http(s), any run of slashes after the scheme skipped, userinfo and port removed.
    """
    text = location.strip("".join(chr(c) for c in range(0x21)))
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.match(text)
    base_parts = urlsplit(base)
    if match is None:
        scheme, rest = base_parts.scheme, text.replace("\\", "/")
        if not rest.startswith("//"):
            return scheme, base_parts.hostname or ""  # a path on this service
    else:
        scheme, rest = match.group(1).lower(), text[match.end() :]
        if scheme not in ("http", "https"):
            return scheme, ""
        rest = rest.replace("\\", "/")
    authority = re.split(r"[/?#]", rest.lstrip("/"), maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if not host.startswith("["):
        host = host.partition(":")[0]
    return scheme, unquote(host).lower().rstrip(".")


# --- the transaction feed ----------------------------------------------------------------------


@contextmanager
def worker_process(database_url: str, workdir: Path, env: dict[str, str]) -> Iterator[Process]:
    """`bankfeeds worker` in its own process (no HTTP, so no url); stopped on exit."""
    log_path = workdir / f"worker-{free_port()}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=workdir,
            env=service_env(database_url, free_port(), **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Process("", proc, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def feed_env(sandbox: Process) -> dict[str, str]:
    """A pusher against a sandbox process, quick about it: no wait after arrival, Codat's
    Pending writes read back soon after."""
    return {
        **against_sandbox(sandbox),
        "TRANSACTIONS_PUSH_DELAY_SECONDS": "0",
        "TRANSACTIONS_POLL_AFTER_SECONDS": "0.3",
        "BACKGROUND_RETRY_BUDGET_SECONDS": "10",
    }


def feed_sandbox_flags(service_url: str) -> list[str]:
    """A sandbox whose webhooks reach the service and whose writes stay Pending a moment."""
    return [
        "--webhook-url",
        f"{service_url}/webhooks/codat",
        "--webhook-secret",
        WEBHOOK_SECRET,
        "--push-delay",
        "0.2",
    ]


def _form_value(html: str, pattern: str) -> str:
    match = re.search(pattern, html)
    assert match is not None, f"{pattern!r} not in the page"
    return match.group(1)


async def connect_in_quickbooks(
    client: httpx.AsyncClient, link_url: str, start_days_back: int
) -> None:
    """What the customer does at a sandbox process: the Link page's one-time credentials, then
    QuickBooks, every account connected from `start_days_back` days before Codat's today."""
    assert (await client.get(link_url)).status_code == 200
    otp = parse_qs(urlsplit(link_url).query)["otp"][0]
    base = link_url.split("/link/")[0]
    credentials = await client.post(
        link_url.split("/start?")[0] + "/credentials", data={"otp": otp, "lang": "en"}
    )
    assert credentials.status_code == 200, credentials.text
    chosen = await client.post(
        f"{base}/qbo/sign-in",
        data={
            "username": _form_value(credentials.text, r'id="username">([^<]+)<'),
            "password": _form_value(credentials.text, r'id="password">([^<]+)<'),
        },
    )
    assert chosen.status_code == 200, chosen.text
    today = date.fromisoformat(
        _form_value(chosen.text, r'name="start_date" type="date" value="([^"]+)"')
    )
    connected = await client.post(
        f"{base}/qbo/connect",
        data={
            "session": _form_value(chosen.text, r'name="session" value="([^"]*)"'),
            "account": re.findall(r'name="account" value="([^"]+)"', chosen.text),
            "start_date": (today - timedelta(days=start_days_back)).isoformat(),
        },
    )
    assert connected.status_code == 200, connected.text


async def linked_feeds(
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    service: Process,
    customer_ids: list[str],
    start_days_back: int,
    seconds: float = 60.0,
) -> date:
    """Each customer clicks Connect on the service process and connects every account in
    QuickBooks; back when Codat's webhooks have told the service they are connected. Returns
    the feed start date (Codat's today less `start_days_back`)."""
    for customer_id in customer_ids:
        response = await click(client, customer_id, service.url)
        assert response.status_code == 302, response.text
        await connect_in_quickbooks(client, response.headers["location"], start_days_back)
    deadline = time.monotonic() + seconds
    while True:
        async with sessions() as session:
            accounts = list(
                (
                    await session.execute(
                        select(SourceAccount).where(SourceAccount.customer_id.in_(customer_ids))
                    )
                ).scalars()
            )
        if accounts and all(a.codat_status == "connected" for a in accounts):
            starts = {a.feed_start_date for a in accounts}
            assert len(starts) == 1 and None not in starts, starts
            start = starts.pop()
            assert start is not None
            return start
        assert time.monotonic() < deadline, [(a.id, a.codat_status) for a in accounts]
        await asyncio.sleep(0.2)


async def expire_leases(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """A killed pusher's leases, aged past their TTL (what waiting it out would do): how many."""
    async with sessions() as session:
        result = await session.execute(
            update(TransactionFeed)
            .where(TransactionFeed.locked_until > now)
            .values(locked_until=now - timedelta(seconds=1))
        )
        await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def feed_settled(sessions: async_sessionmaker[AsyncSession], seconds: float) -> float:
    """Seconds until no transaction waits and no push is outstanding (`seconds` at most)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        async with sessions() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(BankTransaction)
                .where(BankTransaction.status != "pushed")
            )
            outstanding = await session.scalar(
                select(func.count())
                .select_from(TransactionPush)
                .where(TransactionPush.status.in_(OUTSTANDING))
            )
        if waiting == 0 and outstanding == 0:
            break
        await asyncio.sleep(0.3)
    return time.monotonic() - started


async def sandbox_ledger(client: httpx.AsyncClient, sandbox: Process) -> list[dict[str, Any]]:
    """`GET /_sandbox/ledger`: each account's transactions as Codat received and wrote them,
    with exact amounts."""
    response = await client.get(f"{sandbox.url}/_sandbox/ledger", headers=sandbox_headers())
    response.raise_for_status()
    accounts: list[dict[str, Any]] = json.loads(response.text, parse_float=Decimal)["accounts"]
    return accounts


@dataclass
class Sent:
    """What the bank sent one account, in the order the feed must write it."""

    ids: list[str] = field(default_factory=list)
    dates: list[date] = field(default_factory=list)
    amounts: dict[str, Decimal] = field(default_factory=dict)

    def add(self, items: list[TransactionIn]) -> None:
        for item in items:
            self.ids.append(item.id)
            self.dates.append(item.date)
            self.amounts[item.id] = item.amount

    def in_order(self) -> list[str]:
        """By date, then in the order they arrived."""
        order = sorted(range(len(self.ids)), key=lambda n: (self.dates[n], n))
        return [self.ids[n] for n in order]


@dataclass
class FeedAudit:
    """Codat's ledger against what was ingested and what the database says. Every list is a
    problem; a good run has them all empty."""

    accounts: int = 0
    transactions: int = 0
    written: int = 0
    ingested_sum: Decimal = Decimal(0)
    codat_sum: Decimal = Decimal(0)
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    not_pushed: list[str] = field(default_factory=list)
    unsettled_pushes: list[str] = field(default_factory=list)
    leases_held: list[str] = field(default_factory=list)

    @property
    def problems(self) -> dict[str, list[str]]:
        names = (
            "duplicates",
            "lost",
            "strangers",
            "out_of_order",
            "not_pushed",
            "unsettled_pushes",
            "leases_held",
        )
        found = {n: getattr(self, n)[:10] for n in names if getattr(self, n)}
        if self.codat_sum != self.ingested_sum:
            found["sums"] = [f"Codat {self.codat_sum} != ingested {self.ingested_sum}"]
        return found

    def figures(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "transactions ingested": self.transactions,
            "transactions written in Codat": self.written,
            "sum ingested": str(self.ingested_sum),
            "sum in Codat": str(self.codat_sum),
            "duplicates in Codat": len(self.duplicates),
            "lost (never written)": len(self.lost),
            "out of order accounts": len(self.out_of_order),
            "not pushed in our database": len(self.not_pushed),
        }


async def feed_audit(
    sessions: async_sessionmaker[AsyncSession],
    ledger: list[dict[str, Any]],
    sent: dict[str, Sent],
) -> FeedAudit:
    """Each account's ledger in Codat against what the bank sent it: every transaction received
    and written exactly once, in order, the sums equal; our rows pushed, our pushes settled."""
    result = FeedAudit(accounts=len(sent))
    by_account = {a["accountId"]: a for a in ledger}
    for account_id, bank in sent.items():
        result.transactions += len(bank.ids)
        result.ingested_sum += sum(bank.amounts.values(), Decimal(0))
        account = by_account.get(account_id, {"received": [], "written": []})
        received = {r["id"]: r["received"] for r in account["received"]}
        written = [w["id"] for w in account["written"]]
        result.written += len(written)
        result.codat_sum += sum((Decimal(w["amount"]) for w in account["written"]), Decimal(0))
        times = Counter(written)
        result.duplicates += [
            f"{account_id}/{i}" for i in bank.ids if received.get(i, 0) > 1 or times[i] > 1
        ]
        result.lost += [f"{account_id}/{i}" for i in bank.ids if i not in times]
        result.strangers += [f"{account_id}/{i}" for i in times if i not in bank.amounts]
        if list(dict.fromkeys(written)) != bank.in_order():
            result.out_of_order.append(account_id)
    now = utcnow()
    async with sessions() as session:
        rows = await session.execute(
            select(BankTransaction.account_id, BankTransaction.id, BankTransaction.status)
        )
        result.not_pushed = [f"{a}/{i}: {s}" for a, i, s in rows if s != "pushed"]
        pushes = await session.execute(select(TransactionPush.id, TransactionPush.status))
        result.unsettled_pushes = [f"push {i}: {s}" for i, s in pushes if s != "success"]
        feeds = await session.execute(
            select(TransactionFeed.account_id).where(TransactionFeed.locked_until > now)
        )
        result.leases_held = list(feeds.scalars())
    return result

"""What the reliability proofs share: clicks, a sandbox process with flags, and the audit that
compares the sandbox (Codat) with the database after the dust settles."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.codat.client import InProcess
from app.connect.tokens import mint_connect_token
from app.db import utcnow
from app.models import BankFeed, BankFeedConnection, SourceAccount
from tests.conftest import CONNECT_SECRET
from tests.servers import SANDBOX_KEY, Process, _spawn, free_port, run_service, sandbox_headers

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

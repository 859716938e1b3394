"""Proof 5: no secret, one-time password or Link URL in any log line; error pages show nothing
of another customer; no redirect ever leaves CODAT_LINK_HOSTS."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.faults import FaultConfig, FaultInjector
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    PUBLIC_BASE,
    WEBHOOK_SECRET,
    Service,
    _truncate,
    start_service,
)
from tests.factories import add_customer
from tests.reliability.conftest import Record
from tests.reliability.hostile import FUZZ, Tally
from tests.reliability.support import (
    LinkRewriter,
    browser_target,
    click,
    connect_token,
    link_ids,
    sandbox_process,
    service_process,
)
from tests.servers import SANDBOX_KEY, against_sandbox
from tests.webhooks.support import connection_payload, envelope, events, signed_headers

CODAT_KEY = "codat-key-recognisable-5Fq8Zr2Wm7Tb"
SECRETS = {
    "Codat API key": CODAT_KEY,
    "Codat key as sent (base64)": base64.b64encode(CODAT_KEY.encode()).decode(),
    "connect token secret": CONNECT_SECRET,
    "ops API token": OPS_TOKEN,
    "webhook secret": WEBHOOK_SECRET,
    "webhook signing key": WEBHOOK_SECRET.removeprefix("whsec_"),
}
OTHER = {"id": "cus-zeta", "name": "Zeta Bakery Ltd"}


def _otp(location: str) -> str:
    return re.search(r"otp=([^&]+)", location).group(1)  # type: ignore[union-attr]


def leaks(lines: list[str], secrets: dict[str, str], links: list[str]) -> list[str]:
    """Every (what, line) where a secret, a one-time password or a Link URL shows."""
    found = []
    for line in lines:
        found += [f"{name}: {line}" for name, value in secrets.items() if value in line]
        for link in links:
            otp = _otp(link)
            if link in line or f"otp={otp}" in line or re.search(rf"\b{otp}\b", line):
                found.append(f"link or OTP: {line}")
    return found


@pytest.fixture
async def keyed(database_url: str) -> AsyncIterator[tuple[Service, LinkRewriter, FaultInjector]]:
    """The service with a real-looking Codat key, talking to a sandbox that expects it."""
    await _truncate(database_url)
    sandbox_app = create_sandbox_app(
        SandboxConfig(api_key=CODAT_KEY, public_url=f"{PUBLIC_BASE}/codat")
    )
    codat = LinkRewriter()
    codat.sandbox = sandbox_app
    async for service in start_service(
        database_url,
        codat_transport=codat,
        codat_api_key=SecretStr(CODAT_KEY),
        codat_base_url="https://codat.test",  # Codat is https: plain http is refused
        codat_link_hosts=["127.0.0.1"],
        connect_retry_budget_seconds=0.8,
    ):
        yield service, codat, sandbox_app.state.faults
    await sandbox_app.state.faults.aclose()  # Codat's work on requests held past the client's
    await sandbox_app.state.sandbox.aclose()
    await _truncate(database_url)


async def test_no_secret_otp_or_link_in_any_log_line_and_no_foreign_data_on_error_pages(
    keyed: tuple[Service, LinkRewriter, FaultInjector],
    caplog: pytest.LogCaptureFixture,
    record: Record,
) -> None:
    service, codat, faults = keyed
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    await add_customer(service.sessions, OTHER["id"], name=OTHER["name"], accounts=3)
    await add_customer(service.sessions, "cus-acme", accounts=2)
    await add_customer(service.sessions, "cus-empty", accounts=0)
    await add_customer(service.sessions, "cus-abroad", country="GB", currency="GBP")
    links: list[str] = []

    other = await click(service.client, OTHER["id"])
    assert other.status_code == 302
    links.append(other.headers["location"])
    company_id, connection_id = link_ids(links[0])
    foreign = [OTHER["id"], OTHER["name"], company_id, connection_id, _otp(links[0]), "otp="]
    foreign += [f"{1000000 + n}" for n in range(3)]  # the other customer's account numbers

    pages: dict[str, httpx.Response] = {}
    for name, config in {
        "Codat 503": FaultConfig(status_rates={503: 1.0}),
        "Codat 429": FaultConfig(status_rates={429: 1.0}, retry_after_seconds=0),
        # Held past the 0.8 s retry budget: the client's own read timeout ends the wait.
        "Codat timeout": FaultConfig(
            timeout_rate=1.0, timeout_seconds=1.5, still_running_seconds=0.1
        ),
        "answer lost": FaultConfig(lost_response_rate=1.0),
    }.items():
        faults.configure(config)
        pages[name] = await click(service.client, "cus-acme")
    faults.configure(FaultConfig())
    # Codat finishes what it held (its answer goes nowhere): nothing is left in progress.
    await asyncio.gather(*faults.background, return_exceptions=True)
    codat.link_url = "https://evil.example.test/companies/x/connections/y/start?otp=999999"
    pages["foreign Link host"] = await click(service.client, "cus-acme")
    codat.link_url = None
    for customer in ("cus-empty", "cus-abroad", "cus-nobody"):
        pages[customer] = await click(service.client, customer)
    pages["bad token"] = await service.client.get("/connect-bank-feeds", params={"token": "x.y.z"})
    used = connect_token("cus-acme")
    await service.client.get("/connect-bank-feeds", params={"token": used})
    pages["replayed token"] = await service.client.get(
        "/connect-bank-feeds", params={"token": used}
    )
    for response in (
        await click(service.client, "cus-acme"),
        await click(service.client, OTHER["id"]),
    ):
        links.append(response.headers["location"])

    # The ops API and the webhook receiver, with wrong and right credentials.
    wrong = {"Authorization": "Bearer wrong-" + OPS_TOKEN[:6]}
    right = {"Authorization": f"Bearer {OPS_TOKEN}"}
    await service.client.get(f"/ops/customers/{OTHER['id']}/bank-feed", headers=wrong)
    await service.client.get(f"/ops/customers/{OTHER['id']}/bank-feed?refresh=true", headers=right)
    await service.client.post("/ops/customers/cus-acme/connect-url", headers=right)
    await service.client.get("/ops/webhook-events", headers=right)
    event = envelope("connection.connected", connection_payload(
        "Linked", company_id=company_id, connection_id=connection_id))  # fmt: skip
    body = json.dumps(event).encode()
    forged = {**signed_headers(body), "webhook-signature": "v1,AAAA"}
    await service.client.post("/webhooks/codat", content=body, headers=forged)
    await service.client.post("/webhooks/codat", content=body, headers=signed_headers(body))
    await service.services.inbox_worker().run_once()
    links.append(event["payload"]["connection"]["linkUrl"])

    lines = [r.getMessage() for r in caplog.records]
    lines += [caplog.text]  # formatted, with tracebacks
    found = leaks(lines, SECRETS, links)
    shown = {name: [f for f in foreign if f in page.text] for name, page in pages.items()}
    redirects = {name: page.headers.get("location") for name, page in pages.items()}
    record(
        "leaks",
        {
            "log records scanned": len(caplog.records),
            "secrets, OTPs and Link URLs looked for": len(SECRETS) + 2 * len(links),
            "found in logs": len(found),
            "error pages checked": len(pages),
            "error pages and their status": {k: v.status_code for k, v in pages.items()},
            "another customer's data on an error page": sum(map(len, shown.values())),
        },
        variant="in process (caplog)",
    )

    assert found == []
    assert all(v == [] for v in shown.values()), shown
    assert all(r is None for r in redirects.values()), redirects
    assert pages["Codat 503"].status_code == 503 and pages["foreign Link host"].status_code == 502
    assert "evil.example.test" not in pages["foreign Link host"].text
    assert len(caplog.records) > 20  # the scan saw the service at work


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_no_secret_otp_or_link_in_the_service_process_log(
    database_url: str, sessions: Any, tmp_path: Path, record: Record
) -> None:
    secrets = {
        **SECRETS,
        "Codat API key": SANDBOX_KEY,
        "Codat key as sent (base64)": base64.b64encode(SANDBOX_KEY.encode()).decode(),
    }
    for n in range(6):
        await add_customer(sessions, f"cus-log-{n}", accounts=2)
    links: list[str] = []
    statuses: Counter[int] = Counter()
    storm = ("--error-rate", "503=0.2", "--error-rate", "429=0.1", "--retry-after", "0")
    with sandbox_process(
        tmp_path, *storm, "--lost-response-rate", "0.1", "--fault-seed", "7"
    ) as sandbox:
        with service_process(database_url, tmp_path, against_sandbox(sandbox)) as service:
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                for n in range(6):
                    for _ in range(6):
                        response = await click(client, f"cus-log-{n}")
                        statuses[response.status_code] += 1
                        if response.status_code == 302:
                            links.append(response.headers["location"])
                            break
                await client.get("/connect-bank-feeds", params={"token": "garbage"})
                right = {"Authorization": f"Bearer {OPS_TOKEN}"}
                await client.get("/ops/customers/cus-log-0", headers={"Authorization": "Bearer no"})
                await client.get("/ops/customers/cus-log-0/bank-feed?refresh=true", headers=right)
                await client.post("/ops/customers/cus-log-1/connect-url", headers=right)
                body = json.dumps(envelope("connection.connected", connection_payload("Linked")))
                await client.post(
                    "/webhooks/codat",
                    content=body,
                    headers={**signed_headers(body.encode()), "webhook-signature": "v1,AAAA"},
                )
                await client.post(
                    "/webhooks/codat", content=body, headers=signed_headers(body.encode())
                )
                await _until_handled(sessions)  # the inbox worker handles the event
        log = service.log()
    lines = log.splitlines()
    found = leaks(lines, secrets, links)
    record(
        "leaks",
        {
            "log lines scanned": len(lines),
            "secrets, OTPs and Link URLs looked for": len(secrets) + 2 * len(links),
            "found in the log": len(found),
            "clicks (answers)": dict(sorted((str(k), v) for k, v in statuses.items())),
        },
        variant="service process log (Postgres, sandbox process with faults)",
    )

    assert found == [], found[:5]
    assert len(links) == 6
    assert len(lines) > 20 and "codat" in log


async def _until_handled(sessions: Any, seconds: float = 20.0) -> None:
    """Poll the inbox until the delivered event is out of "pending"; fail past the deadline."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        statuses = [e.status for e in await events(sessions)]
        if statuses and "pending" not in statuses:
            return
        assert asyncio.get_running_loop().time() < deadline, f"inbox still {statuses}"
        await asyncio.sleep(0.1)


# --- redirects only to CODAT_LINK_HOSTS -------------------------------------------------------

ALLOWED = {"127.0.0.1"}  # CODAT_LINK_HOSTS in the fixture; http is allowed for loopback only
BASE = f"{PUBLIC_BASE}/connect-bank-feeds"
parts = st.tuples(
    st.sampled_from(["https://", "http://", "HTTPS://", "//", "https:/", "https:\\\\", "https:",
                     "javascript:", " https://", "\thttps://", "", "http:/\\"]),
    st.sampled_from(["", "user@", "127.0.0.1@", "evil.example@", "a:b@", "127.0.0.1%40"]),
    st.sampled_from(["127.0.0.1", "evil.example", "127.0.0.1.evil.example", "LOCALHOST", "[::1]",
                     "127.0.0.1.", "0x7f.0.0.1", "2130706433", "evil.example%2f", "xn--e1a.ru"]),
    st.sampled_from(["", "\\", "\\@", "%5C", "/", "#", "?", "@", "\t", "\n", "\r", " ", "%00",
                     ":443", ":8000@"]),
    st.sampled_from(["", "evil.example", "127.0.0.1", "/start?otp=1", "\\\\evil.example/x"]),
).map("".join)  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # not about the database
@settings(FUZZ, max_examples=250)
@given(link=st.one_of(parts, st.text(max_size=60)))
@example(
    link="https://evil.example\\@127.0.0.1/start?otp=1"
)  # userinfo to Python, host to a browser
@example(link="https://127.0.0.1\\@evil.example/")
@example(link="https://evil.example%5C@127.0.0.1/")
@example(link="https://127.0.0.1@evil.example/")
@example(link="http://127.0.0.1:8000@evil.example/")
@example(link="//evil.example/start")
@example(link="https:\\\\evil.example\\@127.0.0.1")
@example(link="https://evil.example#@127.0.0.1")
@example(link="https://evil.example\t@127.0.0.1/")
@example(link="https://evil.example\n@127.0.0.1/")
@example(link="javascript:alert(1)//127.0.0.1")
@example(link="https://127.0.0.1.evil.example/")
@example(link="https://127.0.0.1:443evil.example/")  # a port no browser accepts
async def test_a_redirect_never_leaves_the_link_hosts_whatever_codat_answers(
    keyed: tuple[Service, LinkRewriter, FaultInjector], tally: Tally, link: str
) -> None:
    service, codat, _ = keyed
    if not tally.span:
        await add_customer(service.sessions, "cus-link", accounts=1)
    codat.link_url = link
    tally.tick()
    tally.proof, tally.variant, tally.figures = "leaks", "redirect targets", _redirect_figures
    response = await click(service.client, "cus-link")
    tally.answers[response.status_code] += 1

    if response.status_code != 302:
        tally.tried["refused"] += 1
        assert response.status_code == 502 and "location" not in response.headers
        return
    tally.tried["redirected"] += 1
    scheme, host = browser_target(response.headers["location"], BASE)
    assert scheme in ("https", "http") and host in ALLOWED, (link, response.headers["location"])


def _redirect_figures(tally: Tally) -> dict[str, Any]:
    return {
        "Link URLs Codat answered with": tally.examples,
        "refused (502)": tally.tried["refused"],
        "redirected, all inside CODAT_LINK_HOSTS": tally.tried["redirected"],
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_redirect_oracle_tells_a_foreign_link_from_a_genuine_one(
    keyed: tuple[Service, LinkRewriter, FaultInjector],
) -> None:
    service, codat, _ = keyed
    await add_customer(service.sessions, "cus-ok", accounts=1)
    codat.link_url = "https://evil.example/start?otp=1"
    refused = await click(service.client, "cus-ok")
    codat.link_url = None
    allowed = await click(service.client, "cus-ok")
    assert (refused.status_code, allowed.status_code) == (502, 302)

"""Who gets into the console: the ops token, a strict session cookie, CSRF on every change, a
pause after failed sign-ins, and nothing at all for strangers or without an ops token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.console.service import SESSION_IDLE, SIGN_IN_FAILURES, SIGN_IN_WINDOW
from app.db import utcnow
from app.models import ConsoleAuditEntry, Customer
from tests.conftest import PUBLIC_BASE, Service
from tests.console.support import csrf_of, sign_in, signed_in_csrf
from tests.ops_api import with_bank_feed
from tests.webhooks.support import running

PAGES = [
    "/console/",
    "/console/customers",
    "/console/customers?q=cus",
    "/console/customers/cus-1",
    "/console/customers/cus-1/offboard",
    "/console/events",
    "/console/audit",
]
ACTIONS = [
    ("/console/customers/cus-1/refresh", {}),
    ("/console/customers/cus-1/connect-link", {}),
    ("/console/customers/cus-1/offboard", {"mode": "purge", "confirm": "cus-1"}),
    ("/console/events/1/retry", {}),
    ("/console/sign-out", {}),
]


async def audit(service: Service) -> list[ConsoleAuditEntry]:
    async with service.sessions() as session:
        query = select(ConsoleAuditEntry).order_by(ConsoleAuditEntry.id)
        return list((await session.execute(query)).scalars())


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    assert found, f"no {name} cookie in {response.headers.get_list('set-cookie')}"
    return found[-1]


class Clock:
    """The console's clock, moved by the test."""

    def __init__(self, service: Service) -> None:
        self.now = utcnow()
        service.services.console.clock = lambda: self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
async def stranger(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with no session: it never signed in."""
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE) as client:
        yield client


async def test_no_ops_token_no_console(database_url: str) -> None:
    async with running(database_url, ops_api_token=None) as service:
        for path in ["/console/", "/console/sign-in", "/console/static/console.css", *PAGES]:
            response = await service.client.get(path)
            assert response.status_code == 404, path
        response = await service.client.post("/console/sign-in", data={"token": "x"})
        assert response.status_code == 404


async def test_sign_in_gives_a_strict_session_cookie_and_is_audited(service: Service) -> None:
    response = await sign_in(service.client, next="/console/audit")
    assert response.status_code == 303 and response.headers["location"] == "/console/audit"
    cookie = cookie_header(response, "console_session")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # loopback, plain http
    [entry] = await audit(service)
    assert (entry.action, entry.outcome, entry.remote) == ("sign_in", "ok", "127.0.0.1")
    assert entry.session_id and entry.session_id in (await service.client.get("/console/")).text


async def test_session_cookie_is_secure_outside_loopback(database_url: str) -> None:
    async with running(database_url, public_base_url="https://bank.example") as service:
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://bank.example"
        ) as client:
            response = await sign_in(client)
            assert response.status_code == 303
            assert "; Secure" in cookie_header(response, "console_session")
            assert (await client.get("/console/")).status_code == 200


async def test_sign_in_elsewhere_than_the_console_goes_to_the_overview(service: Service) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/ops/customers"):
        service.client.cookies.clear()
        response = await sign_in(service.client, next=target)
        assert response.headers["location"] == "/console/"


async def test_a_wrong_token_is_refused_then_sign_ins_pause(service: Service) -> None:
    clock = Clock(service)
    for _ in range(SIGN_IN_FAILURES):
        response = await sign_in(service.client, token="not-the-token")
        assert response.status_code == 401
        assert "That is not the ops token" in response.text
        assert "console_session" not in response.headers.get("set-cookie", "")
    paused = await sign_in(service.client)  # even the right token waits
    assert paused.status_code == 429 and "Too many failed sign-ins" in paused.text
    assert 0 < int(paused.headers["Retry-After"]) <= SIGN_IN_WINDOW.total_seconds() + 1
    assert (await service.client.get("/console/")).status_code == 303
    entries = await audit(service)
    assert [(e.action, e.outcome) for e in entries] == [("sign_in", "failed")] * SIGN_IN_FAILURES
    assert all(e.session_id is None and e.detail == "wrong ops token" for e in entries)

    clock.advance(SIGN_IN_WINDOW + timedelta(seconds=1))
    assert (await sign_in(service.client)).status_code == 303


async def test_the_sign_in_form_carries_its_own_csrf_token(
    service: Service, stranger: httpx.AsyncClient
) -> None:
    form = await service.client.get("/console/sign-in")
    token = csrf_of(form.text)
    # Posted from elsewhere: no form cookie, or a token that is not this form's.
    for client, data in (
        (stranger, {"token": "x", "csrf": token}),
        (service.client, {"token": "x", "csrf": "forged"}),
        (service.client, {"token": "x"}),
    ):
        response = await client.post("/console/sign-in", data=data)
        assert response.status_code == 403
        assert "console_session" not in response.headers.get("set-cookie", "")
    assert await audit(service) == []


async def test_a_stranger_sees_nothing_and_changes_nothing(
    service: Service, stranger: httpx.AsyncClient
) -> None:
    await with_bank_feed(service)
    for path in PAGES:
        response = await stranger.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in")
        page = await stranger.get(response.headers["location"])
        assert page.status_code == 200 and 'id="sign-in-form"' in page.text
        assert "Acme Plumbing" not in page.text and "Account 0" not in page.text
    assert (await stranger.get("/console/customers/cus-1")).headers["location"] == (
        "/console/sign-in?next=%2Fconsole%2Fcustomers%2Fcus-1"
    )
    for forged in (None, "0123456789abcdef.aaaa.bbbb"):  # no session, a made-up one
        if forged:
            stranger.cookies.set("console_session", forged, path="/console")
        for path, data in ACTIONS:
            response = await stranger.post(path, data={"csrf": "x", **data})
            assert response.status_code == 303
            assert response.headers["location"] == "/console/sign-in"
    assert service.codat_calls() == [] and await audit(service) == []
    async with service.sessions() as session:
        assert await session.get(Customer, "cus-1") is not None


async def test_a_form_without_the_session_csrf_token_is_refused(service: Service) -> None:
    await with_bank_feed(service)
    await sign_in(service.client)
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url=PUBLIC_BASE)
    async with other:
        await sign_in(other)
        others_token = await signed_in_csrf(other)
    for data in ({}, {"csrf": "forged"}, {"csrf": others_token}):
        response = await service.client.post("/console/customers/cus-1/refresh", data=data)
        assert response.status_code == 403 and "This form was refused" in response.text
    assert service.codat_calls() == []
    refused = [e for e in await audit(service) if e.action == "csrf_refused"]
    assert len(refused) == 3 and {e.outcome for e in refused} == {"refused"}
    assert {e.target for e in refused} == {"/console/customers/cus-1/refresh"}
    token = await signed_in_csrf(service.client)
    response = await service.client.post("/console/customers/cus-1/refresh", data={"csrf": token})
    assert response.status_code == 303  # the session's own token works


async def test_a_session_ends_after_8_idle_hours_and_lives_while_used(service: Service) -> None:
    clock = Clock(service)
    await sign_in(service.client)
    for _ in range(3):  # used every 7 hours: still signed in, a day later
        clock.advance(timedelta(hours=7))
        assert (await service.client.get("/console/")).status_code == 200
    clock.advance(SESSION_IDLE + timedelta(seconds=1))
    response = await service.client.get("/console/customers")
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/console/sign-in?next=%2Fconsole%2Fcustomers&expired=1"
    )
    page = await service.client.get(response.headers["location"])
    assert "Your session ended after 8 hours without activity" in page.text
    again = await sign_in(service.client, next="/console/customers")
    assert again.headers["location"] == "/console/customers"


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(service: Service) -> None:
    await sign_in(service.client)
    copied = service.client.cookies["console_session"]
    token = await signed_in_csrf(service.client)
    response = await service.client.post("/console/sign-out", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?signed_out=1"
    assert "Max-Age=0" in cookie_header(response, "console_session")
    page = await service.client.get(response.headers["location"])
    assert "You are signed out." in page.text
    service.client.cookies.set("console_session", copied, path="/console")
    assert (await service.client.get("/console/")).status_code == 303
    entries = await audit(service)
    assert [e.action for e in entries] == ["sign_in", "sign_out"]
    assert entries[0].session_id == entries[1].session_id


async def test_a_tampered_or_foreign_cookie_is_no_session(database_url: str) -> None:
    async with running(database_url) as service:
        await sign_in(service.client)
        genuine = service.client.cookies["console_session"]
    session_id, stamp, signature = genuine.split(".")
    async with running(
        database_url, ops_api_token=SecretStr("another-token-9f8e7d6c5b4a")
    ) as other:
        for cookie in (f"other{session_id}.{stamp}.{signature}", genuine):
            other.client.cookies.set("console_session", cookie, path="/console")
            assert (await other.client.get("/console/")).status_code == 303


async def test_pages_carry_a_strict_content_security_policy(service: Service) -> None:
    await sign_in(service.client)
    for path in ["/console/sign-in", *PAGES]:
        response = await service.client.get(path)
        if response.status_code == 303:
            continue  # the sign-in page while signed in
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text


async def test_audit_entries_are_timed_by_the_console_clock(service: Service) -> None:
    clock = Clock(service)
    clock.now = datetime(2031, 5, 6, 7, 8, 9, tzinfo=clock.now.tzinfo)
    await sign_in(service.client)
    [entry] = await audit(service)
    assert entry.at == clock.now

"""The operations console in real headless Chromium: an operator's day, the refusals, and an
accessibility check (axe-core) of every page."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.console.service import SESSION_IDLE
from app.db import utcnow
from app.models import CodatEvent, ConsoleAuditEntry
from tests.browser.console_server import (
    CHROMIUM_ARGS,
    LiveService,
    axe_script,
    live_service,
    require_browser,
)
from tests.browser.link import connect_in_quickbooks
from tests.conftest import OPS_TOKEN, ROOT, _truncate

pytestmark = pytest.mark.browser
SCREENSHOT = ROOT / "docs" / "console-overview.png"
CONNECTED_WITHIN_SECONDS = 20.0


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[LiveService]:
    require_browser()
    await _truncate(database_url)
    async with live_service(database_url) as service:
        yield service


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=require_browser(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, live: LiveService, **options: Any) -> tuple[Any, list[str]]:
    """A page in a fresh context, and the CSP violations the browser reports on it."""
    context = await browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, **options
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return page, violations


async def sign_in(page: Any, live: LiveService, start: str = "/console/") -> None:
    from playwright.async_api import expect

    await page.goto(live.url + start)
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.get_by_label("Ops token").fill(OPS_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-out")).to_be_visible()


async def audit(live: LiveService) -> list[ConsoleAuditEntry]:
    async with live.services.sessions() as session:
        query = select(ConsoleAuditEntry).order_by(ConsoleAuditEntry.id)
        return list((await session.execute(query)).scalars())


async def test_an_operator_gets_a_customer_connected(live: LiveService) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page, violations = await new_page(browser, live)
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)

        # 1. Sign in.
        await sign_in(page, live)
        await expect(page.locator("h1")).to_have_text("Overview")

        # 2. Find a customer who needs action, and why.
        needing = page.locator("#needing-demo-us-bakery")
        await expect(needing).to_contain_text("Has not clicked Connect yet.")
        await needing.get_by_role("link", name="Maple Street Bakery LLC").click()
        await expect(page.locator("h1")).to_have_text("Maple Street Bakery LLC")
        await expect(page.locator("#connection-status")).to_have_text("No connection yet")

        # 3. Copy a fresh connect link.
        await page.get_by_role("button", name="Create a connect link").click()
        await page.get_by_role("button", name="Copy the link").click()
        await expect(page.locator("#copy-status")).to_have_text("Copied.")
        link = await page.evaluate("navigator.clipboard.readText()")
        assert link == await page.get_by_label("Connect link").input_value()
        assert link.startswith(live.url + "/connect-bank-feeds?token=")

        # 4. The customer follows it through the Link page and QuickBooks (the sandbox's).
        customer = await page.context.new_page()
        await customer.goto(link)
        await expect(customer).to_have_url(re.compile(r"/sandbox/codat/link/companies/.+otp="))
        await connect_in_quickbooks(customer, accounts=2)
        await customer.close()

        # 5. The console shows the customer connected (Codat's webhooks, no refresh). They come
        #    in any order, so the accounts may be connected before the connection shows Linked.
        deadline = time.monotonic() + CONNECTED_WITHIN_SECONDS
        seen: tuple[list[str], str] = ([], "")
        while time.monotonic() < deadline:
            await page.goto(live.url + "/console/customers/demo-us-bakery")
            seen = (
                await page.locator("td.account-status").all_inner_texts(),
                await page.locator("#connection-status").inner_text(),
            )
            if seen == (["Connected", "Connected"], "Linked"):
                break
            await page.wait_for_timeout(250)
        assert seen == (["Connected", "Connected"], "Linked")
        await page.goto(live.url + "/console/")
        await expect(page.locator("#needing-demo-us-bakery")).to_have_count(0)
        await expect(page.locator("#by-connection-Linked td")).to_have_text("1")
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # 6. Sign out: the console is closed to this browser again.
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.locator("#notice")).to_have_text("You are signed out.")
        await page.goto(live.url + "/console/customers/demo-us-bakery")
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
        assert violations == []

    entries = await audit(live)
    assert [(e.action, e.outcome) for e in entries] == [
        ("sign_in", "ok"),
        ("connect_link", "ok"),
        ("sign_out", "ok"),
    ]
    assert len({e.session_id for e in entries}) == 1
    assert entries[1].target == "demo-us-bakery"


async def test_a_forged_form_is_refused(live: LiveService) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page, _ = await new_page(browser, live)
        await sign_in(page, live, "/console/customers/demo-us-bakery")
        await expect(page.locator("h1")).to_have_text("Maple Street Bakery LLC")
        live.sandbox.reset_calls()
        # The right session, a wrong token in the form.
        await page.locator('form[action$="/refresh"] input[name=csrf]').evaluate(
            "field => { field.value = 'forged' }"
        )
        await page.get_by_role("button", name="Refresh from Codat").click()
        await expect(page.locator("h1")).to_have_text("This form was refused")
        # A page of another site posting to the console: the strict cookie stays home.
        other = await page.context.new_page()
        await other.set_content(
            f'<form method="post" action="{live.url}/console/customers/demo-us-bakery/refresh">'
            '<input name="csrf" value="guess"><button id="go">go</button></form>'
        )
        await other.locator("#go").click()
        await expect(other).to_have_url(re.compile(r"/console/sign-in$"))
    assert live.sandbox.calls == []
    entries = await audit(live)
    assert [(e.action, e.outcome) for e in entries] == [
        ("sign_in", "ok"),
        ("csrf_refused", "refused"),
    ]


async def test_an_idle_session_is_sent_back_to_sign_in(live: LiveService) -> None:
    from playwright.async_api import expect

    now = utcnow()
    live.set_clock(now)
    async with chromium() as browser:
        page, _ = await new_page(browser, live)
        await sign_in(page, live)
        live.set_clock(now + timedelta(hours=7))
        await page.goto(live.url + "/console/events")  # in use: the session lives on
        await expect(page.locator("h1")).to_have_text("Webhook events")
        live.set_clock(now + timedelta(hours=7) + SESSION_IDLE + timedelta(seconds=1))
        await page.goto(live.url + "/console/audit")
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole%2Faudit"))
        await expect(page.locator("#notice")).to_contain_text("8 hours without activity")
        await page.get_by_label("Ops token").fill(OPS_TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("h1")).to_have_text("Audit log")


async def test_a_stranger_sees_nothing(live: LiveService) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page, _ = await new_page(browser, live)
        for path in (
            "/console/",
            "/console/customers",
            "/console/customers/demo-us-bakery",
            "/console/events",
            "/console/audit",
        ):
            await page.goto(live.url + path)
            await expect(page).to_have_url(re.compile(r"/console/sign-in"))
            body = await page.locator("main").inner_text()
            assert "Maple Street" not in body and "demo-us-bakery" not in body
        await page.get_by_label("Ops token").fill("a guess")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#sign-in-error")).to_have_text(
            "That is not the ops token. Check it and try again."
        )
        answer = await page.request.post(
            live.url + "/console/customers/demo-us-bakery/offboard",
            form={"mode": "purge", "confirm": "demo-us-bakery"},
            max_redirects=0,
        )
        assert answer.status == 303 and answer.headers["location"] == "/console/sign-in"
    assert live.sandbox.calls == []
    assert [(e.action, e.outcome) for e in await audit(live)] == [("sign_in", "failed")]


async def test_every_console_page_passes_axe(live: LiveService, tmp_path: Path) -> None:
    from playwright.async_api import expect

    script = axe_script()
    await live.services.connect.connect("demo-ca-boulangerie")
    async with live.services.sessions() as session:
        session.add(
            CodatEvent(
                webhook_id="msg_failed_for_axe",
                event_type="bankFeeds.sourceAccount.connected",
                payload={"connectionId": "unknown"},
                status="failed",
                attempts=8,
                last_error="handler failed",
                received_at=utcnow(),
            )
        )
        await session.commit()
    found: dict[str, list[dict[str, Any]]] = {}
    async with chromium() as browser:
        # axe is injected as a script tag: only the checking context bypasses the CSP.
        page, _ = await new_page(browser, live, bypass_csp=True)

        async def check(name: str) -> None:
            await page.add_script_tag(path=str(script))
            result = await page.evaluate(
                "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
            )
            serious = [v for v in result if v["impact"] in ("serious", "critical")]
            found[name] = [{"id": v["id"], "nodes": len(v["nodes"])} for v in serious]

        await page.goto(live.url + "/console/sign-in")
        await check("sign-in")
        await sign_in(page, live)
        pages = {
            "overview": "/console/",
            "overview-fr": "/console/?lang=fr",
            "customers": "/console/customers?lang=en",
            "customers-filtered": "/console/customers?needs_customer_action=true",
            "customer": "/console/customers/demo-ca-boulangerie",
            "offboard": "/console/customers/demo-ca-boulangerie/offboard",
            "events": "/console/events",
            "audit": "/console/audit",
            "not-found": "/console/customers/nobody",
        }
        for name, path in pages.items():
            await page.goto(live.url + path)
            await check(name)
        await page.goto(live.url + "/console/customers/demo-ca-boulangerie")
        await page.get_by_role("button", name="Create a connect link").click()
        await expect(page.locator("#connect-url")).to_be_visible()
        await check("connect-link")
        # Keyboard only: the skip link first, then the navigation, with a visible focus ring.
        await page.goto(live.url + "/console/")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip"
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "[document.activeElement.id, getComputedStyle(document.activeElement).outlineStyle]"
        )
        assert focused == ["nav-overview", "solid"]
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(page.locator("h1")).to_have_text("Customers")
    (tmp_path / "axe.json").write_text(json.dumps(found, indent=2))
    assert all(not violations for violations in found.values()), found

"""The whole journey a newcomer clicks through after `make run`, in real headless Chromium."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Process, run_service

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    return CHROMIUM


@pytest.fixture
def live_service(database_url: str, tmp_path: Path) -> Iterator[Process]:
    import asyncio

    from tests.conftest import _truncate

    asyncio.run(_truncate(database_url))
    with run_service(database_url, tmp_path) as process:
        yield process


async def test_demo_to_connected_in_a_browser(
    live_service: Process,
    chromium_path: str,
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = await browser.new_page(locale="en-US")
        page.set_default_timeout(15_000)

        # 1. The demo host app: customers, a Connect button each, sandbox banner.
        await page.goto(live_service.url + "/")
        await expect(page.locator("#sandbox-banner")).to_contain_text("SANDBOX MODE")
        row = page.locator("#customer-demo-us-bakery")
        await expect(row).to_contain_text("Maple Street Bakery LLC")
        await expect(row.locator(".connected-count")).to_have_text("0 of 2 accounts connected")

        # 2. Connect to QuickBooks lands on the Link page for this customer.
        await row.get_by_role("button", name="Connect to QuickBooks").click()
        await expect(page).to_have_url(re.compile(r"/sandbox/codat/link/companies/.+/start\?otp="))
        await expect(page.locator("#title")).to_contain_text("QuickBooks Online Bank Feeds")
        await page.locator("#continue").click()

        # 3. Get credentials shows a one-time username and password.
        await page.locator("#get-credentials").click()
        username = (await page.locator("#username").inner_text()).strip()
        password = (await page.locator("#password").inner_text()).strip()
        assert username and password
        await expect(page.locator("#revoke-credentials")).to_be_visible()

        # 4. The QuickBooks simulator: sign in, pick the accounts, connect.
        await page.locator("#open-quickbooks").click()
        await page.locator("#sign-in-username").fill(username)
        await page.locator("#sign-in-password").fill(password)
        await page.locator("#sign-in").click()
        checkboxes = page.locator("#accounts input[type=checkbox]")
        await expect(checkboxes).to_have_count(2)
        for index in range(2):
            await checkboxes.nth(index).check()
        await page.locator("#connect").click()
        await expect(page.locator("#connected")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "connected.png"))

        # 5. Back at the bank, the demo host app shows the signed event as it arrives.
        await page.goto(live_service.url + "/")
        arrived = page.locator(
            '#events li[data-type="customer.connected"][data-customer="demo-us-bakery"]'
        )
        await expect(arrived).to_be_visible(timeout=20_000)  # live: the page is not reloaded
        await expect(arrived).to_contain_text("customer.connected")
        await page.screenshot(path=str(tmp_path / "event.png"), full_page=True)

        # 6. The customer's row follows the events, still without a reload...
        row = page.locator("#customer-demo-us-bakery")
        await expect(row.locator(".connected-count")).to_have_text(
            "2 of 2 accounts connected", timeout=20_000
        )
        await expect(row.locator(".connection-status")).to_have_text("Linked")
        for status in await row.locator(".account-status").all_inner_texts():
            assert status == "connected"

        # 7. ...and so does the page as the server renders it (webhooks, no refresh button).
        deadline = time.monotonic() + 20
        while True:
            await page.goto(live_service.url + "/")
            row = page.locator("#customer-demo-us-bakery")
            text = await row.locator(".connected-count").inner_text()
            if text == "2 of 2 accounts connected" or time.monotonic() > deadline:
                break
            await page.wait_for_timeout(300)
        await expect(row.locator(".connected-count")).to_have_text("2 of 2 accounts connected")
        await expect(row.locator(".connection-status")).to_have_text("Linked")
        for status in await row.locator(".account-status").all_inner_texts():
            assert status == "connected"
        await browser.close()


async def test_refused_customer_sees_a_bilingual_page(
    live_service: Process,
    chromium_path: str,
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = await browser.new_page(locale="en-US")
        await page.goto(live_service.url + "/")
        await (
            page.locator("#customer-demo-gb-cafe")
            .get_by_role("button", name="Connect to QuickBooks")
            .click()
        )
        await expect(page.locator("#title")).to_have_text("Not available in your country")
        await expect(page.locator("body")).to_contain_text("Non offert dans votre pays")
        await browser.close()

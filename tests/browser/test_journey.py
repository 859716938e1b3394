"""The whole journey a newcomer clicks through after `make run`, in real headless Chromium."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.sandbox.i18n import format_money
from tests.browser.link import connect_in_quickbooks
from tests.conftest import OPS_TOKEN
from tests.servers import Process, run_service

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser
OPS_HEADERS = {"Authorization": f"Bearer {OPS_TOKEN}"}


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
    # Pushes go out a second after the bank posts, not the default minute.
    with run_service(database_url, tmp_path, TRANSACTIONS_PUSH_DELAY_SECONDS="1") as process:
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

        # 3. Get one-time credentials; 4. in the QuickBooks simulator, connect the accounts.
        await connect_in_quickbooks(page, accounts=2)
        await page.screenshot(path=str(tmp_path / "connected.png"))
        checking = page.locator('li[data-account-id="us-bakery-chk"] a[id^="review-"]')
        for_review_url = await checking.get_attribute("href")
        assert for_review_url

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

        # 8. The bank posts today's cleared transactions...
        await row.get_by_role("button", name="Post today's transactions").click()
        await expect(page.locator("#notice")).to_contain_text("Maple Street Bakery LLC")
        posted = await _posted(live_service, "demo-us-bakery", "us-bakery-chk")
        assert posted

        # 9. ...and in QuickBooks, For review shows exactly those after Update, in order.
        await page.goto(for_review_url)
        expected = [t["id"] for t in posted]
        deadline = time.monotonic() + 30
        while True:  # the push lands a moment after the post: Update until it has
            await page.locator("#update").click()
            rows = page.locator("#for-review tbody tr")
            shown = [await r.get_attribute("data-transaction-id") for r in await rows.all()]
            if shown == expected or time.monotonic() > deadline:
                break
            await page.wait_for_timeout(500)
        assert shown == expected
        for index, transaction in enumerate(posted, start=1):
            cells = page.locator(f"#review-row-{index} td")
            await expect(cells.nth(0)).to_have_text(transaction["date"])
            await expect(cells.nth(1)).to_have_text(transaction["description"])
            await expect(cells.nth(2)).to_have_text(_money(transaction["amount"]))
            await expect(cells.nth(3)).to_have_text(_money(transaction["balance"]))
        await expect(page.locator("#bank-balance")).to_have_text(_money(posted[-1]["balance"]))
        await page.screenshot(path=str(tmp_path / "for-review.png"), full_page=True)
        await browser.close()


async def _posted(service: Process, customer_id: str, account_id: str) -> list[dict[str, str]]:
    """What the bank posted for the account, oldest first, as the ops API lists it."""
    async with httpx.AsyncClient(base_url=service.url, headers=OPS_HEADERS) as client:
        response = await client.get(
            f"/ops/customers/{customer_id}/accounts/{account_id}/transactions"
        )
    response.raise_for_status()
    return list(reversed(response.json()["items"]))


def _money(amount: str) -> str:
    """As the QuickBooks simulator shows it in English: grouped, to the cent at least."""
    return format_money(Decimal(amount), "en")


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

"""The customer's part of the journey, on the sandbox's Link page and QuickBooks simulator."""

from __future__ import annotations

from typing import Any


async def connect_in_quickbooks(page: Any, accounts: int) -> None:
    """From the Link page: continue, get one-time credentials, sign in to the QuickBooks
    simulator with them, pick every account, connect."""
    from playwright.async_api import expect

    await page.locator("#continue").click()
    await page.locator("#get-credentials").click()
    username = (await page.locator("#username").inner_text()).strip()
    password = (await page.locator("#password").inner_text()).strip()
    assert username and password
    await expect(page.locator("#revoke-credentials")).to_be_visible()
    await page.locator("#open-quickbooks").click()
    await page.locator("#sign-in-username").fill(username)
    await page.locator("#sign-in-password").fill(password)
    await page.locator("#sign-in").click()
    checkboxes = page.locator("#accounts input[type=checkbox]")
    await expect(checkboxes).to_have_count(accounts)
    for index in range(accounts):
        await checkboxes.nth(index).check()
    await page.locator("#connect").click()
    await expect(page.locator("#connected")).to_be_visible()

"""The QuickBooks simulator's Banking > For review page: what QBO shows after its last pull."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from app.sandbox.pages import page_headers
from tests.sandbox.sandbox_pages import Page, path_of
from tests.sandbox.sandbox_support import BASE_URL, ConnectionRef, get_credentials
from tests.sandbox.sandbox_transactions import push_body, settle, transaction, write


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"push_delay": timedelta(seconds=30)}


@pytest.fixture
async def connected(
    new_connection, browser: httpx.AsyncClient, sandbox: Sandbox
) -> tuple[ConnectionRef, Page]:
    """Signed in to QuickBooks with acc-1 and acc-2 connected; the connected accounts page."""
    ref: ConnectionRef = await new_connection(accounts=2)
    choose = await _sign_in(browser, ref.link_url)
    form = choose.form_with_button("Connect")
    start = (sandbox.clock.today() - timedelta(days=3)).isoformat()
    data = {**form.fields, "account": list(form.checkboxes.values()), "start_date": start}
    page = Page((await browser.post(path_of(form.action), data=data)).text)
    return ref, page


async def _sign_in(browser: httpx.AsyncClient, link_url: str) -> Page:
    username, password = await get_credentials(browser, link_url)
    sign_in = Page((await browser.get("/qbo")).text).form_with_button("Sign in")
    data = {**sign_in.fields, "username": username, "password": password}
    return Page((await browser.post(path_of(sign_in.action), data=data)).text)


async def _post_transactions(api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef) -> None:
    today = sandbox.clock.today()
    items = [
        transaction("bk-1", today - timedelta(days=2), "-42.10", "1208.65", description="Hydro"),
        transaction("bk-2", today - timedelta(days=1), "1500", "2708.65", description="Deposit"),
        transaction("bk-3", today, "-8.5", "2700.15", description="Coffee beans"),
    ]
    assert (await write(api, ref, push_body(items))).status_code == 200
    await settle(api)


async def test_for_review_shows_the_transactions_after_update(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    sandbox: Sandbox,
    connected: tuple[ConnectionRef, Page],
) -> None:
    ref, accounts_page = connected
    await _post_transactions(api, sandbox, ref)
    today = sandbox.clock.today()

    review = await browser.get(path_of(accounts_page.attr("review-1", "href")))
    before = Page(review.text)
    update = before.form_with_button("Update")
    after = await browser.post(path_of(update.action), data=update.fields)

    assert review.status_code == 200
    assert before.has("no-transactions")  # QBO has not pulled since they were written
    assert after.status_code == 200
    page = Page(after.text)
    assert [page.attr(f"review-row-{n}", "data-transaction-id") for n in (1, 2, 3)] == [
        "bk-1",
        "bk-2",
        "bk-3",
    ]
    assert not page.has("review-row-4")
    assert page.text("review-row-1") == f"{today - timedelta(days=2)} Hydro -42.10 1,208.65"
    assert page.text("review-row-2") == f"{today - timedelta(days=1)} Deposit 1,500.00 2,708.65"
    assert page.text("review-row-3") == f"{today} Coffee beans -8.50 2,700.15"
    assert page.text("bank-balance") == "2,700.15"
    assert "QuickBooks pulled the latest" in after.text
    for name, value in page_headers(BASE_URL).items():
        assert after.headers[name] == value


async def test_the_daily_pull_shows_them_without_update(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    sandbox: Sandbox,
    connected: tuple[ConnectionRef, Page],
) -> None:
    ref, _ = connected
    await _post_transactions(api, sandbox, ref)

    await api.post("/_sandbox/clock/advance", json={"seconds": 86400})
    # A day on, the SMB signs in to QuickBooks again and opens For review.
    link_url = (await api.get(ref.path)).json()["linkUrl"]
    choose = await _sign_in(browser, link_url)
    accounts = Page((await browser.get(path_of(choose.attr("view-connected", "href")))).text)
    page = Page((await browser.get(path_of(accounts.attr("review-1", "href")))).text)

    assert page.has("review-row-3") and not page.has("review-row-4")
    assert page.text("bank-balance") == "2,700.15"


async def test_for_review_in_french(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    sandbox: Sandbox,
    connected: tuple[ConnectionRef, Page],
) -> None:
    ref, accounts_page = connected
    await _post_transactions(api, sandbox, ref)
    english = Page((await browser.get(path_of(accounts_page.attr("review-1", "href")))).text)
    update = english.form_with_button("Update")

    response = await browser.post(path_of(update.action), data={**update.fields, "lang": "fr"})

    page = Page(response.text)
    assert page.text("update") == "Mettre à jour"
    assert '<strong id="bank-balance">2\u202f700,15</strong>' in response.text
    assert "-42,10" in page.text("review-row-1")
    assert "Opérations bancaires" in page.text("breadcrumb")


async def test_only_the_accounts_own_transactions_are_shown(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    sandbox: Sandbox,
    connected: tuple[ConnectionRef, Page],
) -> None:
    ref, accounts_page = connected
    await _post_transactions(api, sandbox, ref)
    other = Page((await browser.get(path_of(accounts_page.attr("review-2", "href")))).text)

    page = Page(
        (
            await browser.post(
                path_of(other.form_with_button("Update").action),
                data=other.form_with_button("Update").fields,
            )
        ).text
    )

    assert page.has("no-transactions")
    assert page.text("bank-balance") == "—"


async def test_a_failed_write_never_shows(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    sandbox: Sandbox,
    connected: tuple[ConnectionRef, Page],
) -> None:
    ref, accounts_page = connected
    tomorrow = sandbox.clock.today() + timedelta(days=1)
    await write(api, ref, push_body([transaction("bk-9", tomorrow, "-1", "1")]))
    await settle(api)
    review = Page((await browser.get(path_of(accounts_page.attr("review-1", "href")))).text)
    update = review.form_with_button("Update")

    page = Page((await browser.post(path_of(update.action), data=update.fields)).text)

    assert page.has("no-transactions")


async def test_an_account_not_connected_or_an_ended_session_has_no_review_page(
    browser: httpx.AsyncClient, connected: tuple[ConnectionRef, Page]
) -> None:
    _, accounts_page = connected
    href = path_of(accounts_page.attr("review-1", "href"))

    unknown = await browser.get(href.replace("account=acc-1", "account=acc-9"))
    ended = await browser.get(href.replace("session=", "session=x"))

    assert unknown.status_code == 404
    assert "not connected in QuickBooks" in unknown.text
    assert ended.status_code == 401

"""The QuickBooks Online simulator: sign in, connect accounts, disconnect them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_pages import Page, path_of
from tests.sandbox.sandbox_support import ConnectionRef, get_credentials

RETURN_URL = "http://bank.example/bank-feeds/done"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"return_url": RETURN_URL}


@pytest.fixture
async def ref(new_connection) -> ConnectionRef:
    connection: ConnectionRef = await new_connection(accounts=3)
    return connection


async def _sign_in(browser: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    form = Page((await browser.get("/qbo")).text).form_with_button("Sign in")
    return await browser.post(
        path_of(form.action), data={**form.fields, "username": username, "password": password}
    )


async def _connect(
    browser: httpx.AsyncClient, choose: Page, labels: list[str], start: str | None = None
) -> httpx.Response:
    form = choose.form_with_button("Connect")
    chosen = [value for label, value in form.checkboxes.items() if any(x in label for x in labels)]
    data: dict[str, Any] = {**form.fields, "account": chosen}
    if start is not None:
        data["start_date"] = start
    return await browser.post(path_of(form.action), data=data)


async def _accounts(api: httpx.AsyncClient, ref: ConnectionRef) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in (await api.get(ref.accounts)).json()}


async def test_sign_in_lists_the_connection_accounts_masked(
    browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    username, password = await get_credentials(browser, ref.link_url)

    response = await _sign_in(browser, username, password)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    form = Page(response.text).form_with_button("Connect")
    assert sorted(form.checkboxes) == [f"Business checking acc-{n} · •••• 5678" for n in (1, 2, 3)]
    assert "12345678" not in response.text


async def test_connect_links_the_connection_and_the_chosen_accounts(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    start = (sandbox.clock.today() - timedelta(days=3)).isoformat()

    response = await _connect(browser, choose, ["acc-1", "acc-2"], start)

    page = Page(response.text)
    assert response.status_code == 200
    assert page.text("connected") == "Connected"
    assert page.attr("back-to-bank", "href") == RETURN_URL
    assert page.text("back-to-bank") == "Back to your bank"
    accounts = await _accounts(api, ref)
    assert [accounts[a]["status"] for a in ("acc-1", "acc-2", "acc-3")] == [
        "connected",
        "connected",
        "pending",
    ]
    assert accounts["acc-1"]["feedStartDate"] == start
    assert (await api.get(ref.path)).json()["status"] == "Linked"


async def test_a_start_date_more_than_7_days_back_is_clamped(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    earliest = (sandbox.clock.today() - timedelta(days=7)).isoformat()

    response = await _connect(
        browser, choose, ["acc-1"], (sandbox.clock.today() - timedelta(days=30)).isoformat()
    )

    assert f"moved to {earliest}" in response.text
    assert (await _accounts(api, ref))["acc-1"]["feedStartDate"] == earliest


async def test_a_future_start_date_is_refused(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)

    response = await _connect(
        browser, choose, ["acc-1"], (sandbox.clock.today() + timedelta(days=1)).isoformat()
    )

    assert response.status_code == 400
    assert "cannot be in the future" in Page(response.text).text("error")
    assert (await _accounts(api, ref))["acc-1"]["status"] == "pending"
    assert (await api.get(ref.path)).json()["status"] == "PendingAuth"


async def test_connect_needs_at_least_one_account(
    browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)

    response = await _connect(browser, choose, [])

    assert response.status_code == 400
    assert Page(response.text).text("error") == "Select at least one account."


async def test_credentials_sign_in_once(browser: httpx.AsyncClient, ref: ConnectionRef) -> None:
    username, password = await get_credentials(browser, ref.link_url)

    wrong = await _sign_in(browser, username, "not-the-password")
    first = await _sign_in(browser, username, password)
    second = await _sign_in(browser, username, password)

    assert wrong.status_code == 401
    assert first.status_code == 200
    assert second.status_code == 401
    assert "not valid" in Page(second.text).text("error")


async def test_revoked_credentials_cannot_sign_in(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    await api.delete(f"{ref.accounts}/credentials")

    assert (await _sign_in(browser, username, password)).status_code == 401


async def test_api_generated_credentials_sign_in_too(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    pair = (await api.post(f"{ref.accounts}/credentials", json={})).json()

    assert (await _sign_in(browser, pair["username"], pair["password"])).status_code == 200


async def test_disconnect_takes_effect_after_the_delay_and_unlinks_when_all_are_gone(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    connected = Page((await _connect(browser, choose, ["acc-1", "acc-2"])).text)

    first = connected.form_with_button("Disconnect")
    assert first.fields["account"] == "acc-1"
    after_first = Page((await browser.post(path_of(first.action), data=first.fields)).text)
    assert (await _accounts(api, ref))["acc-1"]["status"] == "connected"

    sandbox.clock.advance(timedelta(minutes=10, seconds=1))
    accounts = await _accounts(api, ref)
    assert accounts["acc-1"]["status"] == "disconnected"
    assert accounts["acc-2"]["status"] == "connected"
    assert (await api.get(ref.path)).json()["status"] == "Linked"

    second = after_first.form_with_button("Disconnect")
    assert second.fields["account"] == "acc-2"
    await browser.post(path_of(second.action), data=second.fields)
    sandbox.clock.advance(timedelta(minutes=10, seconds=1))

    assert (await _accounts(api, ref))["acc-2"]["status"] == "disconnected"
    assert (await api.get(ref.path)).json()["status"] == "Unlinked"


@pytest.mark.parametrize("config_overrides", [{"disconnect_delay": timedelta(seconds=0.05)}])
async def test_disconnect_also_happens_on_a_timer(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    connected = Page((await _connect(browser, choose, ["acc-1"])).text)
    disconnect = connected.form_with_button("Disconnect")
    await browser.post(path_of(disconnect.action), data=disconnect.fields)

    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    deadline = asyncio.get_running_loop().time() + 10
    while connection.status.value != "Unlinked":  # no request comes: only the timer can do it
        assert asyncio.get_running_loop().time() < deadline, "the timer never fired"
        await asyncio.sleep(0.02)
    assert connection.source_accounts["acc-1"].status.value == "disconnected"
    assert connection.status.value == "Unlinked"


async def test_reconnecting_an_unlinked_connection_links_it_again(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    await _connect(browser, choose, ["acc-1"])
    await api.patch(ref.path, json={"status": "Unlinked"})
    assert (await api.get(ref.path)).json()["status"] == "Unlinked"

    fresh = (await api.get(ref.path)).json()["linkUrl"]
    username, password = await get_credentials(browser, fresh)
    choose = Page((await _sign_in(browser, username, password)).text)
    await _connect(browser, choose, ["acc-2"])

    assert (await api.get(ref.path)).json()["status"] == "Linked"


async def test_a_simulator_session_ends_after_an_hour(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    sandbox.clock.advance(timedelta(hours=1, seconds=1))

    response = await _connect(browser, choose, ["acc-1"])

    assert response.status_code == 401
    assert "session has ended" in Page(response.text).text("error")


async def test_the_simulator_speaks_french(browser: httpx.AsyncClient, ref: ConnectionRef) -> None:
    page = Page((await browser.get("/qbo", params={"lang": "fr"})).text)

    form = page.form_with_button("Se connecter")
    assert form.fields["lang"] == "fr"
    assert "Ce n'est pas Codat" in page.text("sandbox-banner")


async def test_patching_the_last_connected_account_to_disconnected_unlinks_at_once(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    username, password = await get_credentials(browser, ref.link_url)
    choose = Page((await _sign_in(browser, username, password)).text)
    await _connect(browser, choose, ["acc-1"])

    response = await api.patch(
        f"{ref.accounts}/acc-1", json={"id": "acc-1", "status": "disconnected"}
    )

    assert response.json()["status"] == "disconnected"
    assert (await api.get(ref.path)).json()["status"] == "Unlinked"

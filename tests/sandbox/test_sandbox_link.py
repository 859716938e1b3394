"""The QuickBooks Online Bank Feeds Link page that a connection's linkUrl opens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.sandbox import create_sandbox_app
from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_pages import Page, path_of
from tests.sandbox.sandbox_support import ConnectionRef, get_credentials, sandbox_config


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "callout_title_en": "Need help?",
        "callout_body_en": "Call us on 555-0100, any day.",
        "callout_title_fr": "Besoin d'aide ?",
        "callout_body_fr": "Appelez-nous au 555-0100, tous les jours.",
    }


@pytest.fixture
async def ref(new_connection) -> ConnectionRef:
    connection: ConnectionRef = await new_connection()
    return connection


def _assert_page_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-type"].startswith("text/html")


async def test_link_url_opens_the_permissions_step(
    browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    response = await browser.get(path_of(ref.link_url))

    assert response.status_code == 200
    _assert_page_headers(response)
    page = Page(response.text)
    assert page.text("title") == "Connect to QuickBooks Online Bank Feeds"
    assert "not Codat" in page.text("sandbox-banner")
    assert page.has("permissions")
    assert "Continue" in page.form_with_button("Continue").buttons
    assert "<script" not in response.text
    assert "src=" not in response.text
    assert "<link" not in response.text


async def test_get_credentials_shows_a_one_time_pair_and_quickbooks_steps(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    start = Page((await browser.get(path_of(ref.link_url))).text)
    allow = start.form_with_button("Continue")
    setup_response = await browser.get(path_of(allow.action), params=allow.fields)
    setup = Page(setup_response.text)

    assert setup.text("callout-title") == "Need help?"
    assert setup.text("callout-body") == "Call us on 555-0100, any day."
    get = setup.form_with_button("Get credentials")
    assert get.method == "post"
    issued_response = await browser.post(path_of(get.action), data=get.fields)
    issued = Page(issued_response.text)

    _assert_page_headers(issued_response)
    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    assert issued.text("username") in connection.credentials
    assert connection.credentials[issued.text("username")].password == issued.text("password")
    assert "Transactions > Bank transactions" in issued.text("instructions")
    assert issued.text("open-quickbooks") == "Open QuickBooks (sandbox simulator)"
    assert issued.attr("open-quickbooks", "href").startswith("http://sandbox/qbo")
    assert "Revoke credentials" in issued.form_with_button("Revoke credentials").buttons


async def test_revoke_credentials_invalidates_all_of_them(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    await get_credentials(browser, ref.link_url)
    start = Page((await browser.get(path_of(ref.link_url))).text)
    allow = start.form_with_button("Continue")
    setup = Page((await browser.get(path_of(allow.action), params=allow.fields)).text)
    get = setup.form_with_button("Get credentials")
    issued = Page((await browser.post(path_of(get.action), data=get.fields)).text)
    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    assert len(connection.credentials) == 2

    revoke = issued.form_with_button("Revoke credentials")
    revoked = Page((await browser.post(path_of(revoke.action), data=revoke.fields)).text)

    assert connection.credentials == {}
    assert "revoked" in revoked.text("notice")
    assert revoked.form_with_button("Get credentials")


async def test_link_page_is_401_once_the_one_time_password_is_an_hour_old(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    assert (await browser.get(path_of(ref.link_url))).status_code == 200

    sandbox.clock.advance(timedelta(hours=1, seconds=1))
    response = await browser.get(path_of(ref.link_url))

    assert response.status_code == 401
    _assert_page_headers(response)
    page = Page(response.text)
    assert page.text("title") == "This link has expired"
    assert "go back to your bank" in page.text("message").lower()


async def test_an_expired_password_cannot_get_credentials(
    browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    start = Page((await browser.get(path_of(ref.link_url))).text)
    allow = start.form_with_button("Continue")
    setup = Page((await browser.get(path_of(allow.action), params=allow.fields)).text)
    get = setup.form_with_button("Get credentials")
    sandbox.clock.advance(timedelta(minutes=61))

    response = await browser.post(path_of(get.action), data=get.fields)

    assert response.status_code == 401
    assert sandbox.store.connection(ref.company_id, ref.connection_id).credentials == {}


async def test_a_fresh_link_url_works_after_the_old_one_expired(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef, sandbox: Sandbox
) -> None:
    sandbox.clock.advance(timedelta(hours=2))
    fresh = (await api.get(ref.path)).json()["linkUrl"]

    assert (await browser.get(path_of(ref.link_url))).status_code == 401
    assert (await browser.get(path_of(fresh))).status_code == 200


@pytest.mark.parametrize("tamper", ["otp", "company", "connection", "missing"])
async def test_a_password_for_another_connection_or_none_is_401(
    browser: httpx.AsyncClient, new_connection, ref: ConnectionRef, tamper: str
) -> None:
    other = await new_connection("Other Co")
    url = path_of(ref.link_url)
    if tamper == "otp":
        otp = url.rsplit("=", 1)[1]
        url = url.replace(f"otp={otp}", "otp=" + ("000000" if otp != "000000" else "111111"))
    elif tamper == "company":
        url = url.replace(ref.company_id, other.company_id)
    elif tamper == "connection":
        url = url.replace(ref.connection_id, other.connection_id)
    else:
        url = url.split("?")[0]

    response = await browser.get(url)

    assert response.status_code == 401


async def test_a_deleted_connection_link_is_401(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    await api.delete(ref.path)

    assert (await browser.get(path_of(ref.link_url))).status_code == 401


async def test_pages_follow_lang_and_accept_language(
    browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    french = Page((await browser.get(path_of(ref.link_url) + "&lang=fr")).text)
    by_header = await browser.get(
        path_of(ref.link_url), headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.8"}
    )
    english = await browser.get(
        path_of(ref.link_url), headers={"Accept-Language": "de-DE,en;q=0.5,fr;q=0.4"}
    )

    assert french.text("title") == "Se connecter aux flux bancaires de QuickBooks Online"
    assert "Continuer" in french.form_with_button("Continuer").buttons
    assert '<html lang="fr">' in by_header.text
    assert '<html lang="en">' in english.text
    assert "otp=" in french.attr("lang-en", "href")
    assert "lang=en" in french.attr("lang-en", "href")


async def test_french_setup_shows_the_french_callout(
    browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    start = Page((await browser.get(path_of(ref.link_url) + "&lang=fr")).text)
    allow = start.form_with_button("Continuer")
    setup = Page((await browser.get(path_of(allow.action), params=allow.fields)).text)

    assert setup.text("callout-title") == "Besoin d'aide ?"
    get = setup.form_with_button("Obtenir les identifiants")
    assert get.fields["lang"] == "fr"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"callout_title_en": "x" * 51, "callout_body_en": "body"}, "title is 51 characters"),
        ({"callout_title_en": "Title", "callout_body_en": "y" * 151}, "body is 151 characters"),
        ({"callout_title_en": "Title"}, "a title needs a body"),
        ({"callout_body_fr": "Corps"}, "a body needs a title"),
        ({"callout_title_en": "<b>Hi</b>", "callout_body_en": "body"}, "plain text"),
        ({"callout_title_en": "Hi", "callout_body_en": "see [docs](http://x)"}, "plain text"),
        ({"callout_title_en": "Hi", "callout_body_en": "Tom &amp; Jerry"}, "plain text"),
    ],
)
def test_invalid_callout_config_is_refused_at_creation(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_sandbox_app(sandbox_config(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {"public_url": "sandbox.local"},
        {"webhook_secret": "not-a-secret"},
        {"webhook_secret": "whsec_***"},
        {"api_key": ""},
    ],
)
def test_invalid_config_is_refused_at_creation(overrides: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        create_sandbox_app(sandbox_config(**overrides))


async def test_callout_text_is_escaped(ref: ConnectionRef) -> None:
    app = create_sandbox_app(
        sandbox_config(callout_title_en="A & B", callout_body_en='Tom\'s "quoted" help')
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        company = app.state.sandbox.store.create_company("Acme", "", {})
        connection = app.state.sandbox.store.create_connection(company.id, "hcws")
        link_url = app.state.sandbox.store.issue_link_url(connection)
        otp = link_url.rsplit("=", 1)[1]
        setup = await client.get(
            f"/link/companies/{company.id}/connections/{connection.id}/setup", params={"otp": otp}
        )

    assert "A &amp; B" in setup.text
    assert "Tom&#39;s &#34;quoted&#34; help" in setup.text


async def test_hosted_link_redirect_explains_itself(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, ref: ConnectionRef
) -> None:
    company = (await api.get(f"/companies/{ref.company_id}")).json()

    response = await browser.get(path_of(company["redirect"]))

    assert response.status_code == 200
    assert "linkUrl" not in response.text
    assert "Go back to your bank" in Page(response.text).text("message")

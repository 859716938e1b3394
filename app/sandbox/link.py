"""The QuickBooks Online Bank Feeds Link page that a connection's linkUrl opens.

Each step re-checks the one-time password from the linkUrl, carried in the query or a hidden
form field, so an expired or foreign password never reaches the credentials.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from app.sandbox.emulator import Sandbox, sandbox_of
from app.sandbox.pages import page_language, render_page, with_query
from app.sandbox.state import Connection

router = APIRouter()

LINK = "/link/companies/{company_id}/connections/{connection_id}"
_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<circle cx="32" cy="32" r="32" fill="#2ca01c"/>'
    '<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="700" '
    'text-anchor="middle" fill="#fff">qb</text></svg>'
)


def _link_url(sandbox: Sandbox, company_id: str, connection_id: str, step: str) -> str:
    return (
        f"{sandbox.config.base_url}/link/companies/{company_id}/connections/{connection_id}/{step}"
    )


def _checked(
    request: Request, company_id: str, connection_id: str, otp: str, lang: str, step: str
) -> Connection | HTMLResponse:
    """The connection behind a good one-time password, or the expired-link page."""
    sandbox = sandbox_of(request)
    connection = sandbox.store.connection_for_link_pass(company_id, connection_id, otp)
    if connection is not None:
        return connection
    return render_page(
        sandbox.config.base_url,
        "message.html",
        lang,
        title_key="link.expired.title",
        message_key="link.expired.body",
        switch_url=_link_url(sandbox, company_id, connection_id, step),
        switch_params={"otp": otp},
        status_code=401,
    )


@router.get(LINK + "/start")
async def permissions(
    request: Request, company_id: str, connection_id: str, otp: str = ""
) -> HTMLResponse:
    lang = page_language(request)
    checked = _checked(request, company_id, connection_id, otp, lang, "start")
    if isinstance(checked, HTMLResponse):
        return checked
    sandbox = sandbox_of(request)
    return render_page(
        sandbox.config.base_url,
        "link_permissions.html",
        lang,
        title_key="link.title",
        switch_url=_link_url(sandbox, company_id, connection_id, "start"),
        switch_params={"otp": otp},
        otp=otp,
        setup_url=_link_url(sandbox, company_id, connection_id, "setup"),
    )


@router.get(LINK + "/setup")
async def setup(request: Request, company_id: str, connection_id: str, otp: str = "") -> Response:
    lang = page_language(request)
    checked = _checked(request, company_id, connection_id, otp, lang, "setup")
    if isinstance(checked, HTMLResponse):
        return checked
    return _setup_page(sandbox_of(request), checked, otp, lang, notice=None)


def _setup_page(
    sandbox: Sandbox, connection: Connection, otp: str, lang: str, notice: str | None
) -> HTMLResponse:
    setup_url = _link_url(sandbox, connection.company_id, connection.id, "setup")
    return render_page(
        sandbox.config.base_url,
        "link_setup.html",
        lang,
        title_key="link.title",
        switch_url=setup_url,
        switch_params={"otp": otp},
        otp=otp,
        notice=notice,
        callout=sandbox.config.callout(lang),
        credentials_url=_link_url(sandbox, connection.company_id, connection.id, "credentials"),
    )


@router.post(LINK + "/credentials")
async def get_credentials(
    request: Request,
    company_id: str,
    connection_id: str,
    otp: Annotated[str, Form()] = "",
    lang: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    page_lang = page_language(request, lang)
    checked = _checked(request, company_id, connection_id, otp, page_lang, "setup")
    if isinstance(checked, HTMLResponse):
        return checked
    sandbox = sandbox_of(request)
    credential = sandbox.bank_feeds.issue_credentials(checked)
    return render_page(
        sandbox.config.base_url,
        "link_credentials.html",
        page_lang,
        title_key="link.title",
        switch_url=_link_url(sandbox, company_id, connection_id, "setup"),
        switch_params={"otp": otp},
        otp=otp,
        username=credential.username,
        password=credential.password,
        quickbooks_url=with_query(f"{sandbox.config.base_url}/qbo", lang=page_lang),
        revoke_url=_link_url(sandbox, company_id, connection_id, "credentials/revoke"),
    )


@router.post(LINK + "/credentials/revoke")
async def revoke_credentials(
    request: Request,
    company_id: str,
    connection_id: str,
    otp: Annotated[str, Form()] = "",
    lang: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    page_lang = page_language(request, lang)
    checked = _checked(request, company_id, connection_id, otp, page_lang, "setup")
    if isinstance(checked, HTMLResponse):
        return checked
    sandbox = sandbox_of(request)
    sandbox.bank_feeds.revoke_credentials(checked)
    return _setup_page(sandbox, checked, otp, page_lang, notice="link.revoked")


@router.get("/link/company/{company_id}")
async def hosted_link(request: Request, company_id: str) -> HTMLResponse:
    """A company's `redirect` (Hosted Link), which QuickBooks Online Bank Feeds does not use."""
    sandbox = sandbox_of(request)
    return render_page(
        sandbox.config.base_url,
        "message.html",
        page_language(request),
        title_key="hosted.title",
        message_key="hosted.body",
        switch_url=f"{sandbox.config.base_url}/link/company/{company_id}",
    )


@router.get("/logos/hcws.svg")
async def logo() -> Response:
    return Response(_LOGO, media_type="image/svg+xml")

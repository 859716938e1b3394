"""A QuickBooks Online simulator: sign in with one-time credentials, connect, disconnect.

The simulator session travels in a hidden form field (or the query on plain links), never in
a cookie, so it works the same mounted inside the service and running on its own.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from app.sandbox.emulator import Sandbox, sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.i18n import translate
from app.sandbox.pages import page_language, render_page, with_query
from app.sandbox.state import Connection, SourceAccount, SourceAccountStatus
from app.sandbox.wire import format_date, format_datetime

router = APIRouter(prefix="/qbo")

_SELECTABLE = (
    SourceAccountStatus.PENDING,
    SourceAccountStatus.DISCONNECTED,
    SourceAccountStatus.UNKNOWN,
)


def _url(sandbox: Sandbox, step: str = "") -> str:
    return f"{sandbox.config.base_url}/qbo{step}"


def _account_view(account: SourceAccount) -> dict[str, str | None]:
    return {
        "id": account.id,
        "account_name": account.account_name,
        "masked_number": "•••• " + account.account_number[-4:],
        "feed_start_date": format_date(account.feed_start_date)
        if account.feed_start_date
        else None,
        "disconnect_due": format_datetime(account.disconnect_due)
        if account.disconnect_due
        else None,
    }


def _sign_in_page(
    sandbox: Sandbox, lang: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return render_page(
        sandbox.config.base_url,
        "qbo_sign_in.html",
        lang,
        title_key="qbo.title",
        switch_url=_url(sandbox),
        status_code=status_code,
        error=error,
        sign_in_url=_url(sandbox, "/sign-in"),
    )


def _choose_page(
    sandbox: Sandbox,
    connection: Connection,
    session: str,
    lang: str,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    selectable = [
        _account_view(a) for a in connection.source_accounts.values() if a.status in _SELECTABLE
    ]
    return render_page(
        sandbox.config.base_url,
        "qbo_choose.html",
        lang,
        title_key="qbo.title",
        switch_url=_url(sandbox, "/choose"),
        switch_params={"session": session},
        status_code=status_code,
        error=error,
        session=session,
        accounts=selectable,
        start_date=format_date(sandbox.clock.today()),
        connect_url=_url(sandbox, "/connect"),
        connected_url=with_query(_url(sandbox, "/accounts"), session=session, lang=lang),
    )


def _connected_page(
    sandbox: Sandbox, connection: Connection, session: str, lang: str, notices: list[str]
) -> HTMLResponse:
    connected = [
        _account_view(a)
        for a in connection.source_accounts.values()
        if a.status is SourceAccountStatus.CONNECTED
    ]
    return render_page(
        sandbox.config.base_url,
        "qbo_connected.html",
        lang,
        title_key="qbo.title",
        switch_url=_url(sandbox, "/accounts"),
        switch_params={"session": session},
        notices=notices,
        session=session,
        accounts=connected,
        disconnect_url=_url(sandbox, "/disconnect"),
        choose_url=with_query(_url(sandbox, "/choose"), session=session, lang=lang),
        return_url=sandbox.config.return_url,
    )


def _session_ended(sandbox: Sandbox, lang: str) -> HTMLResponse:
    return _sign_in_page(sandbox, lang, "qbo.session.ended", status_code=401)


@router.get("")
async def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(sandbox_of(request), page_language(request))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    lang: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    sandbox = sandbox_of(request)
    page_lang = page_language(request, lang)
    session = sandbox.bank_feeds.sign_in(username, password)
    connection = sandbox.bank_feeds.qbo_connection(session.token) if session else None
    if session is None or connection is None:
        return _sign_in_page(sandbox, page_lang, "qbo.sign_in.failed", status_code=401)
    return _choose_page(sandbox, connection, session.token, page_lang)


@router.get("/choose")
async def choose(request: Request, session: str = "") -> HTMLResponse:
    sandbox = sandbox_of(request)
    lang = page_language(request)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, lang)
    return _choose_page(sandbox, connection, session, lang)


@router.post("/connect")
async def connect(request: Request) -> HTMLResponse:
    sandbox = sandbox_of(request)
    form = await request.form()
    session = str(form.get("session", ""))
    lang = page_language(request, str(form.get("lang", "")) or None)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, lang)
    account_ids = [str(a) for a in form.getlist("account")]
    if not account_ids:
        return _choose_page(sandbox, connection, session, lang, "qbo.choose.missing", 400)
    try:
        chosen = date.fromisoformat(str(form.get("start_date", "")))
    except ValueError:
        return _choose_page(sandbox, connection, session, lang, "qbo.start_date.invalid", 400)
    try:
        start = sandbox.bank_feeds.feed_start(chosen)
    except ValueError:
        return _choose_page(sandbox, connection, session, lang, "qbo.start_date.future", 400)
    try:
        sandbox.bank_feeds.connect_accounts(connection, account_ids, start.day)
    except CodatError:
        return _choose_page(sandbox, connection, session, lang, "qbo.choose.unavailable", 400)
    notices = []
    if start.clamped:
        notices.append(translate(lang, "qbo.start_date.clamped", day=format_date(start.day)))
    return _connected_page(sandbox, connection, session, lang, notices)


@router.get("/accounts")
async def connected_accounts(request: Request, session: str = "") -> HTMLResponse:
    sandbox = sandbox_of(request)
    lang = page_language(request)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, lang)
    return _connected_page(sandbox, connection, session, lang, [])


@router.post("/disconnect")
async def disconnect(
    request: Request,
    session: Annotated[str, Form()] = "",
    account: Annotated[str, Form()] = "",
    lang: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    sandbox = sandbox_of(request)
    page_lang = page_language(request, lang)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, page_lang)
    try:
        sandbox.bank_feeds.request_disconnect(connection, account)
        name = connection.source_accounts[account].account_name
        notices = [translate(page_lang, "qbo.disconnect.requested", name=name)]
    except CodatError:
        notices = []  # already disconnected or gone: the page shows the current state
    return _connected_page(sandbox, connection, session, page_lang, notices)

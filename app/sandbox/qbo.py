"""A QuickBooks Online simulator: sign in with one-time credentials, connect, disconnect.

The simulator session travels in a hidden form field (or the query on plain links), never in
a cookie, so it works the same mounted inside the service and running on its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from app.sandbox.emulator import Sandbox, sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.i18n import format_money, translate
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


def _account_view(account: SourceAccount, review_url: str = "") -> dict[str, str | None]:
    return {
        "review_url": review_url,
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
        _account_view(a, _review_url(sandbox, session, a.id, lang))
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


# Banking > For review: what QuickBooks shows of a connected account after its last pull.


def _review_url(sandbox: Sandbox, session: str, account_id: str, lang: str) -> str:
    return with_query(_url(sandbox, "/review"), session=session, account=account_id, lang=lang)


def _last_pull(sandbox: Sandbox, account: SourceAccount) -> datetime:
    """QuickBooks pulls from Codat daily (at 00:00 UTC here), and whenever the SMB hits Update."""
    daily = datetime.combine(sandbox.clock.today(), time(), tzinfo=UTC)
    pulled = account.qbo_pulled_at
    return daily if pulled is None or pulled < daily else pulled


def _review_page(
    sandbox: Sandbox,
    connection: Connection,
    session: str,
    lang: str,
    account_id: str,
    notices: list[str],
) -> HTMLResponse:
    account = connection.source_accounts.get(account_id)
    if account is None or account.status is not SourceAccountStatus.CONNECTED:
        notices = [translate(lang, "qbo.review.unavailable")]
        page = _connected_page(sandbox, connection, session, lang, notices)
        page.status_code = 404
        return page
    pulled = _last_pull(sandbox, account)
    shown = [w.transaction for w in account.written if w.written_at <= pulled]
    rows = [
        {
            "id": t.id,
            "date": format_date(t.date.date()) if t.date else "",
            "description": t.description or "",
            "amount": format_money(t.amount, lang) if t.amount is not None else "",
            "balance": format_money(t.balance, lang) if t.balance is not None else "",
        }
        for t in shown
    ]
    last_balance = shown[-1].balance if shown else None
    return render_page(
        sandbox.config.base_url,
        "qbo_review.html",
        lang,
        title_key="qbo.title",
        switch_url=_url(sandbox, "/review"),
        switch_params={"session": session, "account": account.id},
        notices=notices,
        session=session,
        account=_account_view(account),
        rows=rows,
        bank_balance=format_money(last_balance, lang) if last_balance is not None else None,
        last_pull=format_datetime(pulled),
        update_url=_url(sandbox, "/review/update"),
        accounts_url=with_query(_url(sandbox, "/accounts"), session=session, lang=lang),
    )


@router.get("/review")
async def for_review(request: Request, session: str = "", account: str = "") -> HTMLResponse:
    sandbox = sandbox_of(request)
    lang = page_language(request)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, lang)
    return _review_page(sandbox, connection, session, lang, account, [])


@router.post("/review/update")
async def update(
    request: Request,
    session: Annotated[str, Form()] = "",
    account: Annotated[str, Form()] = "",
    lang: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    """The SMB's Update: QuickBooks pulls from Codat now."""
    sandbox = sandbox_of(request)
    page_lang = page_language(request, lang)
    connection = sandbox.bank_feeds.qbo_connection(session)
    if connection is None:
        return _session_ended(sandbox, page_lang)
    source_account = connection.source_accounts.get(account)
    notices = []
    if source_account is not None and source_account.status is SourceAccountStatus.CONNECTED:
        source_account.qbo_pulled_at = sandbox.clock.now()
        notices.append(translate(page_lang, "qbo.review.updated"))
    return _review_page(sandbox, connection, session, page_lang, account, notices)

"""Who may use the console: the session a request carries, the CSRF token a form carries, and
signing in and out with the ops token (sessions themselves are `service.py`'s)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.console.service import CSRF_REFUSED, AuditEntry, ConsoleService, SessionCheck
from app.console.views import PREFIX, SESSION_COOKIE, SIGN_IN_COOKIE, View, page_language, safe_next
from app.deps import SettingsDep, provided
from app.pages import BROWSER_HEADERS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ConsoleDep = Annotated[ConsoleService, provided(ConsoleService)]


class SignInRequired(Exception):
    def __init__(self, check: SessionCheck, path: str) -> None:
        self.expired = check.expired
        self.path = path


class CsrfRefused(Exception):
    def __init__(self, view: View) -> None:
        self.view = view


async def signed_in(request: Request, console: ConsoleDep, settings: SettingsDep) -> View:
    check = await console.check(request.cookies.get(SESSION_COOKIE))
    if check.session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(check, path if request.method == "GET" else PREFIX + "/")
    return View(request, console, settings, check.session, page_language(request))


SignedIn = Annotated[View, Depends(signed_in)]


async def checked_form(
    view: SignedIn, csrf: Annotated[str | None, Form(max_length=200)] = None
) -> View:
    """A form that changes something: it must carry this session's CSRF token."""
    assert view.who is not None
    if not view.console.csrf_ok(view.who, csrf):
        entry = AuditEntry(view.who.id, CSRF_REFUSED, view.request.url.path)
        await view.console.record(entry, "refused", remote=view.remote)
        raise CsrfRefused(view)
    return view


Checked = Annotated[View, Depends(checked_form)]


async def send_to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    params = {"next": exc.path} if exc.path != PREFIX + "/" else {}
    if exc.expired:
        params["expired"] = "1"
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(f"{PREFIX}/sign-in{query}", 303, headers=BROWSER_HEADERS)


async def refuse_form(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    view = exc.view
    return view.render(
        "message.html", 403, title=view.t["csrf_title"], body=view.t["csrf_body"], back=PREFIX + "/"
    )


# --- signing in and out ----------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, console: ConsoleDep, settings: SettingsDep) -> Response:
    view = View(request, console, settings, None, page_language(request))
    next_path = safe_next(request.query_params.get("next"))
    check = await console.check(request.cookies.get(SESSION_COOKIE))
    if check.session is not None:
        view.who = check.session
        return view.redirect(next_path)
    notice = None
    if request.query_params.get("expired") or check.expired:
        notice = view.t["session_expired"]
    elif request.query_params.get("signed_out"):
        notice = view.t["signed_out"]
    return view.sign_in_page(next_path=next_path, notice=notice)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    console: ConsoleDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str | None, Form(max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    view = View(request, console, settings, None, page_language(request))
    next_path = safe_next(next)
    if not console.sign_in_form_ok(request.cookies.get(SIGN_IN_COOKIE), csrf):
        return view.sign_in_page(403, next_path=next_path, error=view.t["sign_in_form_stale"])
    result = await console.sign_in(token, view.remote)
    if result.retry_after is not None:
        minutes = -(-result.retry_after // 60)
        return view.sign_in_page(
            429,
            next_path=next_path,
            error=view.t["sign_in_paused"].format(minutes=minutes),
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.session is None:
        return view.sign_in_page(401, next_path=next_path, error=view.t["sign_in_wrong"])
    view.who = result.session
    response = view.redirect(next_path)
    view.clear_cookie(response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(view: Checked) -> Response:
    assert view.who is not None
    await view.console.sign_out(view.who, view.remote)
    view.who = None
    response = view.redirect(f"{PREFIX}/sign-in?signed_out=1")
    view.clear_cookie(response, SESSION_COOKIE)
    return response

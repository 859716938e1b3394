"""How the console answers a browser: its pages (Jinja2, strict CSP), its cookies, and the
words and numbers in the page's language."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.bank_feeds.schemas import money_str
from app.console import i18n
from app.console.service import SESSION_IDLE, SIGN_IN_FORM_LIFETIME, ConsoleService, ConsoleSession
from app.errors import DomainError
from app.pages import BROWSER_HEADERS, LANGUAGES, pick_language
from app.settings import Settings

PREFIX = "/console"
SESSION_COOKIE = "console_session"
SIGN_IN_COOKIE = "console_sign_in"
LANG_COOKIE = "console_lang"
STATIC_DIR = Path(__file__).parent / "static"
# Nothing inline, nothing from elsewhere: scripts and styles are the console's own files.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    **BROWSER_HEADERS,
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
NARROW_SPACE = "\u202f"  # French groups thousands with it
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$")

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)


def secure_cookies(settings: Settings) -> bool:
    """Cookies are `Secure` unless the service is on loopback (plain http in development)."""
    host = urlsplit(settings.public_base_url).hostname or ""
    return not LOOPBACK.fullmatch(host)


def page_language(request: Request) -> str:
    """`?lang=`, then the language chosen earlier (a cookie), then Accept-Language."""
    chosen = request.query_params.get("lang")
    if chosen not in LANGUAGES:
        chosen = request.cookies.get(LANG_COOKIE)
    return pick_language(request, chosen if chosen in LANGUAGES else None)


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site."""
    if not path or not path.startswith(PREFIX + "/") or "//" in path or "\\" in path:
        return PREFIX + "/"
    return path


@dataclass
class View:
    """One request's way to answer: its language, its session, the service's settings."""

    request: Request
    console: ConsoleService
    settings: Settings
    who: ConsoleSession | None
    lang: str

    @property
    def t(self) -> dict[str, str]:
        return i18n.TEXT[self.lang]

    @property
    def remote(self) -> str | None:
        return self.request.client.host if self.request.client else None

    def render(
        self,
        template: str,
        status_code: int = 200,
        *,
        title: str,
        section: str = "",
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        context = {"notice": None, "error": None, **context}
        html = _env.get_template(template).render(
            t=self.t,
            lang=self.lang,
            label=lambda value: i18n.label(self.lang, value),
            when=when,
            money=lambda value, currency: money(value, currency, self.lang),
            other_language_url=self.url_with(lang="fr" if self.lang == "en" else "en"),
            who=self.who,
            title=title,
            section=section,
            sandbox_mode=self.settings.sandbox_mode,
            **context,
        )
        response = HTMLResponse(html, status_code, headers={**HEADERS, **(headers or {})})
        return self.finish(response)

    def redirect(self, url: str) -> RedirectResponse:
        return self.finish(RedirectResponse(url, 303, headers=BROWSER_HEADERS))

    def finish(self, response: Response) -> Any:
        """Renew the session cookie (only idle time counts) and keep a chosen language."""
        if self.who is not None:
            self.set_cookie(response, SESSION_COOKIE, self.console.cookie(self.who), SESSION_IDLE)
        if self.request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, self.lang, max_age=365 * 86400, path=PREFIX, samesite="strict"
            )
        return response

    def set_cookie(self, response: Response, name: str, value: str, lifetime: Any) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(lifetime.total_seconds()),
            path=PREFIX,
            secure=secure_cookies(self.settings),
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(
            name,
            path=PREFIX,
            secure=secure_cookies(self.settings),
            httponly=True,
            samesite="strict",
        )

    def url_with(self, **changes: str | None) -> str:
        """This page's URL with some query parameters changed (None drops one)."""
        params: dict[str, str | None] = {**self.request.query_params, **changes}
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return self.request.url.path + (f"?{query}" if query else "")

    def sign_in_page(
        self, status_code: int = 200, *, next_path: str, notice: str | None = None, **extra: Any
    ) -> HTMLResponse:
        """The sign-in form, with a fresh CSRF pair (a cookie and the form's token)."""
        cookie, form_token = self.console.sign_in_form()
        response = self.render(
            "sign_in.html",
            status_code,
            title=self.t["sign_in_title"],
            form_token=form_token,
            next_path=next_path,
            notice=notice,
            **extra,
        )
        self.set_cookie(response, SIGN_IN_COOKIE, cookie, SIGN_IN_FORM_LIFETIME)
        return response

    def failure(self, exc: DomainError, action: str, back: str) -> HTMLResponse:
        """A service said no: what was tried, the service's reason, the way back."""
        return self.render(
            "message.html",
            exc.status_code,
            title=self.t["failed_title"].format(action=action),
            body=str(exc.detail),
            back=back,
            headers={"Retry-After": exc.headers["Retry-After"]}
            if exc.headers and "Retry-After" in exc.headers
            else None,
        )

    def bad_request(self, back: str) -> HTMLResponse:
        return self.render(
            "message.html",
            400,
            title=self.t["bad_request"],
            body=self.t["bad_request_body"],
            back=back,
        )

    def customer_not_found(self, customer_id: str) -> HTMLResponse:
        return self.not_found(self.t["customer_not_found"].format(id=customer_id))

    def not_found(self, body: str) -> HTMLResponse:
        return self.render(
            "message.html", 404, title=self.t["not_found_title"], body=body, back=PREFIX + "/"
        )


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def money(value: Decimal, currency: str, lang: str) -> str:
    """1,234.50 USD in English, 1 234,50 USD in French; exact, never rounded."""
    text = money_str(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}"
    if lang == "fr":
        return f"{sign}{grouped.replace(',', NARROW_SPACE)},{fraction} {currency}"
    return f"{sign}{grouped}.{fraction} {currency}"

"""HTML pages: autoescaped templates, page language, and the headers every page carries."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.sandbox.i18n import LANGUAGES, pick_language, translate

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)


def page_language(request: Request, form_lang: str | None = None) -> str:
    return pick_language(
        form_lang or request.query_params.get("lang"), request.headers.get("accept-language")
    )


def with_query(url: str, **params: str) -> str:
    return f"{url}?{urlencode(params)}" if params else url


def render_page(
    base_url: str,
    template: str,
    lang: str,
    *,
    title_key: str,
    switch_url: str,
    switch_params: dict[str, str] | None = None,
    status_code: int = 200,
    **context: object,
) -> HTMLResponse:
    """A page in `lang`, with links to the same page in the other languages."""
    languages = {
        code: with_query(switch_url, **{**(switch_params or {}), "lang": code})
        for code in LANGUAGES
    }
    html = _templates.get_template(template).render(
        lang=lang,
        t=partial(translate, lang),
        title_key=title_key,
        languages=languages,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=page_headers(base_url))


def page_headers(base_url: str) -> dict[str, str]:
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            f"form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
        ),
    }

"""Short bilingual (English/French) HTML pages for people in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

LANGUAGES = ("en", "fr")
# The service's own pages: nothing from elsewhere, never in a frame, never sniffed.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
BROWSER_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    # key: {lang: (title, what happened and what to do)}
    "token_invalid": {
        "en": (
            "This link is not valid",
            "The link you followed has expired or was already used. Go back to your bank "
            "and click Connect to QuickBooks again.",
        ),
        "fr": (
            "Ce lien n'est pas valide",
            "Le lien que vous avez suivi a expiré ou a déjà été utilisé. Retournez à votre "
            "banque et cliquez de nouveau sur Connecter à QuickBooks.",
        ),
    },
    "customer_unknown": {
        "en": (
            "We could not find your business",
            "Your bank has not set up QuickBooks bank feeds for your business yet. "
            "Please contact your bank.",
        ),
        "fr": (
            "Nous n'avons pas trouvé votre entreprise",
            "Votre banque n'a pas encore configuré les flux bancaires QuickBooks pour votre "
            "entreprise. Veuillez communiquer avec votre banque.",
        ),
    },
    "country_not_supported": {
        "en": (
            "Not available in your country",
            "QuickBooks Online bank feeds are available only to businesses in the United "
            "States and Canada. Please contact your bank.",
        ),
        "fr": (
            "Non offert dans votre pays",
            "Les flux bancaires QuickBooks Online sont offerts uniquement aux entreprises "
            "des États-Unis et du Canada. Veuillez communiquer avec votre banque.",
        ),
    },
    "no_accounts": {
        "en": (
            "No accounts to connect",
            "Your business has no bank accounts that can be connected yet. "
            "Please contact your bank.",
        ),
        "fr": (
            "Aucun compte à connecter",
            "Votre entreprise n'a encore aucun compte bancaire pouvant être connecté. "
            "Veuillez communiquer avec votre banque.",
        ),
    },
    "codat_unavailable": {
        "en": (
            "QuickBooks connection is busy",
            "We could not reach our connection partner just now. Nothing was lost. "
            "Please wait a minute and try again.",
        ),
        "fr": (
            "La connexion à QuickBooks est occupée",
            "Nous n'avons pas pu joindre notre partenaire de connexion. Rien n'a été perdu. "
            "Veuillez patienter une minute et réessayer.",
        ),
    },
    "codat_failed": {
        "en": (
            "We could not connect you to QuickBooks",
            "Something went wrong on our side. Please try again later; if it keeps "
            "happening, contact your bank.",
        ),
        "fr": (
            "Nous n'avons pas pu vous connecter à QuickBooks",
            "Un problème est survenu de notre côté. Veuillez réessayer plus tard; si le "
            "problème persiste, communiquez avec votre banque.",
        ),
    },
    "try_shortly": {
        "en": (
            "Please try again shortly",
            "This link is already at work, or it was clicked many times in a row. Wait a "
            "moment, then click Connect to QuickBooks again.",
        ),
        "fr": (
            "Veuillez réessayer dans un instant",
            "Ce lien est déjà en cours d'utilisation, ou il a été cliqué plusieurs fois de "
            "suite. Patientez un instant, puis cliquez de nouveau sur Connecter à QuickBooks.",
        ),
    },
    "not_found": {
        "en": ("Page not found", "This page does not exist. Go back to your bank."),
        "fr": ("Page introuvable", "Cette page n'existe pas. Retournez à votre banque."),
    },
    "request_invalid": {
        "en": ("This request is not valid", "Go back to your bank and try again."),
        "fr": ("Cette demande n'est pas valide", "Retournez à votre banque et réessayez."),
    },
}


def pick_language(request: Request, preferred: str | None = None) -> str:
    """The token's `lang` if any, then `?lang=`, then Accept-Language, else English."""
    for candidate in (preferred, request.query_params.get("lang")):
        if candidate in LANGUAGES:
            return str(candidate)
    header = request.headers.get("accept-language", "")
    ranked: list[tuple[float, str]] = []
    for part in header.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()[:2]
        quality = 1.0
        for param in pieces[1:]:
            if param.strip().startswith("q="):
                try:
                    quality = float(param.strip()[2:])
                except ValueError:
                    quality = 0.0
        if tag in LANGUAGES:
            ranked.append((quality, tag))
    if ranked:
        return max(ranked, key=lambda item: item[0])[1]
    return "en"


def render(
    template: str, status_code: int = 200, *, sandbox_mode: bool, **context: Any
) -> HTMLResponse:
    html = _env.get_template(template).render(
        sandbox_mode=sandbox_mode, lang=context.pop("lang", "en"), **context
    )
    return HTMLResponse(html, status_code=status_code, headers=BROWSER_HEADERS)


def message_page(key: str, status_code: int, lang: str, *, sandbox_mode: bool) -> HTMLResponse:
    messages = MESSAGES[key]
    other = "fr" if lang == "en" else "en"
    title, body = messages[lang]
    other_title, other_body = messages[other]
    return render(
        "message.html",
        status_code,
        sandbox_mode=sandbox_mode,
        lang=lang,
        title=title,
        body=body,
        other_lang=other,
        other_title=other_title,
        other_body=other_body,
        status=status_code,
    )

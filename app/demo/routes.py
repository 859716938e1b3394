"""The demo host app (sandbox mode only): customers, their Connect button, their status."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.bank_feeds.statuses import CONNECTED, account_status
from app.connect.tokens import mint_connect_token
from app.demo.events import router as events_router
from app.deps import SessionDep, SettingsDep
from app.models import Customer
from app.pages import pick_language, render

router = APIRouter(include_in_schema=False)

TEXT = {
    "en": {
        "title": "Demo bank: business customers",
        "intro": "This page stands in for your bank's web app. Each business customer gets a "
        "Connect to QuickBooks button.",
        "connect": "Connect to QuickBooks",
        "not_connected": "Not connected yet",
        "accounts": "Accounts",
        "connected_count": "{n} of {total} accounts connected",
        "refresh": "Refresh",
        "country_note": "Only businesses in the US and Canada can connect.",
        "events_title": "Events received from bankfeeds-connect",
        "events_intro": "This app registered itself as an event endpoint; each signed event "
        "it receives appears here as it arrives, newest first.",
        "events_empty": "No events yet: connect a customer to QuickBooks.",
    },
    "fr": {
        "title": "Banque de démonstration : clients entreprises",
        "intro": "Cette page tient lieu de l'application web de votre banque. Chaque client "
        "entreprise a un bouton Connecter à QuickBooks.",
        "connect": "Connecter à QuickBooks",
        "not_connected": "Pas encore connecté",
        "accounts": "Comptes",
        "connected_count": "{n} comptes connectés sur {total}",
        "refresh": "Actualiser",
        "country_note": "Seules les entreprises des États-Unis et du Canada peuvent se connecter.",
        "events_title": "Événements reçus de bankfeeds-connect",
        "events_intro": "Cette application s'est inscrite pour recevoir les événements; chaque "
        "événement signé reçu s'affiche ici dès son arrivée, le plus récent en premier.",
        "events_empty": "Aucun événement pour l'instant : connectez un client à QuickBooks.",
    },
}


@router.get("/", response_class=HTMLResponse)
async def demo_home(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    lang = pick_language(request)
    text = TEXT[lang]
    result = await session.execute(
        select(Customer)
        .options(selectinload(Customer.source_accounts), selectinload(Customer.bank_feed))
        .order_by(Customer.id)
        .limit(50)
    )
    secret = settings.connect_token_secret
    assert secret is not None
    rows = []
    for customer in result.scalars():
        statuses = Counter(account_status(a) for a in customer.source_accounts)
        rows.append(
            {
                "customer": customer,
                "feed": customer.bank_feed,
                "token": mint_connect_token(
                    secret.get_secret_value(), customer.id, lang=customer.locale
                ),
                "connected": statuses.get(CONNECTED, 0),
                "total": len(customer.source_accounts),
            }
        )
    page = render(
        "demo.html",
        sandbox_mode=settings.sandbox_mode,
        lang=lang,
        text=text,
        rows=rows,
        other_lang="fr" if lang == "en" else "en",
    )
    # As a host app's page must: its connect form then names its Origin (docs/integration.md).
    page.headers["Referrer-Policy"] = "same-origin"
    return page


router.include_router(events_router)

"""The demo host app (sandbox mode only): customers, their Connect button, their status."""

from __future__ import annotations

import random
from collections import Counter
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.bank_feeds.statuses import CONNECTED, account_status
from app.connect.tokens import mint_connect_token
from app.demo.events import router as events_router
from app.demo.transactions import DemoTransaction, local_today, todays_transactions
from app.deps import CustomerId, SessionDep, SettingsDep, provided
from app.errors import NotFound
from app.models import Customer, SourceAccount
from app.pages import pick_language, render
from app.transactions.ingest import read_items
from app.transactions.service import TransactionService

router = APIRouter(include_in_schema=False)
TransactionsDep = Annotated[TransactionService, provided(TransactionService)]

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
        "post": "Post today's transactions",
        "posted": "Posted {n} new transaction(s) for {name}.",
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
        "post": "Publier les opérations du jour",
        "posted": "{n} nouvelle(s) opération(s) publiée(s) pour {name}.",
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
    names: dict[str, str] = {}
    for customer in result.scalars():
        names[customer.id] = customer.name
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
    notice = None
    posted = request.query_params.get("posted", "")
    named = names.get(request.query_params.get("customer", ""))
    if posted.isdigit() and named is not None:
        notice = text["posted"].format(n=int(posted), name=named)
    page = render(
        "demo.html",
        sandbox_mode=settings.sandbox_mode,
        lang=lang,
        text=text,
        rows=rows,
        notice=notice,
        other_lang="fr" if lang == "en" else "en",
    )
    # As a host app's page must: its connect form then names its Origin (docs/integration.md).
    page.headers["Referrer-Policy"] = "same-origin"
    return page


@router.post("/demo/customers/{customer_id}/transactions")
async def post_todays_transactions(
    customer_id: CustomerId,
    session: SessionDep,
    transactions: TransactionsDep,
    lang: Annotated[str, Form()] = "en",
) -> RedirectResponse:
    """The bank's nightly export, on demand: today's cleared transactions for each open
    account of the customer, posted through the same ingest as the ops API."""
    customer = await session.get(
        Customer, customer_id, options=[selectinload(Customer.source_accounts)]
    )
    if customer is None:
        raise NotFound("There is no such demo customer.")
    stored = 0
    for account in customer.source_accounts:
        if account.closed_at is not None:
            continue
        stored += await post_for_account(transactions, customer.country, account)
    query = urlencode(
        {"lang": lang if lang in TEXT else "en", "posted": stored, "customer": customer.id}
    )
    return RedirectResponse(f"/?{query}#customer-{customer.id}", status_code=303)


async def post_for_account(
    transactions: TransactionService, country: str, account: SourceAccount
) -> int:
    """Today's transactions for one account, carrying on from the last balance posted."""
    latest = await transactions.transactions(
        account.customer_id, account.id, status=None, limit=1, after=None
    )
    opening = latest.items[0].balance if latest.items else account.balance
    # Never before the account's feed start date in QuickBooks (QuickBooks takes nothing
    # older), nor past the service's own today (a local date ahead of it would be refused).
    day = local_today(transactions.clock(), country)
    if account.feed_start_date is not None:
        day = max(day, account.feed_start_date)
    day = min(day, transactions.today())
    made = todays_transactions(account.id, account.account_type, opening, day, random.Random())
    items = read_items([_item(t) for t in made], transactions.today())
    result = await transactions.ingest(account.customer_id, account.id, items)
    return result.stored


def _item(transaction: DemoTransaction) -> dict[str, object]:
    return {
        "id": transaction.id,
        "date": transaction.date.isoformat(),
        "description": transaction.description,
        "amount": transaction.amount,
        "balance": transaction.balance,
        "transactionType": transaction.transaction_type,
        "counterparty": transaction.counterparty,
        "reference": transaction.reference,
    }


router.include_router(events_router)

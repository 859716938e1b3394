"""`/console/`: the operations console, pages for the bank's staff in a browser.

Signed in with the ops token (`access.py`: a session cookie, a CSRF token on each form that
changes something); each action calls the same service as the ops API and lands in the audit log
(`service.py`). Without an ops token there is no console (404), as there is no ops API.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, cast, get_args

from fastapi import APIRouter, FastAPI, Form
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds.listing import BankFeedFilters, decode_cursor, list_bank_feeds
from app.bank_feeds.schemas import BankFeedRow, BankFeedStatus
from app.bank_feeds.service import BankFeedService
from app.bank_feeds.statuses import (
    ACCOUNT_STATUSES,
    CONNECTION_STATUSES,
    NOT_PUSHED,
    PENDING,
    customer_action_reasons,
)
from app.connect.service import ConnectService
from app.console import access, extensions, i18n, queries
from app.console.access import Checked, SignedIn
from app.console.chart import bar_chart
from app.console.views import PREFIX, STATIC_DIR, View
from app.customers.schemas import CustomerOut
from app.customers.service import CustomerService
from app.deps import SessionDep, SettingsDep, provided
from app.errors import CustomerNotFound, DomainError
from app.models import ID_PATTERN
from app.settings import Settings
from app.transactions.service import TransactionService
from app.webhooks.inbox import EventStatus
from app.webhooks.service import WebhookService

router = APIRouter(prefix=PREFIX, include_in_schema=False)
BankFeedsDep = Annotated[BankFeedService, provided(BankFeedService)]
CustomersDep = Annotated[CustomerService, provided(CustomerService)]
ConnectDep = Annotated[ConnectService, provided(ConnectService)]
WebhooksDep = Annotated[WebhookService, provided(WebhookService)]
TransactionsDep = Annotated[TransactionService, provided(TransactionService)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], provided(async_sessionmaker)]

PAGE_SIZE = 50
RECENT_EVENTS = 10
CONNECT_LINK_LIFETIME = timedelta(minutes=15)
EVENT_STATUSES: tuple[EventStatus, ...] = get_args(EventStatus)
RETRYABLE = ("failed", "unmatched")
NOTICES = {
    "refreshed",
    "refreshed_nothing",
    "unlinked",
    "unlink_none",
    "purged",
    "retried",
    "closed_done",
    "push_retried",
    "requeued",
}


def mount_console(app: FastAPI, settings: Settings) -> None:
    """The console's pages and files, when an ops token is configured; else nothing at all."""
    if settings.ops_api_token is None or not settings.ops_api_token.get_secret_value():
        return
    app.include_router(access.router)
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_exception_handler(access.SignInRequired, access.send_to_sign_in)
    app.add_exception_handler(access.CsrfRefused, access.refuse_form)


# --- overview --------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def overview(
    view: SignedIn, session: SessionDep, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    counts, needing = await queries.fleet_and_needing(sessions)
    days = queries.chart_days(view.console.now().date())
    daily = await queries.connections_per_day(session, days)
    pushed = await extensions.pushed_transactions_per_day(session, days)
    return view.render(
        "overview.html",
        title=view.t["overview_title"],
        section="overview",
        counts=counts,
        connection_statuses=[*CONNECTION_STATUSES, "none"],
        account_statuses=ACCOUNT_STATUSES,
        needing=[(row, _reasons(view.lang, row)) for row in needing],
        health=await queries.webhook_health(session),
        daily=daily,
        chart=bar_chart(days, [daily.created, daily.linked]),
        pushed=pushed,
        pushed_chart=bar_chart(days, [pushed]) if pushed is not None else None,
        push_problems=await extensions.push_problems(session),
        quota=await extensions.codat_quota_today(
            session, view.console.now(), settings.reconciler_quota_share
        ),
    )


def _reasons(lang: str, row: BankFeedRow) -> list[str]:
    counts: dict[str, int] = {status: n for status, n in row.counts.items()}
    found = customer_action_reasons(row.connection_id, row.connection_status, counts)
    return [i18n.reason(lang, code, message, counts) for code, message in found]


# --- customers -------------------------------------------------------------------------------


def _parse_filters(params: Any) -> tuple[BankFeedFilters, str | None, list[str]]:
    """The list's filters from the query, as `GET /ops/bank-feeds` takes them, and `q`."""
    wrong: list[str] = []
    search = (params.get("q") or "").strip()
    if len(search) > 200:
        wrong.append("q")
    status = params.get("connection_status") or None
    if status is not None and status not in (*CONNECTION_STATUSES, "none"):
        wrong.append("connection_status")
    flags: dict[str, bool | None] = {}
    for name in ("has_disconnected_accounts", "needs_customer_action"):
        value = params.get(name) or None
        if value not in (None, "true", "false"):
            wrong.append(name)
        flags[name] = None if value not in ("true", "false") else value == "true"
    since = None
    if params.get("updated_since"):
        try:
            since = datetime.combine(date.fromisoformat(params["updated_since"]), time(), UTC)
        except ValueError:
            wrong.append("updated_since")
    after = None
    try:
        after = decode_cursor(params.get("cursor") or None)
    except PydanticCustomError:
        wrong.append("cursor")
    filters = BankFeedFilters(
        connection_status=status if "connection_status" not in wrong else None,
        has_disconnected_accounts=flags["has_disconnected_accounts"],
        needs_customer_action=flags["needs_customer_action"],
        updated_since=since,
        search=search[:200] or None,
    )
    return filters, after, wrong


@router.get("/customers", response_class=HTMLResponse)
async def customers(view: SignedIn, session: SessionDep) -> Response:
    params = view.request.query_params
    filters, after, wrong = _parse_filters(params)
    page = None
    if not wrong:
        page = await list_bank_feeds(session, filters, limit=PAGE_SIZE, after=after)
    return view.render(
        "customers.html",
        400 if wrong else 200,
        title=view.t["customers_title"],
        section="customers",
        params=params,
        connection_statuses=[*CONNECTION_STATUSES, "none"],
        wrong=wrong,
        page=page,
        rows=[(row, _reasons(view.lang, row)) for row in (page.items if page else [])],
        next_url=view.url_with(cursor=page.next_cursor, done=None)
        if page and page.next_cursor
        else None,
        first_url=view.url_with(cursor=None, done=None) if after is not None else None,
        notice=params_notice(view),
    )


def _customer_id(value: str) -> str | None:
    return value if re.fullmatch(ID_PATTERN, value) else None


async def _customer(
    view: View, customer_id: str, customers: CustomerService, bank_feeds: BankFeedService
) -> tuple[CustomerOut, BankFeedStatus] | Response:
    """The customer and their bank feed as the ops API shows them, or the page saying there is
    no such customer."""
    if _customer_id(customer_id) is None:
        return view.customer_not_found(customer_id)
    try:
        return await customers.get_customer(customer_id), await bank_feeds.status(customer_id)
    except CustomerNotFound:
        return view.customer_not_found(customer_id)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer_page(
    customer_id: str,
    view: SignedIn,
    session: SessionDep,
    bank_feeds: BankFeedsDep,
    customers: CustomersDep,
    webhooks: WebhooksDep,
) -> Response:
    found = await _customer(view, customer_id, customers, bank_feeds)
    if isinstance(found, Response):
        return found
    customer, feed = found
    events = await webhooks.events(None, None, RECENT_EVENTS, customer_id=customer_id)
    notice = params_notice(view)
    counts = {"not_pushed": feed.counts[NOT_PUSHED], "pending": feed.counts[PENDING]}
    transaction_feeds = {f.account_id: f for f in feed.transaction_feeds}
    return view.render(
        "customer.html",
        title=customer.name,
        section="customers",
        customer=customer,
        feed=feed,
        reasons=[i18n.reason(view.lang, r.code, r.message, counts) for r in feed.reasons],
        accounts=[
            (a, extensions.account_actions(customer_id, a, transaction_feeds.get(a.id)))
            for a in feed.accounts
        ],
        events=events,
        transactions=await extensions.customer_transactions(session, customer_id),
        notice=notice,
    )


def params_notice(view: View) -> str | None:
    done = view.request.query_params.get("done")
    return view.t[done] if done in NOTICES else None


@router.post("/customers/{customer_id}/refresh")
async def refresh(customer_id: str, view: Checked, bank_feeds: BankFeedsDep) -> Response:
    back = f"{PREFIX}/customers/{customer_id}"
    if _customer_id(customer_id) is None:
        return view.customer_not_found(customer_id)
    assert view.who is not None
    try:
        async with view.console.audited(view.who, "refresh", customer_id, view.remote) as entry:
            feed = await bank_feeds.status(customer_id, refresh=True)
            entry.detail = f"connection {feed.connection_status or 'none'}" + (
                "" if feed.refreshed else ", nothing to read in Codat"
            )
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "refresh"), back)
    return view.redirect(f"{back}?done={'refreshed' if feed.refreshed else 'refreshed_nothing'}")


@router.post("/customers/{customer_id}/connect-link", response_class=HTMLResponse)
async def connect_link(
    customer_id: str, view: Checked, customers: CustomersDep, connect: ConnectDep
) -> Response:
    """A fresh single-use connect URL, shown once in the answer (never in a URL or the log)."""
    back = f"{PREFIX}/customers/{customer_id}"
    if _customer_id(customer_id) is None:
        return view.customer_not_found(customer_id)
    assert view.who is not None
    try:
        async with view.console.audited(
            view.who, "connect_link", customer_id, view.remote
        ) as entry:
            customer = await customers.get_customer(customer_id)
            url, expires_at = await connect.connect_url(
                customer_id, lang=customer.locale, lifetime=CONNECT_LINK_LIFETIME
            )
            entry.detail = f"valid until {expires_at.isoformat()}"
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "connect_link"), back)
    return view.render(
        "connect_link.html",
        title=view.t["connect_link_title"].format(name=customer.name),
        section="customers",
        customer=customer,
        url=url,
        expires_at=expires_at,
    )


@router.get("/customers/{customer_id}/offboard", response_class=HTMLResponse)
async def offboard_page(
    customer_id: str, view: SignedIn, bank_feeds: BankFeedsDep, customers: CustomersDep
) -> Response:
    """What offboarding would do in Codat and here, before anything is done."""
    found = await _customer(view, customer_id, customers, bank_feeds)
    if isinstance(found, Response):
        return found
    return _offboard_form(view, *found)


def _offboard_form(
    view: View,
    customer: CustomerOut,
    feed: BankFeedStatus,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    unlinkable = feed.company_id is not None and feed.connection_id is not None
    return view.render(
        "offboard.html",
        status_code,
        title=view.t["offboard_title"].format(name=customer.name),
        section="customers",
        customer=customer,
        feed=feed,
        unlinkable=unlinkable,
        **extra,
    )


@router.post("/customers/{customer_id}/accounts/{account_id}/close", response_class=HTMLResponse)
async def close_account(
    customer_id: str,
    account_id: str,
    view: Checked,
    customers: CustomersDep,
    bank_feeds: BankFeedsDep,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Without `confirm=yes`: what closing does in Codat, and the button that does it."""
    back = f"{PREFIX}/customers/{customer_id}"
    if _customer_id(customer_id) is None or _customer_id(account_id) is None:
        return view.customer_not_found(customer_id)
    if confirm != "yes":
        found = await _customer(view, customer_id, customers, bank_feeds)
        if isinstance(found, Response):
            return found
        customer, feed = found
        account = next((a for a in feed.accounts if a.id == account_id), None)
        if account is None:
            return view.customer_not_found(customer_id)
        return view.render(
            "close_account.html",
            title=view.t["close_title"].format(account=account.accountName, name=customer.name),
            section="customers",
            customer=customer,
            feed=feed,
            account=account,
        )
    assert view.who is not None
    try:
        async with view.console.audited(
            view.who, "close_account", customer_id, view.remote
        ) as entry:
            await customers.close_account(customer_id, account_id)
            entry.detail = f"account {account_id} closed in Codat"
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "close_account"), back)
    return view.redirect(f"{back}?done=closed_done")


@router.post("/customers/{customer_id}/pushes/{push_id}/retry")
async def retry_push(
    customer_id: str, push_id: str, view: Checked, transactions: TransactionsDep
) -> Response:
    """A failed push's transactions sent again, as `POST /ops/pushes/{id}:retry` does."""
    back = f"{PREFIX}/customers/{customer_id}"
    number = _int(push_id)
    if _customer_id(customer_id) is None or number is None:
        return view.customer_not_found(customer_id)
    assert view.who is not None
    try:
        async with view.console.audited(view.who, "retry_push", customer_id, view.remote) as entry:
            push = await transactions.retry(number, customer_id=customer_id)
            entry.detail = f"push {push.id} of account {push.account_id}"
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "retry_push"), back)
    return view.redirect(f"{back}?done=push_retried")


@router.post("/customers/{customer_id}/accounts/{account_id}/requeue")
async def requeue_transactions(
    customer_id: str, account_id: str, view: Checked, transactions: TransactionsDep
) -> Response:
    """Every held or rejected transaction of the account back to pending, after a fix."""
    back = f"{PREFIX}/customers/{customer_id}"
    if _customer_id(customer_id) is None or _customer_id(account_id) is None:
        return view.customer_not_found(customer_id)
    assert view.who is not None
    try:
        async with view.console.audited(
            view.who, "requeue_transactions", customer_id, view.remote
        ) as entry:
            result = await transactions.requeue(customer_id, account_id, None)
            entry.detail = f"{len(result.requeued)} transaction(s) of account {account_id}"
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "requeue_transactions"), back)
    return view.redirect(f"{back}?done=requeued")


@router.post("/customers/{customer_id}/offboard")
async def offboard(
    customer_id: str,
    view: Checked,
    customers: CustomersDep,
    bank_feeds: BankFeedsDep,
    mode: Annotated[str, Form(max_length=10)] = "",
    confirm: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    back = f"{PREFIX}/customers/{customer_id}"
    if _customer_id(customer_id) is None:
        return view.customer_not_found(customer_id)
    if mode not in ("unlink", "purge"):
        return view.bad_request(back)
    assert view.who is not None
    if mode == "purge" and confirm.strip() != customer_id:
        found = await _customer(view, customer_id, customers, bank_feeds)
        if isinstance(found, Response):
            return found
        return _offboard_form(view, *found, 400, error=view.t["purge_mismatch"])
    action = f"offboard_{mode}"
    try:
        async with view.console.audited(view.who, action, customer_id, view.remote) as entry:
            result = await customers.offboard(customer_id, purge=mode == "purge")
            if result.purge:
                deleted = ", ".join(result.codat.companies_deleted) or "none"
                entry.detail = (
                    f"Codat companies deleted: {deleted}; "
                    f"{result.local.accounts_deleted} account(s) deleted here"
                )
            else:
                entry.detail = (
                    f"connection unlinked: {'yes' if result.codat.connection_unlinked else 'no'}, "
                    f"now {result.codat.connection_status or 'none'}"
                )
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, action), back)
    if result.purge:
        return view.redirect(f"{PREFIX}/customers?done=purged")
    return view.redirect(
        f"{back}?done={'unlinked' if result.codat.connection_unlinked else 'unlink_none'}"
    )


# --- webhook events --------------------------------------------------------------------------


@router.get("/events", response_class=HTMLResponse)
async def events(view: SignedIn, webhooks: WebhooksDep) -> Response:
    params = view.request.query_params
    wrong = []
    status = params.get("status") or None
    if status is not None and status not in EVENT_STATUSES:
        wrong.append("status")
    event_type = (params.get("event_type") or "").strip() or None
    if event_type is not None and len(event_type) > 100:
        wrong.append("event_type")
    customer_id = (params.get("customer_id") or "").strip() or None
    if customer_id is not None and _customer_id(customer_id) is None:
        wrong.append("customer_id")
    before = _int(params.get("before"))
    if params.get("before") and before is None:
        wrong.append("before")
    found = []
    if not wrong:
        found = await webhooks.events(
            cast(EventStatus | None, status),  # one of EVENT_STATUSES, checked above
            event_type,
            PAGE_SIZE + 1,
            customer_id=customer_id,
            before=before,
        )
    older = None
    if len(found) > PAGE_SIZE:
        older = view.url_with(before=str(found[PAGE_SIZE - 1].id), done=None)
    return view.render(
        "events.html",
        400 if wrong else 200,
        title=view.t["events_title"],
        section="events",
        params=params,
        statuses=EVENT_STATUSES,
        retryable=RETRYABLE,
        retry_forms=True,
        wrong=wrong,
        events=found[:PAGE_SIZE],
        older_url=older,
        newest_url=view.url_with(before=None, done=None) if before is not None else None,
        back=view.url_with(done=None),
        notice=params_notice(view),
    )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


@router.post("/events/{event_id}/retry")
async def retry_event(
    event_id: str,
    view: Checked,
    webhooks: WebhooksDep,
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    back = back if back.startswith(f"{PREFIX}/events") and "//" not in back else f"{PREFIX}/events"
    number = _int(event_id)
    if number is None:
        return view.not_found(view.t["page_not_found"])
    assert view.who is not None
    try:
        async with view.console.audited(view.who, "retry_event", str(number), view.remote):
            await webhooks.retry(number)
    except DomainError as exc:
        return view.failure(exc, i18n.label(view.lang, "retry_event"), back)
    separator = "&" if "?" in back else "?"
    return view.redirect(f"{back}{separator}done=retried")


# --- audit log -------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
async def audit(view: SignedIn) -> Response:
    before = _int(view.request.query_params.get("before"))
    entries = await view.console.audit_log(limit=PAGE_SIZE + 1, before=before)
    older = (
        view.url_with(before=str(entries[PAGE_SIZE - 1].id)) if len(entries) > PAGE_SIZE else None
    )
    return view.render(
        "audit.html",
        title=view.t["audit_title"],
        section="audit",
        entries=entries[:PAGE_SIZE],
        older_url=older,
        newest_url=view.url_with(before=None) if before is not None else None,
    )

"""What the console shows and does: the overview, the customer list, a customer and its actions,
the webhook events and the audit log, in English and French."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from app.bank_feeds.statuses import ACCOUNT_STATUSES, CONNECTION_STATUSES
from app.console.chart import bar_chart
from app.console.i18n import LABELS, REASONS, TEXT
from app.console.views import money
from app.models import (
    BankFeed,
    BankFeedConnection,
    CodatEvent,
    CodatQuotaDay,
    ConsoleAuditEntry,
    Customer,
)
from tests.bank_feeds.test_bank_feeds import fleet
from tests.conftest import FaultyService, Service
from tests.console.support import csrf_of, sign_in, signed_in_csrf
from tests.factories import add_customer
from tests.ops_api import (
    codat_connection,
    customer_with_accounts,
    link_in_quickbooks,
    with_bank_feed,
)

T0 = datetime(2031, 3, 15, 12, 0, tzinfo=UTC)


def text_of(response: httpx.Response) -> str:
    """The page's visible words, roughly: tags dropped, entities decoded, spaces squeezed."""
    without_tags = re.sub(r"<[^>]+>", " ", response.text)
    return " ".join(html.unescape(without_tags).split())


def row(response: httpx.Response, element_id: str) -> str:
    found = re.search(rf'<tr id="{re.escape(element_id)}".*?</tr>', response.text, re.S)
    assert found is not None, f"no row {element_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


async def audit(service: Service) -> list[ConsoleAuditEntry]:
    async with service.sessions() as session:
        query = select(ConsoleAuditEntry).order_by(ConsoleAuditEntry.id)
        return list((await session.execute(query)).scalars())


async def add_event(service: Service, status: str, customer_id: str | None = "cus-1") -> int:
    async with service.sessions() as session:
        event = CodatEvent(
            webhook_id=f"msg_{status}_{customer_id}_{datetime.now(UTC).timestamp()}",
            event_type="bankFeeds.sourceAccount.connected",
            payload={"connectionId": "c-1"},
            customer_id=customer_id,
            status=status,
            attempts=3 if status == "failed" else 1,
            last_error="handler failed: boom" if status == "failed" else None,
            received_at=T0,
            next_attempt_at=T0 if status == "pending" else None,
        )
        session.add(event)
        await session.commit()
        return event.id


# --- the overview -----------------------------------------------------------------------------


async def test_overview_counts_who_must_act_and_why(service: Service) -> None:
    await fleet(service)  # a: no feed; b: PendingAuth; c, d: Linked (d: one disconnected); e: GB
    await add_event(service, "failed", "d")
    await add_event(service, "pending", "b")
    await sign_in(service.client)
    page = await service.client.get("/console/")
    assert page.status_code == 200
    assert "Linked Linked 2" in row(page, "by-connection-Linked")
    assert "Waiting for the customer PendingAuth 1" in row(page, "by-connection-PendingAuth")
    assert "No connection yet 2" in row(page, "by-connection-none")
    assert "Total 5" in text_of(page)
    assert "Connected connected 3" in row(page, "by-account-connected")
    assert "Disconnected disconnected 1" in row(page, "by-account-disconnected")
    assert "Not in Codat yet not_pushed 2" in row(page, "by-account-not_pushed")
    assert "3 customer(s) must click Connect." in text_of(page)
    assert "Has not clicked Connect yet." in row(page, "needing-a")
    assert "Has not finished linking QuickBooks" in row(page, "needing-b")
    assert 'id="needing-c"' not in page.text and 'id="needing-d"' not in page.text
    async with service.sessions() as session:
        statuses = list((await session.execute(select(CodatEvent.status))).scalars())
    assert statuses.count("failed") == 1 and statuses.count("pending") >= 1
    assert re.search(rf'id="backlog"><a [^>]+>{statuses.count("pending")}</a>', page.text)
    assert re.search(r'id="failed-events"><a [^>]+>1</a>', page.text)
    assert "2031-03-15 12:00 UTC" in page.text  # the last event received
    # Panels with nothing to show (no transactions yet) are not drawn at all.
    for absent in ("push-problems", "pushed-chart", "transactions"):
        assert f'id="{absent}"' not in page.text
    assert service.codat_calls() == []


async def test_overview_shows_the_quota_used_today_against_background_works_share(
    service: Service,
) -> None:
    await sign_in(service.client)
    today = service.services.console.now().date()
    async with service.sessions() as session:
        session.add(CodatQuotaDay(day=today, background_used=120, daily_limit=4000))
        await session.commit()
    before = await service.client.get("/console/")
    async with service.sessions() as session:
        day = await session.get(CodatQuotaDay, today)
        assert day is not None
        day.remaining = 3100
        await session.commit()
    after = await service.client.get("/console/")

    # The default share is a quarter of the day's limit; clicks have the rest.
    assert "Background work: 120 of its 1000 calls used today (12%)." in text_of(before)
    assert "Codat has not said yet how many are left." in text_of(before)
    assert "All calls: 900 of today's 4000, as Codat counts them." in text_of(after)


async def test_overview_charts_connections_per_day_on_the_consoles_clock(
    service: Service,
) -> None:
    service.services.console.clock = lambda: T0
    for n, days_ago in enumerate([0, 0, 3, 29, 30]):
        customer_id = f"cus-{n}"
        at = T0 - timedelta(days=days_ago)
        await add_customer(service.sessions, customer_id, accounts=0)
        async with service.sessions() as session:
            session.add(
                BankFeed(
                    customer_id=customer_id,
                    company_id=f"co-{n}",
                    connection_id=f"cn-{n}",
                    connection_status="Linked",
                    linked_at=at if days_ago == 0 else None,
                )
            )
            await session.flush()
            session.add(
                BankFeedConnection(
                    connection_id=f"cn-{n}",
                    customer_id=customer_id,
                    company_id=f"co-{n}",
                    status="Linked",
                    created_at=at,
                )
            )
            await session.commit()
    await sign_in(service.client)
    page = await service.client.get("/console/")
    figures = re.findall(
        r"<tr><th scope=\"row\">(\d{4}-\d\d-\d\d)</th><td class=\"number\">(\d+)</td>"
        r"<td class=\"number\">(\d+)</td></tr>",
        page.text,
    )
    assert len(figures) == 30 and figures[0][0] == "2031-02-14" and figures[-1][0] == "2031-03-15"
    by_day = {day: (int(created), int(linked)) for day, created, linked in figures}
    assert by_day["2031-03-15"] == (2, 2)
    assert by_day["2031-03-12"] == (1, 0)
    assert by_day["2031-02-14"] == (1, 0)  # 29 days ago is in; 30 days ago is not
    assert sum(created for created, _ in by_day.values()) == 4
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert svg.count('class="bar series-0"') == 3 and svg.count('class="bar series-1"') == 1
    assert "2031-03-15: 2 (Connections created)" in svg


# --- the customer list ------------------------------------------------------------------------


async def test_customers_search_by_id_or_name(service: Service) -> None:
    await add_customer(service.sessions, "cus-bakery", name="Maple Street Bakery", accounts=1)
    await add_customer(service.sessions, "cus-plumber", name="Acme Plumbing LLC", accounts=1)
    await add_customer(service.sessions, "acme-2", name="Zed & Co 100%", accounts=0)
    await sign_in(service.client)

    async def ids(**params: str) -> list[str]:
        page = await service.client.get("/console/customers", params=params)
        assert page.status_code == 200, page.text
        return re.findall(r'<tr id="customer-([^"]+)"', page.text)

    assert await ids(q="cus-") == ["cus-bakery", "cus-plumber"]
    assert await ids(q="street bak") == ["cus-bakery"]
    assert await ids(q="acme") == ["acme-2", "cus-plumber"]  # an id's start, or a name's part
    assert await ids(q="100%") == ["acme-2"]  # a wildcard is a plain character
    assert await ids(q="_") == []
    assert await ids() == ["acme-2", "cus-bakery", "cus-plumber"]


async def test_customers_filters_match_the_ops_api(service: Service) -> None:
    await fleet(service)
    await sign_in(service.client)

    async def ids(**params: str) -> list[str]:
        page = await service.client.get("/console/customers", params=params)
        assert page.status_code == 200, page.text
        api = await service.client.get(
            "/ops/bank-feeds", params=params, headers=service.ops_headers
        )
        listed = re.findall(r'<tr id="customer-([^"]+)"', page.text)
        assert listed == [r["customer_id"] for r in api.json()["items"]]
        return listed

    assert await ids(connection_status="Linked") == ["c", "d"]
    assert await ids(connection_status="none") == ["a", "e"]
    assert await ids(has_disconnected_accounts="true") == ["d"]
    assert await ids(needs_customer_action="true") == ["a", "b", "e"]
    assert await ids(needs_customer_action="false", connection_status="Linked") == ["c", "d"]
    page = await service.client.get("/console/customers", params={"updated_since": "2020-01-01"})
    assert re.findall(r'<tr id="customer-([^"]+)"', page.text) == ["a", "b", "c", "d", "e"]
    assert "1 of 2 connected" in row(await service.client.get("/console/customers"), "customer-d")


async def test_customers_page_by_page(service: Service) -> None:
    for n in range(53):
        await add_customer(service.sessions, f"cus-{n:03d}", accounts=0)
    await sign_in(service.client)
    first = await service.client.get("/console/customers", params={"q": "cus"})
    assert "53 customer(s) match." in text_of(first)
    listed = re.findall(r'<tr id="customer-([^"]+)"', first.text)
    assert len(listed) == 50 and listed[-1] == "cus-049"
    found = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert found is not None
    second = await service.client.get(html.unescape(found.group(1)))
    assert re.findall(r'<tr id="customer-([^"]+)"', second.text) == [
        "cus-050",
        "cus-051",
        "cus-052",
    ]
    assert 'id="next-page"' not in second.text and 'id="first-page"' in second.text
    assert "q=cus" in html.unescape(found.group(1))  # the filters stay


async def test_a_bad_filter_is_named(service: Service) -> None:
    await sign_in(service.client)
    for params, field in (
        ({"connection_status": "Broken"}, "connection_status"),
        ({"needs_customer_action": "maybe"}, "needs_customer_action"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"cursor": "!!"}, "cursor"),
        ({"q": "x" * 201}, "q"),
    ):
        page = await service.client.get("/console/customers", params=params)
        assert page.status_code == 400
        assert f"This filter is not valid: {field}." in text_of(page)
    events = await service.client.get("/console/events", params={"status": "lost"})
    assert events.status_code == 400 and "This filter is not valid: status." in text_of(events)


# --- a customer ------------------------------------------------------------------------------


async def test_customer_page_shows_the_feed_accounts_history_and_events(
    service: Service,
) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0"])
    await service.services.bank_feeds.status("cus-1", refresh=True)
    event_id = await add_event(service, "handled")
    await sign_in(service.client)
    page = await service.client.get("/console/customers/cus-1")
    assert page.status_code == 200
    words = text_of(page)
    assert "Acme Plumbing LLC" in words and "Linked Linked" in words
    assert codat_connection(service).id in words
    assert "Connected" in row(page, "account-acc-0") and "Pending" in row(page, "account-acc-1")
    assert "1,500.25 USD" in row(page, "account-acc-0")
    assert "…0000" in row(page, "account-acc-0")  # the account number, masked
    assert re.search(r"\d{4}-\d\d-\d\d", row(page, "account-acc-0").split("Connected")[1])
    assert "1 account(s) pending: must click Connect" in words
    assert "bankFeeds.sourceAccount.connected" in row(page, f"event-{event_id}")
    assert "No earlier connection." in words
    french = await service.client.get("/console/customers/cus-1?lang=fr")
    assert "1 500,25 USD" in text_of(french).replace("\u202f", " ")
    assert "1 compte(s) en attente" in text_of(french)
    assert 'lang="fr"' in french.text


async def test_an_unknown_customer_is_a_404_page(service: Service) -> None:
    await sign_in(service.client)
    for path in ("/console/customers/nobody", "/console/customers/bad%20id/offboard"):
        page = await service.client.get(path)
        assert page.status_code == 404 and "There is no customer" in text_of(page)


async def test_refresh_reads_codat_and_is_audited(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    response = await service.client.post("/console/customers/cus-1/refresh", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/customers/cus-1?done=refreshed"
    page = await service.client.get(response.headers["location"])
    assert "Read from Codat and stored." in text_of(page)
    assert "Linked Linked" in text_of(page)
    assert [c.method for c in service.codat_calls()] == ["GET", "GET"]
    entry = (await audit(service))[-1]
    assert (entry.action, entry.target, entry.outcome) == ("refresh", "cus-1", "ok")
    assert entry.detail == "connection Linked"


async def test_a_refresh_codat_does_not_answer_is_a_503_page_and_audited(
    faulty: FaultyService,
) -> None:
    service = faulty.service
    await with_bank_feed(service)
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    faulty.fail(503)
    response = await service.client.post("/console/customers/cus-1/refresh", data={"csrf": token})
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "Refresh from Codat: it did not work" in text_of(response)
    assert "Codat did not answer" in text_of(response)
    entry = (await audit(service))[-1]
    assert (entry.action, entry.outcome) == ("refresh", "failed")
    assert entry.detail is not None and "Codat did not answer" in entry.detail


async def test_a_fresh_connect_link_works_once_and_never_reaches_the_log(
    service: Service,
) -> None:
    await add_customer(service.sessions, "cus-1", locale="fr")
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    response = await service.client.post(
        "/console/customers/cus-1/connect-link", data={"csrf": token}
    )
    assert response.status_code == 200
    found = re.search(r'id="connect-url" type="text" value="([^"]+)"', response.text)
    assert found is not None
    link = html.unescape(found.group(1))
    assert link.startswith("http://127.0.0.1:8000/connect-bank-feeds?token=")
    entry = (await audit(service))[-1]
    assert (entry.action, entry.target, entry.outcome) == ("connect_link", "cus-1", "ok")
    assert entry.detail is not None and entry.detail.startswith("valid until ")
    secret = link.split("token=")[1]
    assert service.services.connect.verify(secret).lang == "fr"  # the customer's language
    assert secret not in (await service.client.get("/console/audit")).text
    click = await service.client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert click.status_code == 302 and "/sandbox/codat/link/" in click.headers["location"]
    again = await service.client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert again.status_code == 401


async def test_offboarding_names_what_codat_will_do_then_unlinks(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0"])
    await service.services.bank_feeds.status("cus-1", refresh=True)
    connection = codat_connection(service)
    await sign_in(service.client)
    page = await service.client.get("/console/customers/cus-1/offboard")
    words = text_of(page)
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
    assert feed is not None
    assert (
        f"In Codat: connection {connection.id} of company {feed.company_id} is unlinked." in words
    )
    assert f"In Codat: company {feed.company_id}, and any other company tagged" in words
    assert "their 2 account(s)" in words
    service.sandbox.reset_calls()
    response = await service.client.post(
        "/console/customers/cus-1/offboard", data={"csrf": csrf_of(page.text), "mode": "unlink"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/customers/cus-1?done=unlinked"
    assert codat_connection(service).status == "Unlinked"
    entry = (await audit(service))[-1]
    assert (entry.action, entry.outcome) == ("offboard_unlink", "ok")
    assert entry.detail == "connection unlinked: yes, now Unlinked"
    after = await service.client.get("/console/customers/cus-1/offboard")
    assert "There is no connection in Codat" not in text_of(after)  # still one, unlinked


async def test_closing_an_account_names_what_codat_will_do_then_closes_only_that_one(
    service: Service,
) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    await service.services.bank_feeds.status("cus-1", refresh=True)
    connection = codat_connection(service)
    await sign_in(service.client)
    customer = await service.client.get("/console/customers/cus-1")
    assert "Close…" in row(customer, "account-acc-0")
    service.sandbox.reset_calls()
    audited = len(await audit(service))
    ask = await service.client.post(
        "/console/customers/cus-1/accounts/acc-0/close", data={"csrf": csrf_of(customer.text)}
    )
    assert ask.status_code == 200
    assert (
        f"In Codat: source account acc-0 of connection {connection.id} is marked disconnected, "
        "for good" in text_of(ask)
    )
    assert service.codat_calls() == [] and len(await audit(service)) == audited  # only asked
    done = await service.client.post(
        "/console/customers/cus-1/accounts/acc-0/close",
        data={"csrf": csrf_of(ask.text), "confirm": "yes"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/customers/cus-1?done=closed_done"
    statuses = {a.id: a.status for a in connection.source_accounts.values()}
    assert statuses == {"acc-0": "disconnected", "acc-1": "connected"}
    entry = (await audit(service))[-1]
    assert (entry.action, entry.outcome, entry.detail) == (
        "close_account",
        "ok",
        "account acc-0 closed in Codat",
    )
    after = await service.client.get(done.headers["location"])
    assert "The account was closed in Codat." in text_of(after)
    assert "Closed" in row(after, "account-acc-0") and "Close…" not in row(after, "account-acc-0")
    assert "Close…" in row(after, "account-acc-1")


async def test_closing_an_account_not_in_codat_is_refused_and_audited(service: Service) -> None:
    await customer_with_accounts(service, "cus-1", 1)
    await sign_in(service.client)
    csrf = await signed_in_csrf(service.client)
    page = await service.client.get("/console/customers/cus-1")
    assert "Close…" not in row(page, "account-acc-0")  # nothing in Codat to close
    refused = await service.client.post(
        "/console/customers/cus-1/accounts/acc-0/close", data={"csrf": csrf, "confirm": "yes"}
    )
    assert refused.status_code == 409
    assert "is not in a usable bank feed in Codat" in text_of(refused)
    entry = (await audit(service))[-1]
    assert (entry.action, entry.outcome) == ("close_account", "failed")
    assert service.codat_calls() == []


async def test_purging_asks_for_the_customer_id_then_deletes_everything(
    service: Service,
) -> None:
    await with_bank_feed(service)
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    wrong = await service.client.post(
        "/console/customers/cus-1/offboard", data={"csrf": token, "mode": "purge", "confirm": "x"}
    )
    assert wrong.status_code == 400 and "does not match: nothing was deleted" in text_of(wrong)
    assert service.codat_calls() == []
    response = await service.client.post(
        "/console/customers/cus-1/offboard",
        data={"csrf": token, "mode": "purge", "confirm": "cus-1"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/customers?done=purged"
    assert service.sandbox.store.companies == {}
    async with service.sessions() as session:
        assert await session.get(Customer, "cus-1") is None
    entry = (await audit(service))[-1]
    assert (entry.action, entry.target, entry.outcome) == ("offboard_purge", "cus-1", "ok")
    assert entry.detail is not None and "2 account(s) deleted here" in entry.detail
    listed = await service.client.get(response.headers["location"])
    assert "The customer was deleted in Codat and here." in text_of(listed)
    bad = await service.client.post(
        "/console/customers/cus-2/offboard", data={"csrf": token, "mode": "delete"}
    )
    assert bad.status_code == 400


# --- webhook events and the audit log --------------------------------------------------------


async def test_events_filter_and_retry_a_failed_one(service: Service) -> None:
    await add_customer(service.sessions, "cus-1")
    failed = await add_event(service, "failed")
    handled = await add_event(service, "handled", "cus-2")
    await sign_in(service.client)
    page = await service.client.get("/console/events")
    assert "handler failed: boom" in row(page, f"event-{failed}")
    assert f'id="retry-{failed}"' in page.text and f'id="retry-{handled}"' not in page.text
    only = await service.client.get("/console/events", params={"status": "failed"})
    assert f'id="event-{handled}"' not in only.text and f'id="event-{failed}"' in only.text
    theirs = await service.client.get("/console/events", params={"customer_id": "cus-2"})
    assert re.findall(r'<tr id="event-(\d+)"', theirs.text) == [str(handled)]
    response = await service.client.post(
        f"/console/events/{failed}/retry",
        data={"csrf": csrf_of(only.text), "back": "/console/events?status=failed"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/events?status=failed&done=retried"
    async with service.sessions() as session:
        event = await session.get(CodatEvent, failed)
        assert event is not None and event.status == "pending" and event.attempts == 0
    entry = (await audit(service))[-1]
    assert (entry.action, entry.target, entry.outcome) == ("retry_event", str(failed), "ok")
    again = await service.client.post(
        f"/console/events/{failed}/retry", data={"csrf": csrf_of(only.text)}
    )
    assert again.status_code == 404  # pending now: nothing settled to retry
    assert (await audit(service))[-1].outcome == "failed"


async def test_events_and_audit_log_page_by_id(service: Service) -> None:
    for _ in range(52):
        await add_event(service, "handled")
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    for _ in range(51):
        await service.client.post("/console/customers/nobody/refresh", data={"csrf": token})
    for path, older_text in (("/console/events", "older"), ("/console/audit", "older")):
        first = await service.client.get(path)
        ids = re.findall(r'<tr id="(?:event|audit)-(\d+)"', first.text)
        assert len(ids) == 50 and ids == sorted(ids, key=int, reverse=True)
        found = re.search(rf'href="([^"]+)" id="{older_text}"', first.text)
        assert found is not None
        second = await service.client.get(html.unescape(found.group(1)))
        rest = re.findall(r'<tr id="(?:event|audit)-(\d+)"', second.text)
        assert rest and int(rest[0]) < int(ids[-1]) and 'id="newest"' in second.text
    audit_page = await service.client.get("/console/audit")
    assert "Refresh from Codat" in text_of(audit_page) and "Customer 'nobody' not found" in (
        text_of(audit_page)
    )


async def test_the_audit_log_says_who_did_what_and_how_it_ended(service: Service) -> None:
    await with_bank_feed(service)
    await sign_in(service.client)
    token = await signed_in_csrf(service.client)
    await service.client.post("/console/customers/cus-1/refresh", data={"csrf": token})
    await service.client.post("/console/customers/cus-1/refresh", data={"csrf": "forged"})
    page = await service.client.get("/console/audit?lang=fr")
    entries = await audit(service)
    session_id = entries[0].session_id
    assert session_id is not None
    assert [(e.action, e.outcome, e.session_id) for e in entries] == [
        ("sign_in", "ok", session_id),
        ("refresh", "ok", session_id),
        ("csrf_refused", "refused", session_id),
    ]
    words = row(page, f"audit-{entries[2].id}")
    assert session_id in words and "Formulaire refusé" in words and "Refusé" in words
    assert "Actualisation depuis Codat" in row(page, f"audit-{entries[1].id}")


# --- pieces ------------------------------------------------------------------------------------


def test_money_is_exact_in_both_languages() -> None:
    assert money(Decimal("1234567.5"), "USD", "en") == "1,234,567.50 USD"
    assert money(Decimal("-842.17"), "CAD", "fr") == "-842,17 CAD"
    assert money(Decimal("1234.5678"), "CAD", "fr") == "1\u202f234,5678 CAD"
    assert money(Decimal("0"), "USD", "en") == "0.00 USD"


def test_bar_chart_scales_from_zero_and_labels_every_week() -> None:
    days = [T0.date() - timedelta(days=n) for n in range(29, -1, -1)]
    chart = bar_chart(days, [[0] * 29 + [4], [2] * 30])
    assert chart.highest == 4 and [t.value for t in chart.ticks] == [0, 2, 4]
    tallest = max(chart.bars, key=lambda b: b.height)
    half = next(b for b in chart.bars if b.series == 1)
    assert tallest.value == 4 and abs(half.height * 2 - tallest.height) < 0.02
    assert all(abs(b.y + b.height - chart.baseline) < 0.02 for b in chart.bars)
    assert [label.text for label in chart.labels][-1] == T0.strftime("%m-%d")
    assert len(chart.labels) == 5
    empty = bar_chart(days, [[0] * 30])
    assert empty.highest == 0 and all(b.height == 0 for b in empty.bars)


def test_bar_chart_wants_one_value_per_day() -> None:
    with pytest.raises(ValueError, match="one value per day"):
        bar_chart([T0.date()], [[1, 2]])


def test_every_status_has_words_in_both_languages() -> None:
    for lang in ("en", "fr"):
        assert TEXT[lang].keys() == TEXT["en"].keys()
        assert LABELS[lang].keys() == LABELS["en"].keys()
        assert REASONS[lang].keys() == REASONS["en"].keys()
        for status in (*CONNECTION_STATUSES, *ACCOUNT_STATUSES):
            assert status in LABELS[lang]


async def test_pages_never_mutate_with_get(service: Service) -> None:
    await with_bank_feed(service)
    await sign_in(service.client)
    before = len(await audit(service))
    for path in (
        "/console/",
        "/console/customers",
        "/console/customers/cus-1",
        "/console/customers/cus-1/offboard",
        "/console/events",
        "/console/audit",
    ):
        assert (await service.client.get(path)).status_code == 200
    assert len(await audit(service)) == before and service.codat_calls() == []

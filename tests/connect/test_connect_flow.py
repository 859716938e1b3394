"""GET/POST /connect-bank-feeds, end to end against the sandbox, counting Codat calls."""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from app.connect.tokens import mint_connect_token
from app.models import BankFeed, BankFeedConnection, SourceAccount
from app.sandbox.state import ConnectionStatus
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    PUBLIC_BASE,
    Service,
    _truncate,
    start_service,
)
from tests.factories import add_account, add_customer
from tests.transports import FaultyCodat


def token(customer_id: str = "cus-1", **kwargs: object) -> str:
    return mint_connect_token(CONNECT_SECRET, customer_id, **kwargs)  # type: ignore[arg-type]


async def click(service: Service, customer_id: str = "cus-1", **kwargs: object):  # type: ignore[no-untyped-def]
    return await service.client.get(
        "/connect-bank-feeds", params={"token": token(customer_id, **kwargs)}
    )


def text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def otp(location: str) -> str:
    return parse_qs(urlsplit(location).query)["otp"][0]


def connections(service: Service) -> list[Any]:
    return [
        c
        for company in service.sandbox.store.companies.values()
        for c in company.connections.values()
    ]


def codat_calls(service: Service) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in service.sandbox.calls]


async def test_new_customer_three_round_trips_and_a_fresh_link(service: Service) -> None:
    await add_customer(service.sessions, accounts=3)
    response = await click(service)
    assert response.status_code == 302
    location = response.headers["location"]
    assert urlsplit(location).hostname == "127.0.0.1"
    assert "/sandbox/codat/link/" in location and otp(location)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    calls = codat_calls(service)
    assert [m for m, _ in calls] == ["POST", "POST", "POST"]
    assert calls[0][1] == "/companies"
    assert calls[1][1].endswith("/connections")
    assert calls[2][1].endswith("/bankFeedAccounts/batch")

    async with service.sessions() as session:
        feed = (await session.execute(select(BankFeed))).scalar_one()
        accounts = (await session.execute(select(SourceAccount))).scalars().all()
    assert feed.company_id and feed.connection_id and feed.connection_status == "PendingAuth"
    assert all(a.is_pushed and a.codat_status == "pending" for a in accounts)
    state = service.sandbox.store
    company = state.companies[feed.company_id]
    assert company.tags == {"bankfeedsCustomerId": "cus-1"}


@pytest.mark.parametrize("accounts", [1, 25])
async def test_first_connect_costs_three_calls_whatever_the_account_count(
    service: Service,
    accounts: int,
) -> None:
    await add_customer(service.sessions, accounts=accounts)
    assert (await click(service)).status_code == 302
    assert len(codat_calls(service)) == 3


async def test_returning_customer_costs_exactly_one_get(service: Service) -> None:
    await add_customer(service.sessions)
    first = await click(service)
    service.sandbox.reset_calls()
    second = await click(service)
    assert second.status_code == 302
    calls = codat_calls(service)
    assert len(calls) == 1 and calls[0][0] == "GET" and "/connections/" in calls[0][1]
    assert otp(first.headers["location"]) != otp(second.headers["location"])


async def test_post_form_answers_303(service: Service) -> None:
    await add_customer(service.sessions)
    response = await service.client.post(
        "/connect-bank-feeds", data={"token": token()}, headers={"Origin": PUBLIC_BASE}
    )
    assert response.status_code == 303
    assert "otp=" in response.headers["location"]


@pytest.mark.parametrize(
    ("setup", "status", "english", "french"),
    [
        ("unknown", 404, "We could not find your business", "Nous n'avons pas trouvé"),
        ("abroad", 403, "Not available in your country", "Non offert dans votre pays"),
        ("no_accounts", 409, "No accounts to connect", "Aucun compte à connecter"),
    ],
)
async def test_refusals_write_nothing_to_codat(
    service: Service,
    setup: str,
    status: int,
    english: str,
    french: str,
) -> None:
    if setup == "abroad":
        await add_customer(service.sessions, country="GB", currency="GBP")
    elif setup == "no_accounts":
        await add_customer(service.sessions, accounts=0)
    response = await click(service)
    assert response.status_code == status
    assert english in text(response) and french in text(response)
    assert "Traceback" not in response.text
    assert codat_calls(service) == []


async def test_language_from_token_then_accept_language(service: Service) -> None:
    response = await click(service, "nobody", lang="fr")
    assert '<html lang="fr">' in response.text
    response = await service.client.get(
        "/connect-bank-feeds",
        params={"token": token("nobody")},
        headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"},
    )
    assert '<html lang="fr">' in response.text
    response = await click(service, "nobody")
    assert '<html lang="en">' in response.text


async def test_bad_tokens_get_401_and_change_nothing(service: Service) -> None:
    await add_customer(service.sessions)
    for params in ({}, {"token": "garbage"}, {"token": token() + "x"}):
        response = await service.client.get("/connect-bank-feeds", params=params)
        assert response.status_code == 401
        assert "This link is not valid" in text(response) and "Ce lien n'est pas valide" in text(
            response
        )
    assert codat_calls(service) == []


async def test_reused_jti_is_refused(service: Service) -> None:
    await add_customer(service.sessions)
    once = token()
    assert (
        await service.client.get("/connect-bank-feeds", params={"token": once})
    ).status_code == 302
    again = await service.client.get("/connect-bank-feeds", params={"token": once})
    assert again.status_code == 401


async def test_token_without_jti_is_refused_unless_reusable_tokens_are_allowed(
    database_url: str,
) -> None:
    await _truncate(database_url)
    reusable = token(single_use=False)
    for allowed, expected in ((False, [401, 401]), (True, [302, 302])):
        async for service in start_service(database_url, connect_reusable_tokens=allowed):
            await _truncate(database_url)
            await add_customer(service.sessions)
            answers = [
                (await service.client.get("/connect-bank-feeds", params={"token": reusable}))
                for _ in range(2)
            ]
            assert [a.status_code for a in answers] == expected


async def test_ops_token_is_not_accepted_on_the_browser_route(service: Service) -> None:
    await add_customer(service.sessions)
    response = await service.client.get("/connect-bank-feeds", params={"token": OPS_TOKEN})
    assert response.status_code == 401
    response = await service.client.get(
        "/connect-bank-feeds", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
    )
    assert response.status_code == 401


async def test_new_account_goes_in_one_batch_and_rename_is_patched(service: Service) -> None:
    await add_customer(service.sessions, accounts=2)
    await click(service)
    await add_account(service.sessions, "cus-1", "cus-1-new")
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-1", "cus-1-acc-0"))
        assert account is not None
        account.account_name = "Renamed checking"
        await session.commit()
    service.sandbox.reset_calls()
    response = await click(service)
    assert response.status_code == 302
    methods = Counter(m for m, _ in codat_calls(service))
    assert methods == {"GET": 1, "POST": 1, "PATCH": 1}
    connection = connections(service)[0]
    assert connection.source_accounts["cus-1-acc-0"].account_name == "Renamed checking"
    assert "cus-1-new" in connection.source_accounts
    service.sandbox.reset_calls()
    await click(service)
    assert len(codat_calls(service)) == 1


async def test_concurrent_clicks_create_one_of_everything(service: Service) -> None:
    await add_customer(service.sessions, accounts=4)
    responses = await asyncio.gather(*(click(service) for _ in range(12)))
    assert [r.status_code for r in responses] == [302] * 12
    assert len({otp(r.headers["location"]) for r in responses}) == 12
    store = service.sandbox.store
    assert len(store.companies) == 1
    assert len(connections(service)) == 1
    connection = connections(service)[0]
    assert sorted(connection.source_accounts) == [f"cus-1-acc-{n}" for n in range(4)]
    creates = Counter(path for method, path in codat_calls(service) if method == "POST")
    assert all(count == 1 for count in creates.values())


async def test_unlinked_connection_is_replaced_and_kept_in_history(service: Service) -> None:
    await add_customer(service.sessions)
    await click(service)
    old = connections(service)[0]
    old.status = ConnectionStatus.UNLINKED
    response = await click(service)
    assert response.status_code == 302
    assert len(connections(service)) == 2
    async with service.sessions() as session:
        feed = (await session.execute(select(BankFeed))).scalar_one()
        history = (await session.execute(select(BankFeedConnection))).scalars().all()
    assert feed.connection_id != old.id and feed.connection_status == "PendingAuth"
    assert {h.connection_id for h in history} == {old.id, feed.connection_id}
    new = next(c for c in connections(service) if c.id == feed.connection_id)
    assert sorted(new.source_accounts) == ["cus-1-acc-0", "cus-1-acc-1"]
    replaced = next(h for h in history if h.connection_id == old.id)
    assert replaced.replaced_at is not None and replaced.status == "Unlinked"


# --- Codat misbehaving ------------------------------------------------------------------------


@pytest.fixture
async def faulty(database_url: str) -> AsyncIterator[tuple[Service, FaultyCodat]]:
    await _truncate(database_url)
    transport = FaultyCodat()
    # Long enough for a click that adopts after a lost answer to finish on a busy machine.
    async for service in start_service(
        database_url, codat_transport=transport, connect_retry_budget_seconds=2.0
    ):
        transport.sandbox = service.app.state.sandbox_app
        yield service, transport


async def test_codat_down_gives_503_then_next_click_completes(
    faulty: tuple[Service, FaultyCodat],
) -> None:
    service, transport = faulty
    await add_customer(service.sessions, accounts=3)
    transport.down_status = 503
    response = await click(service)
    assert response.status_code == 503
    assert "try again" in text(response) and "réessayer" in text(response)
    async with service.sessions() as session:
        feed = (await session.execute(select(BankFeed))).scalar_one_or_none()
        pushed = (
            (
                await session.execute(
                    select(SourceAccount).where(SourceAccount.pushed_at.is_not(None))
                )
            )
            .scalars()
            .all()
        )
    assert feed is None or (feed.company_id is None and feed.lock_owner is None)
    assert pushed == []
    transport.down_status = None
    response = await click(service)
    assert response.status_code == 302
    store = service.sandbox.store
    assert len(store.companies) == 1 and len(connections(service)) == 1


async def test_lost_create_company_response_is_adopted_not_duplicated(
    faulty: tuple[Service, FaultyCodat],
) -> None:
    service, transport = faulty
    await add_customer(service.sessions)
    transport.lose_response_for = lambda r: r.method == "POST" and r.url.path == "/companies"
    assert (await click(service)).status_code == 503
    transport.lose_response_for = None
    assert (await click(service)).status_code == 302
    assert len(service.sandbox.store.companies) == 1


async def test_lost_create_connection_response_is_adopted(
    faulty: tuple[Service, FaultyCodat],
) -> None:
    service, transport = faulty
    await add_customer(service.sessions)
    transport.lose_response_for = lambda r: (
        r.method == "POST" and r.url.path.endswith("/connections")
    )
    assert (await click(service)).status_code == 503
    transport.lose_response_for = None
    assert (await click(service)).status_code == 302
    assert len(connections(service)) == 1


async def forget(service: Service, **columns: None) -> None:
    """As if Codat's answer and the create's Idempotency-Key had both been lost."""
    async with service.sessions() as session:
        feed = await session.get(BankFeed, "cus-1")
        assert feed is not None
        for name in columns:
            setattr(feed, name, None)
        await session.commit()


async def test_a_company_created_under_a_forgotten_key_is_adopted(service: Service) -> None:
    await add_customer(service.sessions)
    assert (await click(service)).status_code == 302
    await forget(service, company_id=None, company_request_key=None)
    again = await click(service)
    assert again.status_code == 302
    assert len(service.sandbox.store.companies) == 1  # found by its tag, not made twice
    assert [c.method for c in service.codat_calls() if c.path == "/companies"].count("POST") == 1


async def test_a_connection_created_under_a_forgotten_key_is_adopted(service: Service) -> None:
    await add_customer(service.sessions)
    assert (await click(service)).status_code == 302
    await forget(service, connection_id=None, connection_request_key=None)
    again = await click(service)
    assert again.status_code == 302
    assert len(connections(service)) == 1  # the one Codat holds, taken over


async def test_link_to_a_foreign_host_is_never_followed(
    faulty: tuple[Service, FaultyCodat],
) -> None:
    service, transport = faulty
    await add_customer(service.sessions)
    transport.rewrite_link_host = "evil.example.test"
    response = await click(service)
    assert response.status_code == 502
    assert "location" not in response.headers
    assert "evil.example.test" not in response.text


@pytest.mark.parametrize("blank", ["\t", "\n", " ", "\x7f"])
async def test_a_link_with_a_blank_or_a_control_character_is_never_followed(
    faulty: tuple[Service, FaultyCodat], blank: str
) -> None:
    """A browser drops a tab or a newline in a URL, and so does `urlsplit`: the host checked
    would not be the Location sent, so such a link is refused."""
    service, transport = faulty
    await add_customer(service.sessions)
    first = await click(service)
    assert first.status_code == 302
    transport.rewrite_link_host = f"{urlsplit(first.headers['location']).hostname}{blank}"
    response = await click(service)
    assert response.status_code == 502
    assert "location" not in response.headers

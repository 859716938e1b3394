"""Connect links: single use by default, spent only with the redirect, limited per customer,
untouched by prefetchers, and the form accepted only from the host app's pages."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from app.connect import service as connect_service
from app.connect.service import CLICK_WINDOW_SECONDS, ClickLimit
from app.connect.tokens import AUDIENCE, connect_url, mint_connect_token, verify_connect_token
from app.db import utcnow
from app.models import UsedConnectToken
from tests.conftest import (
    CONNECT_SECRET,
    PUBLIC_BASE,
    FaultyService,
    Service,
    _truncate,
    start_service,
)
from tests.factories import add_customer

LINK = "/connect-bank-feeds"


def token(customer_id: str = "cus-1", **kwargs: Any) -> str:
    return mint_connect_token(CONNECT_SECRET, customer_id, **kwargs)


async def click(service: Service, value: str, **headers: str) -> httpx.Response:
    return await service.client.get(LINK, params={"token": value}, headers=headers)


async def used_tokens(service: Service) -> list[UsedConnectToken]:
    async with service.sessions() as session:
        return list((await session.scalars(select(UsedConnectToken))).all())


def is_try_shortly_page(response: httpx.Response) -> bool:
    return (
        "Please try again shortly" in response.text
        and "Veuillez réessayer dans un instant" in response.text
    )


# --- replays ---------------------------------------------------------------------------


async def test_a_token_without_jti_is_refused_and_calls_no_one(service: Service) -> None:
    await add_customer(service.sessions)
    reusable = token(single_use=False)
    answers = Counter([(await click(service, reusable)).status_code for _ in range(5)])
    assert answers == {401: 5}
    assert service.codat_calls() == []


async def test_a_single_use_link_redirects_once_and_replays_call_no_one(
    service: Service,
) -> None:
    await add_customer(service.sessions)
    once = token()
    assert (await click(service, once)).status_code == 302
    calls = len(service.codat_calls())
    replays = Counter([(await click(service, once)).status_code for _ in range(20)])
    assert replays == {401: 20}
    assert len(service.codat_calls()) == calls


async def test_reusable_tokens_only_by_the_explicit_setting(database_url: str) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, connect_reusable_tokens=True):
        await add_customer(service.sessions)
        reusable = token(single_use=False)
        assert [(await click(service, reusable)).status_code for _ in range(3)] == [302] * 3


# --- the click limit -------------------------------------------------------------------


async def test_clicks_past_the_limit_get_the_bilingual_try_again_shortly_page(
    database_url: str,
) -> None:
    await _truncate(database_url)
    async for service in start_service(database_url, connect_clicks_per_minute=3):
        await add_customer(service.sessions)
        await add_customer(service.sessions, "cus-2")
        answers = [(await click(service, token())).status_code for _ in range(3)]
        assert answers == [302, 302, 302]
        calls = len(service.codat_calls())
        held_back = await click(service, token(lang="fr"), Accept="text/html")
        assert held_back.status_code == 429
        assert is_try_shortly_page(held_back)
        assert int(held_back.headers["retry-after"]) > 0
        assert len(service.codat_calls()) == calls
        # Another customer is not held back; the refused link was not spent.
        assert (await click(service, token("cus-2"))).status_code == 302
        assert len(await used_tokens(service)) == 4


def test_the_click_limit_is_a_sliding_minute() -> None:
    limit = ClickLimit(2)
    assert [limit.allow("cus-1", now=t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limit.allow("cus-2", now=2.0)
    assert not limit.allow("cus-1", now=CLICK_WINDOW_SECONDS - 0.5)
    assert limit.allow("cus-1", now=CLICK_WINDOW_SECONDS + 0.5)


# --- spent only with the redirect ------------------------------------------------------


async def test_a_click_that_failed_for_a_temporary_reason_can_be_retried(
    faulty: FaultyService,
) -> None:
    service = faulty.service
    await add_customer(service.sessions)
    service.services.connect.budget = 0.4
    link = token()
    faulty.fail(503)
    failed = await click(service, link)
    assert failed.status_code == 503
    assert await used_tokens(service) == []
    faulty.recover()
    assert (await click(service, link)).status_code == 302
    assert (await click(service, link)).status_code == 401


async def test_two_clicks_at_once_with_one_link_get_one_redirect(service: Service) -> None:
    await add_customer(service.sessions)
    link = token()
    answers = await asyncio.gather(*(click(service, link) for _ in range(6)))
    # The others wait for the first click's outcome: spent, so refused.
    assert sorted(a.status_code for a in answers) == [302, 401, 401, 401, 401, 401]
    assert (await click(service, link)).status_code == 401


async def test_a_hold_left_by_a_dead_click_lapses_but_a_recent_one_does_not(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connect_service, "HOLD_WAIT_SECONDS", 0.3)
    await add_customer(service.sessions)
    recent, old = token(), token()
    now = utcnow()
    async with service.sessions() as session:
        for value, held_at in ((recent, now), (old, now - timedelta(minutes=2))):
            claims = verify_connect_token(CONNECT_SECRET, value)
            session.add(
                UsedConnectToken(
                    jti=claims.jti,
                    customer_id="cus-1",
                    expires_at=claims.expires_at,
                    used_at=held_at,
                )
            )
        await session.commit()
    busy = await click(service, recent, Accept="text/html")
    assert busy.status_code == 503 and is_try_shortly_page(busy)
    assert (await click(service, old)).status_code == 302
    assert (await click(service, old)).status_code == 401


# --- prefetchers and the form ------------------------------------------------------------


async def test_a_prefetch_spends_nothing_and_calls_no_one(service: Service) -> None:
    await add_customer(service.sessions)
    link = token()
    for header in ({"Sec-Purpose": "prefetch"}, {"Sec-Purpose": "prefetch;prerender"}):
        answer = await click(service, link, **header)
        assert answer.status_code == 425 and "location" not in answer.headers
    answer = await click(service, link, Purpose="prefetch")
    assert answer.status_code == 425
    assert service.codat_calls() == []
    assert await used_tokens(service) == []
    assert (await click(service, link)).status_code == 302


async def test_the_form_is_accepted_only_from_the_host_apps_origins(database_url: str) -> None:
    await _truncate(database_url)
    host_app = "https://online.bank.example"
    async for service in start_service(database_url, host_app_origins=[host_app]):
        await add_customer(service.sessions)
        link = token()
        for refused in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
            answer = await post_form(service, link, refused)
            assert answer.status_code == 403
        assert service.codat_calls() == []
        assert await used_tokens(service) == []
        assert (await post_form(service, link, {"Origin": host_app})).status_code == 303
        # Spent: used once, whichever page sends it.
        assert (await post_form(service, link, {"Origin": PUBLIC_BASE})).status_code == 401


async def post_form(service: Service, link: str, headers: dict[str, str]) -> httpx.Response:
    return await service.client.post(LINK, data={"token": link}, headers=headers)


# --- pruning -----------------------------------------------------------------------------


async def test_expired_spent_tokens_are_pruned(service: Service) -> None:
    await add_customer(service.sessions)
    now = utcnow()
    async with service.sessions() as session:
        for jti, expires in (("gone-1", now - timedelta(hours=1)), ("kept-1", now)):
            session.add(
                UsedConnectToken(
                    jti=jti,
                    customer_id="cus-1",
                    expires_at=expires + timedelta(minutes=5) * (jti == "kept-1"),
                    used_at=expires - timedelta(minutes=10),
                    spent_at=expires - timedelta(minutes=10),
                )
            )
        await session.commit()
    assert (await click(service, token())).status_code == 302
    async with service.sessions() as session:
        left = set((await session.scalars(select(UsedConnectToken.jti))).all())
        count = await session.scalar(select(func.count()).select_from(UsedConnectToken))
    assert "gone-1" not in left and "kept-1" in left
    assert count == 2


def test_a_minted_link_carries_a_jti() -> None:
    claims = jwt.decode(token(), CONNECT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["jti"]
    assert "token=" in connect_url(PUBLIC_BASE, token())

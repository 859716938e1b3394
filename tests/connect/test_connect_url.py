"""`POST /ops/customers/{id}/connect-url`: a single-use URL that connects the customer, in the
language asked for, for as long as asked within 30 s to 15 min."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.connect.tokens import verify_connect_token
from tests.conftest import CONNECT_SECRET, Service
from tests.factories import add_customer


async def connect_url(service: Service, customer_id: str = "cus-1", **body: Any) -> Any:
    return await service.client.post(
        f"/ops/customers/{customer_id}/connect-url",
        json=body or None,
        headers=service.ops_headers,
    )


def token_of(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token


async def test_the_url_connects_the_customer_once(service: Service) -> None:
    await add_customer(service.sessions)
    answer = await connect_url(service)
    assert answer.status_code == 200
    url = answer.json()["url"]
    parts = urlsplit(url)
    assert parts.path == "/connect-bank-feeds"

    first = await service.client.get(f"{parts.path}?{parts.query}")
    again = await service.client.get(f"{parts.path}?{parts.query}")

    assert first.status_code == 302 and "/start" in first.headers["location"]
    assert again.status_code == 401 and "location" not in again.headers  # single use


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_the_language_asked_for_is_in_the_token(service: Service, lang: str) -> None:
    await add_customer(service.sessions)
    answer = await connect_url(service, lang=lang)
    claims = verify_connect_token(CONNECT_SECRET, token_of(answer.json()["url"]))
    assert claims.lang == lang and claims.customer_id == "cus-1"


async def test_no_language_means_none_and_an_unknown_one_is_refused(service: Service) -> None:
    await add_customer(service.sessions)
    plain = await connect_url(service)
    german = await connect_url(service, lang="de")
    assert verify_connect_token(CONNECT_SECRET, token_of(plain.json()["url"])).lang is None
    assert german.status_code == 422 and "lang" in german.text


@pytest.mark.parametrize("seconds", [30, 600, 900])
async def test_the_lifetime_asked_for_is_the_tokens(service: Service, seconds: int) -> None:
    await add_customer(service.sessions)
    answer = await connect_url(service, lifetime_seconds=seconds)
    claims = verify_connect_token(CONNECT_SECRET, token_of(answer.json()["url"]))
    assert claims.expires_at - claims.issued_at == timedelta(seconds=seconds)
    assert answer.json()["expires_at"].startswith(claims.expires_at.strftime("%Y-%m-%dT%H:%M:%S"))


async def test_the_default_lifetime_is_ten_minutes(service: Service) -> None:
    await add_customer(service.sessions)
    answer = await connect_url(service)
    claims = verify_connect_token(CONNECT_SECRET, token_of(answer.json()["url"]))
    assert claims.expires_at - claims.issued_at == timedelta(minutes=10)


@pytest.mark.parametrize("seconds", [0, 29, 901, 3600])
async def test_a_lifetime_outside_30_s_to_15_min_is_refused(service: Service, seconds: int) -> None:
    await add_customer(service.sessions)
    answer = await connect_url(service, lifetime_seconds=seconds)
    assert answer.status_code == 422
    assert "lifetime_seconds" in answer.text


async def test_an_unknown_customer_is_a_404_naming_nothing_else(service: Service) -> None:
    answer = await connect_url(service, "cus-nobody")
    assert answer.status_code == 404
    assert set(answer.json()) == {"detail"} and "url" not in answer.text

"""Proof 4a: fuzzed connect tokens never redirect and never change anything."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.utils import base64url_decode

from app.connect.tokens import AUDIENCE, MAX_TOKEN_LENGTH
from tests.conftest import (
    CONNECT_SECRET,
    OPS_TOKEN,
    PUBLIC_BASE,
    Service,
    _truncate,
    start_service,
)
from tests.factories import add_customer
from tests.reliability.hostile import FUZZ, Tally, database_state
from tests.reliability.support import connect_token, db_name

CUSTOMER = "cus-target"
SECRET = CONNECT_SECRET.encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: Any) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + b64(signature)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": CUSTOMER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "jti": hashlib.sha256(str(time.perf_counter_ns()).encode()).hexdigest()[:22],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()
HS256 = {"alg": "HS256", "typ": "JWT"}

# Each strategy draws one kind of attack: (kind, token).
alg_none = st.builds(
    lambda alg, sig: ("alg none", forge({"alg": alg}, claims(), None, None) + sig),
    st.sampled_from(["none", "None", "NONE", "nOnE", ""]),
    st.sampled_from(["", "AAAA", b64(b"x" * 32)]),
)
alg_confusion = st.builds(
    lambda alg, digest: (
        "HS/RS confusion",
        forge({"alg": alg, "typ": "JWT"}, claims(), SECRET, digest),
    ),
    st.sampled_from(["RS256", "RS512", "ES256", "PS256", "EdDSA", "HS384", "HS512", "hs256"]),
    st.sampled_from([hashlib.sha256, hashlib.sha384, hashlib.sha512]),
)
wrong_key = st.builds(
    lambda key: ("wrong key", forge(HS256, claims(), key, hashlib.sha256)),
    st.binary(min_size=1, max_size=64).filter(lambda k: k != SECRET),
)
embedded_key = st.builds(
    lambda key, where: (
        "attacker key in header",
        forge({**HS256, where: {"kty": "oct", "k": b64(key)}} if where == "jwk" else
              {**HS256, where: "https://evil.example.test/key"}, claims(), key, hashlib.sha256),
    ),
    st.binary(min_size=16, max_size=32),
    st.sampled_from(["jwk", "jku", "x5u", "kid"]),
)  # fmt: skip


def now() -> int:
    return int(time.time())


# Times are drawn relative to the moment of drawing, with 10 s to spare over the 30 s leeway.
bad_claims = st.one_of(
    st.builds(
        lambda aud: ("wrong audience", claims(aud=aud)),
        st.one_of(st.text(max_size=30).filter(lambda a: a != AUDIENCE), st.just(["other"])),
    ),
    st.builds(
        lambda ago: ("expired", claims(iat=now() - ago - 600, exp=now() - ago)),
        st.integers(40, 10**8),
    ),
    st.builds(
        lambda ahead: ("issued in the future", claims(iat=now() + ahead, exp=now() + ahead + 60)),
        st.integers(40, 10**8),
    ),
    st.builds(
        lambda extra: ("lifetime over 15 minutes", claims(exp=now() + 900 + extra)),
        st.integers(5, 10**8),
    ),
    st.builds(
        lambda name: (f"missing {name}", claims(**{name: _DROP})),
        st.sampled_from(["sub", "aud", "exp", "iat"]),
    ),
    st.builds(
        lambda sub: ("bad sub", claims(sub=sub)),
        st.one_of(
            st.just(""),
            st.text(min_size=65, max_size=200),
            st.integers(),
            st.none(),
            st.lists(st.text(max_size=3), max_size=2),
        ),
    ),
    st.builds(
        lambda jti: ("bad jti", claims(jti=jti)),
        st.one_of(st.just(""), st.text(min_size=129, max_size=300), st.integers()),
    ),
    st.builds(
        lambda lang: ("bad lang", claims(lang=lang)),
        st.text(max_size=5).filter(lambda v: v not in ("en", "fr")),
    ),
    st.builds(
        lambda exp: ("exp not after iat", claims(exp=now() - exp)),
        st.integers(40, 10**6),
    ),
).map(lambda pair: (pair[0], forge(HS256, pair[1], SECRET, hashlib.sha256)))
huge = st.builds(
    lambda size: ("huge", forge(HS256, claims(pad="x" * size), SECRET, hashlib.sha256)),
    # base64 makes the token 4/3 as long: httpx refuses a query string past 65,536.
    st.integers(MAX_TOKEN_LENGTH, 45_000),
)
garbage = st.builds(lambda text: ("garbage", text), st.text(max_size=300))
ops_token = st.just(("the ops token", OPS_TOKEN))


def flip(token: str, position: int, bit: int) -> str:
    raw = bytearray(token.encode())
    raw[position % len(raw)] ^= 1 << bit
    return raw.decode("latin-1")


bit_flip = st.builds(
    lambda pos, bit: ("bit flip", ("flip", pos, bit)), st.integers(0, 10_000), st.integers(0, 7)
)
ATTACKS = st.one_of(
    alg_none, alg_confusion, wrong_key, embedded_key, bad_claims, huge, garbage, ops_token, bit_flip
)


def canonical(token: str) -> tuple[bytes, ...] | None:
    """The bytes a JWT library sees: two tokens with equal bytes are the same token."""
    try:
        return tuple(base64url_decode(part.encode()) for part in token.split("."))
    except Exception:
        return None


@pytest.fixture
async def target(database_url: str) -> AsyncIterator[Service]:
    await _truncate(database_url)
    async for service in start_service(database_url):
        await add_customer(service.sessions, CUSTOMER, accounts=2)
        yield service
    await _truncate(database_url)


@settings(FUZZ, max_examples=250)
@given(attack=ATTACKS, as_form=st.booleans())
async def test_fuzzed_connect_tokens_never_redirect_or_change_state(
    target: Service, database_url: str, tally: Tally, attack: tuple[str, Any], as_form: bool
) -> None:
    tried = tally.tried
    tally.tick()
    tally.proof, tally.variant, tally.figures = "hostile", db_name(database_url), _figures
    kind, token = attack
    if kind == "bit flip":
        genuine = connect_token(CUSTOMER)
        token = flip(genuine, token[1], token[2])
        if canonical(token) == canonical(genuine):
            tried["bit flip in base64 slack bits (same token)"] += 1
            return  # the same bytes as the genuine token: not an attack, counted apart
    tried[kind] += 1
    before = await database_state(target.sessions)
    calls = len(target.sandbox.calls)
    if as_form:
        response = await target.client.post(
            "/connect-bank-feeds", data={"token": token}, headers={"Origin": PUBLIC_BASE}
        )
    else:
        response = await target.client.get("/connect-bank-feeds", params={"token": token})

    tally.answers[response.status_code] += 1
    assert response.status_code in (400, 401, 413, 422), (kind, response.status_code)
    assert "location" not in response.headers
    assert len(target.sandbox.calls) == calls
    assert await database_state(target.sessions) == before


def _figures(tally: Tally) -> dict[str, Any]:
    tried = tally.tried
    return {
        "tokens sent": sum(v for k, v in tried.items() if "same token" not in k),
        **{f"- {k}": v for k, v in sorted(tried.items())},
        "answers": tally.answered(),
    }


async def test_the_token_oracle_can_see_a_success(target: Service) -> None:
    """A genuine token does redirect, on the same service the fuzz uses."""
    genuine = await target.client.get(
        "/connect-bank-feeds", params={"token": connect_token(CUSTOMER)}
    )
    assert genuine.status_code == 302


async def test_a_used_jti_is_refused_even_raced_and_re_encoded(target: Service) -> None:
    token = connect_token(CUSTOMER)
    header, payload, signature = token.split(".")
    # The same signature bytes, spelled differently in its last base64 character.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin_char = alphabet[alphabet.index(last) ^ 1]
    twin = f"{header}.{payload}.{signature[:-1]}{twin_char}"
    assert canonical(twin) == canonical(token) and twin != token

    raced = await asyncio.gather(
        *(target.client.get("/connect-bank-feeds", params={"token": token}) for _ in range(20))
    )
    again = await target.client.get("/connect-bank-feeds", params={"token": twin})

    assert sorted(r.status_code for r in raced) == [302] + [401] * 19
    assert again.status_code == 401

"""Connect tokens: only a well-formed, correctly signed, current HS256 token for us passes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.connect.tokens import (
    AUDIENCE,
    InvalidConnectToken,
    mint_connect_token,
    verify_connect_token,
)

SECRET = "unit-test-connect-secret-0123456789"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def encode(claims: dict[str, object], secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def base_claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "cus-1",
        "aud": AUDIENCE,
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=10)).timestamp()),
        "jti": "jti-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_minted_token_verifies_with_claims() -> None:
    token = mint_connect_token(SECRET, "cus-1", lang="fr", now=NOW)
    claims = verify_connect_token(SECRET, token, now=NOW + timedelta(minutes=1))
    assert claims.customer_id == "cus-1"
    assert claims.lang == "fr"
    assert claims.jti
    assert claims.expires_at - claims.issued_at == timedelta(minutes=10)


def test_lifetime_is_capped_at_fifteen_minutes_when_minting() -> None:
    token = mint_connect_token(SECRET, "cus-1", lifetime=timedelta(hours=2), now=NOW)
    claims = verify_connect_token(SECRET, token, now=NOW)
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)


def none_alg_token() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(base_claims())}."


REFUSALS: dict[str, tuple[str | None, str]] = {
    "missing": (None, "missing or oversized"),
    "empty": ("", "missing or oversized"),
    "garbage": ("not-a-jwt", "DecodeError"),
    "three-parts": ("a.b.c", "DecodeError"),
    "bad-signature": (
        encode(base_claims(), secret="another-secret-entirely-0123456789"),
        "InvalidSignatureError",
    ),
    "HS512": (encode(base_claims(), alg="HS512"), "algorithm"),
    "alg-none": (none_alg_token(), "algorithm"),
    "wrong-aud": (encode(base_claims(aud="someone-else")), "aud"),
    "no-aud": (encode(base_claims(aud=None)), "missing aud"),
    "no-sub": (encode(base_claims(sub=None)), "missing sub"),
    "empty-sub": (encode(base_claims(sub="")), "sub"),
    "no-iat": (encode(base_claims(iat=None)), "missing iat"),
    "expired": (encode(base_claims(exp=int((NOW - timedelta(minutes=1)).timestamp()))), "expired"),
    "future-iat": (
        encode(
            base_claims(
                iat=int((NOW + timedelta(minutes=5)).timestamp()),
                exp=int((NOW + timedelta(minutes=10)).timestamp()),
            )
        ),
        "issued in the future",
    ),
    "too-long-lived": (
        encode(base_claims(exp=int((NOW + timedelta(minutes=16)).timestamp()))),
        "lifetime",
    ),
    "bad-lang": (encode(base_claims(lang="de")), "lang"),
    "bad-jti": (encode(base_claims(jti=12)), "jti"),
    "no-jti": (encode(base_claims(jti=None)), "missing jti"),
    "long-jti": (encode(base_claims(jti="j" * 129)), "jti"),
    "iat-1e20": (encode(base_claims(iat=1e20)), "times"),
    "iat-bool": (encode(base_claims(iat=True)), "times"),
    "huge": ("x" * 5000, "missing or oversized"),
}


@pytest.mark.parametrize(("token", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_for_its_own_reason(token: str | None, reason: str) -> None:
    with pytest.raises(InvalidConnectToken) as refused:
        verify_connect_token(SECRET, token, now=NOW)
    assert refused.value.reason == reason


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1" + "0" * 5000])
def test_non_finite_or_enormous_times_are_refused(number: str) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = (
        '{"sub":"cus-1","aud":"'
        + AUDIENCE
        + '","iat":'
        + number
        + ',"exp":'
        + str(int((NOW + timedelta(minutes=10)).timestamp()))
        + "}"
    )
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=")
    signing_input = header + b"." + payload
    signature = jwt.api_jws.get_algorithm_by_name("HS256").sign(signing_input, SECRET.encode())
    token = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    with pytest.raises(InvalidConnectToken):
        verify_connect_token(SECRET, token, now=NOW)


def test_a_token_valid_at_its_own_time_is_refused_once_expired() -> None:
    token = mint_connect_token(SECRET, "cus-1", now=NOW)
    assert verify_connect_token(SECRET, token, now=NOW + timedelta(minutes=9)).customer_id
    with pytest.raises(InvalidConnectToken) as refused:
        verify_connect_token(SECRET, token, now=NOW + timedelta(minutes=11))
    assert refused.value.reason == "expired"


def test_rs256_token_with_hmac_secret_as_key_is_refused() -> None:
    header = {"alg": "RS256", "typ": "JWT"}
    body = base_claims()

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    forged = f"{part(header)}.{part(body)}.{part({'sig': 'x'})}"
    with pytest.raises(InvalidConnectToken):
        verify_connect_token(SECRET, forged, now=NOW)

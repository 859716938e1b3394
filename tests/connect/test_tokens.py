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


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "not-a-jwt",
        "a.b.c",
        encode(base_claims(), secret="another-secret-entirely-0123456789"),
        encode(base_claims(), alg="HS512"),
        none_alg_token(),
        encode(base_claims(aud="someone-else")),
        encode(base_claims(aud=None)),
        encode(base_claims(sub=None)),
        encode(base_claims(sub="")),
        encode(base_claims(iat=None)),
        encode(base_claims(exp=int((NOW - timedelta(minutes=1)).timestamp()))),
        encode(
            base_claims(
                iat=int((NOW + timedelta(minutes=5)).timestamp()),
                exp=int((NOW + timedelta(minutes=10)).timestamp()),
            )
        ),
        encode(base_claims(exp=int((NOW + timedelta(minutes=16)).timestamp()))),
        encode(base_claims(lang="de")),
        encode(base_claims(jti=12)),
        "x" * 5000,
    ],
    ids=[
        "missing",
        "empty",
        "garbage",
        "three-parts",
        "bad-signature",
        "HS512",
        "alg-none",
        "wrong-aud",
        "no-aud",
        "no-sub",
        "empty-sub",
        "no-iat",
        "expired",
        "future-iat",
        "too-long-lived",
        "bad-lang",
        "bad-jti",
        "huge",
    ],
)
def test_refused(token: str | None) -> None:
    with pytest.raises(InvalidConnectToken):
        verify_connect_token(SECRET, token, now=NOW)


def test_rs256_token_with_hmac_secret_as_key_is_refused() -> None:
    header = {"alg": "RS256", "typ": "JWT"}
    body = base_claims()

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    forged = f"{part(header)}.{part(body)}.{part({'sig': 'x'})}"
    with pytest.raises(InvalidConnectToken):
        verify_connect_token(SECRET, forged, now=NOW)

"""Connect tokens: short-lived HS256 JWTs that say which customer is clicking."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt

AUDIENCE = "bankfeeds-connect"
ALGORITHM = "HS256"
MAX_LIFETIME = timedelta(minutes=15)
CLOCK_SKEW = timedelta(seconds=30)
MAX_TOKEN_LENGTH = 4096


class InvalidConnectToken(Exception):
    """Any reason a token is refused; deliberately not more specific for the caller."""


@dataclass(frozen=True)
class ConnectClaims:
    customer_id: str
    issued_at: datetime
    expires_at: datetime
    jti: str | None
    lang: str | None


def mint_connect_token(
    secret: str,
    customer_id: str,
    *,
    lang: str | None = None,
    lifetime: timedelta = timedelta(minutes=10),
    single_use: bool = True,
    now: datetime | None = None,
) -> str:
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims: dict[str, object] = {
        "sub": customer_id,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + min(lifetime, MAX_LIFETIME)).timestamp()),
    }
    if single_use:
        claims["jti"] = secrets.token_urlsafe(16)
    if lang:
        claims["lang"] = lang
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def connect_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url}/connect-bank-feeds?{urlencode({'token': token})}"


def verify_connect_token(
    secret: str,
    token: str | None,
    *,
    now: datetime | None = None,
) -> ConnectClaims:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidConnectToken("missing or oversized")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidConnectToken("algorithm")
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "aud", "exp", "iat"], "verify_iat": False},
            leeway=CLOCK_SKEW,
        )
    except jwt.PyJWTError as exc:
        raise InvalidConnectToken(type(exc).__name__) from exc
    current = now or datetime.now(UTC)
    sub, iat, exp = claims.get("sub"), claims.get("iat"), claims.get("exp")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise InvalidConnectToken("sub")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise InvalidConnectToken("times")
    issued_at = datetime.fromtimestamp(iat, UTC)
    expires_at = datetime.fromtimestamp(exp, UTC)
    if issued_at > current + CLOCK_SKEW:
        raise InvalidConnectToken("issued in the future")
    if expires_at - issued_at > MAX_LIFETIME or expires_at <= issued_at:
        raise InvalidConnectToken("lifetime")
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 128):
        raise InvalidConnectToken("jti")
    lang = claims.get("lang")
    if lang is not None and lang not in ("en", "fr"):
        raise InvalidConnectToken("lang")
    return ConnectClaims(sub, issued_at, expires_at, jti, lang)

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
    """Any reason a token is refused. `reason` is for tests and logs, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    require_jti: bool = True,
) -> ConnectClaims:
    """The token's claims, or InvalidConnectToken. Without `require_jti`, a token with no
    `jti` is accepted and can be used until it expires (weaker: CONNECT_REUSABLE_TOKENS)."""
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
            # Times are checked below against `now`, so a caller's clock is the only clock.
            options={
                "require": ["sub", "aud", "exp", "iat"],
                "verify_iat": False,
                "verify_exp": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError as exc:
        raise InvalidConnectToken("aud") from exc
    except jwt.exceptions.InvalidJTIError as exc:
        raise InvalidConnectToken("jti") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidConnectToken(f"missing {exc.claim}") from exc
    except (jwt.PyJWTError, ValueError) as exc:  # ValueError: JSON numbers out of range
        raise InvalidConnectToken(type(exc).__name__) from exc
    current = now or datetime.now(UTC)
    sub, iat, exp = claims.get("sub"), claims.get("iat"), claims.get("exp")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise InvalidConnectToken("sub")
    issued_at, expires_at = _instant(iat), _instant(exp)
    if issued_at is None or expires_at is None:
        raise InvalidConnectToken("times")
    if expires_at <= current - CLOCK_SKEW:
        raise InvalidConnectToken("expired")
    if issued_at > current + CLOCK_SKEW:
        raise InvalidConnectToken("issued in the future")
    if expires_at - issued_at > MAX_LIFETIME or expires_at <= issued_at:
        raise InvalidConnectToken("lifetime")
    jti = claims.get("jti")
    if jti is None and require_jti:
        raise InvalidConnectToken("missing jti")
    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 128):
        raise InvalidConnectToken("jti")
    lang = claims.get("lang")
    if lang is not None and lang not in ("en", "fr"):
        raise InvalidConnectToken("lang")
    return ConnectClaims(sub, issued_at, expires_at, jti, lang)


def _instant(value: object) -> datetime | None:
    """A JWT NumericDate as an aware datetime; None for NaN, infinity, bools or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None

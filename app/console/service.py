"""The console's sessions and its audit log.

A session is a signed cookie naming a random session id. It expires after 8 idle hours (each
request signs it again), and ends for good once its sign-out is in the audit log. Forms carry a
CSRF token derived from the session id. Every action is an audit entry, committed before the
answer; failed sign-ins are counted there too, per client address, to slow down guessing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import DomainError
from app.models import ConsoleAuditEntry

log = logging.getLogger("app.console")

SESSION_IDLE = timedelta(hours=8)
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_FAILURES = 5  # failed sign-ins from one address within the window before a pause
SIGN_IN_FORM_LIFETIME = timedelta(hours=1)

Outcome = Literal["ok", "failed", "refused"]
Clock = Callable[[], datetime]

SIGN_IN, SIGN_OUT, CSRF_REFUSED = "sign_in", "sign_out", "csrf_refused"


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    csrf_token: str


@dataclass(frozen=True)
class SessionCheck:
    session: ConsoleSession | None
    expired: bool = False  # a genuine cookie, idle too long: say so on the sign-in page


@dataclass(frozen=True)
class SignInResult:
    session: ConsoleSession | None
    retry_after: int | None = None  # seconds, when sign-ins from the address are paused


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer on the service's clock (tests move it)."""

    def __init__(self, key: bytes, salt: str, clock: Clock) -> None:
        super().__init__(key, salt=salt)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock().timestamp())


@dataclass
class AuditEntry:
    """What an action writes to the audit log; the action fills `detail` as it goes."""

    session_id: str | None
    action: str
    target: str | None
    detail: str | None = None


class ConsoleService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ops_token: SecretStr | None,
        clock: Clock = utcnow,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        token = ops_token.get_secret_value() if ops_token is not None else ""
        # Changing the ops token ends every console session.
        self._key = hmac.new(token.encode(), b"bankfeeds console", hashlib.sha256).digest()
        self._token = token.encode()

    @property
    def enabled(self) -> bool:
        """The console exists only when an ops token is configured, as the ops API does."""
        return bool(self._token)

    def now(self) -> datetime:
        return self.clock()

    def _signer(self) -> _ClockedSigner:
        return _ClockedSigner(self._key, "console-session", self.clock)

    # --- sessions -----------------------------------------------------------------------

    def cookie(self, session: ConsoleSession) -> str:
        """The session's cookie, signed now: every answer renews it, so only idle time counts."""
        return self._signer().sign(session.id).decode()

    async def check(self, cookie: str | None) -> SessionCheck:
        """The session a cookie names, if it is genuine, not idle too long and not signed out."""
        if not cookie or not self.enabled:
            return SessionCheck(None)
        try:
            session_id = (
                self._signer().unsign(cookie, max_age=int(SESSION_IDLE.total_seconds())).decode()
            )
        except SignatureExpired:
            return SessionCheck(None, expired=True)
        except BadSignature:
            return SessionCheck(None)
        async with self.sessions() as session:
            ended = await session.scalar(
                select(ConsoleAuditEntry.id)
                .where(
                    ConsoleAuditEntry.session_id == session_id,
                    ConsoleAuditEntry.action == SIGN_OUT,
                )
                .limit(1)
            )
        if ended is not None:
            return SessionCheck(None)
        return SessionCheck(ConsoleSession(session_id, self.csrf_token(session_id)))

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._key, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: ConsoleSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf_token, token)

    # --- signing in and out -------------------------------------------------------------

    def sign_in_form(self) -> tuple[str, str]:
        """(cookie, form token) for the sign-in form: a CSRF pair before there is a session."""
        nonce = secrets.token_urlsafe(16)
        return self._signer().sign(nonce).decode(), self._form_token(nonce)

    def sign_in_form_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        try:
            nonce = self._signer().unsign(
                cookie, max_age=int(SIGN_IN_FORM_LIFETIME.total_seconds())
            )
        except BadSignature:
            return False
        return hmac.compare_digest(self._form_token(nonce.decode()), token)

    def _form_token(self, nonce: str) -> str:
        return hmac.new(self._key, b"sign-in:" + nonce.encode(), hashlib.sha256).hexdigest()

    async def sign_in(self, token: str, remote: str | None) -> SignInResult:
        """A new session for the right ops token. Wrong tokens are audited; past
        SIGN_IN_FAILURES of them from one address in SIGN_IN_WINDOW, that address waits
        (even with the right token) and the attempt is not checked."""
        now = self.now()
        async with self.sessions() as session:
            retry_after = await self._paused(session, remote, now)
            if retry_after is not None:
                log.warning("console sign-in from %r refused: too many failures", remote)
                return SignInResult(None, retry_after)
            right = self.enabled and hmac.compare_digest(token.encode(), self._token)
            session_id = secrets.token_hex(8) if right else None
            session.add(
                ConsoleAuditEntry(
                    at=now,
                    session_id=session_id,
                    action=SIGN_IN,
                    outcome="ok" if right else "failed",
                    detail=None if right else "wrong ops token",
                    remote=remote,
                )
            )
            await session.commit()
        if session_id is None:
            return SignInResult(None)
        return SignInResult(ConsoleSession(session_id, self.csrf_token(session_id)))

    async def _paused(self, session: AsyncSession, remote: str | None, now: datetime) -> int | None:
        column = ConsoleAuditEntry.remote
        failures = (
            select(ConsoleAuditEntry.at)
            .where(
                ConsoleAuditEntry.action == SIGN_IN,
                column == remote if remote is not None else column.is_(None),
                ConsoleAuditEntry.outcome == "failed",
                ConsoleAuditEntry.at > now - SIGN_IN_WINDOW,
            )
            .order_by(ConsoleAuditEntry.at.desc())
            .limit(SIGN_IN_FAILURES)
            .subquery()
        )
        count, oldest = (await session.execute(select(func.count(), func.min(failures.c.at)))).one()
        if count < SIGN_IN_FAILURES:
            return None
        return max(1, int((oldest + SIGN_IN_WINDOW - now).total_seconds()) + 1)

    async def sign_out(self, console_session: ConsoleSession, remote: str | None) -> None:
        await self.record(AuditEntry(console_session.id, SIGN_OUT, None), "ok", remote=remote)

    # --- the audit log ------------------------------------------------------------------

    async def record(
        self, entry: AuditEntry, outcome: Outcome, *, remote: str | None = None
    ) -> None:
        async with self.sessions() as session:
            session.add(
                ConsoleAuditEntry(
                    at=self.now(),
                    session_id=entry.session_id,
                    action=entry.action,
                    target=entry.target,
                    outcome=outcome,
                    detail=entry.detail,
                    remote=remote,
                )
            )
            await session.commit()

    @contextlib.asynccontextmanager
    async def audited(
        self, session: ConsoleSession, action: str, target: str | None, remote: str | None
    ) -> AsyncIterator[AuditEntry]:
        """Run an action and audit how it ended: `ok`, or `failed` with the error a service
        raised. Anything else (the database went away) is not audited: it propagates."""
        entry = AuditEntry(session.id, action, target)
        try:
            yield entry
        except DomainError as exc:
            entry.detail = str(exc.detail)
            await self.record(entry, "failed", remote=remote)
            raise
        await self.record(entry, "ok", remote=remote)

    async def audit_log(self, *, limit: int, before: int | None = None) -> list[ConsoleAuditEntry]:
        """Newest first; `before` is the id a page starts below."""
        async with self.sessions() as session:
            query = select(ConsoleAuditEntry).order_by(ConsoleAuditEntry.id.desc()).limit(limit)
            if before is not None:
                query = query.where(ConsoleAuditEntry.id < before)
            return list((await session.execute(query)).scalars())

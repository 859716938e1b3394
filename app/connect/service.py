"""The connect flow: from a customer's click to a fresh Codat Link URL, never duplicating."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import kill_points
from app.bank_feeds import repository as feeds
from app.bank_feeds import writes
from app.bank_feeds.company_gone import forget_company
from app.bank_feeds.statuses import REUSABLE_CONNECTION_STATUSES
from app.bank_feeds.sync import create_missing, forget_push, in_sync, update_changed
from app.codat.client import CodatClient, new_idempotency_key
from app.codat.errors import CodatNotFound
from app.codat.models import Connection, company_name_for_codat
from app.connect.tokens import (
    CLOCK_SKEW,
    ConnectClaims,
    InvalidConnectToken,
    connect_url,
    mint_connect_token,
    verify_connect_token,
)
from app.customers.rules import CONNECTABLE_COUNTRIES, CUSTOMER_TAG
from app.db import utcnow
from app.errors import (
    Busy,
    CodatRefused,
    Conflict,
    CustomerNotFound,
    Forbidden,
    TooManyClicks,
    Unauthorized,
    talking_to_codat,
)
from app.events.outbox import announce
from app.models import BankFeed, Customer, SourceAccount, UsedConnectToken

log = logging.getLogger("app.connect")

LEASE_WAIT_SECONDS = 12.0
# A click holds its token's jti while it works; a hold this old belongs to a click that died.
HOLD_SECONDS = 60.0
# How long a second click with the same link waits for the first one's outcome.
HOLD_WAIT_SECONDS = 5.0
CLICK_WINDOW_SECONDS = 60.0
PRUNE_EVERY_SECONDS = 60.0
RETRY_SHORTLY = {"Retry-After": "5"}

Provisioned = Literal["provisioned", "busy", "in_sync", "unaffordable"]


def company_name(customer: Customer) -> str:
    """The customer's name in the form Codat accepts for a company (accents taken off)."""
    return company_name_for_codat(customer.name, f"Customer {customer.id}")


class ConnectService:
    """A customer's click: checked, then everything Codat needs, then a fresh Link URL."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        codat: CodatClient,
        allowed_link_hosts: frozenset[str],
        *,
        token_secret: SecretStr | None = None,
        public_base_url: str = "",
        retry_budget_seconds: float = 4.0,
        reusable_tokens: bool = False,
        clicks_per_minute: int = 10,
    ) -> None:
        self.sessions = sessions
        self.codat = codat
        self.allowed_link_hosts = allowed_link_hosts
        self.token_secret = token_secret
        self.public_base_url = public_base_url
        self.budget = retry_budget_seconds
        # A lease outlives its holder's Codat retries; after a crash it frees itself this soon.
        self.lease_ttl = timedelta(seconds=retry_budget_seconds + 5)
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.reusable_tokens = reusable_tokens
        self.clicks = ClickLimit(clicks_per_minute)
        self._pruned_at = float("-inf")

    # --- the connect token --------------------------------------------------------------

    def verify(self, token: str | None) -> ConnectClaims:
        try:
            return verify_connect_token(self._secret(), token, require_jti=not self.reusable_tokens)
        except InvalidConnectToken as exc:
            log.info("connect token refused: %s", exc.reason)
            raise Unauthorized("This link is not valid.") from exc

    async def connect_url(
        self, customer_id: str, *, lang: str | None, lifetime: timedelta
    ) -> tuple[str, datetime]:
        """A single-use connect URL for the customer, and when it expires."""
        async with self.sessions() as session:
            if await session.get(Customer, customer_id) is None:
                raise CustomerNotFound(customer_id)
        now = datetime.now(UTC).replace(microsecond=0)
        token = mint_connect_token(
            self._secret(), customer_id, lang=lang, lifetime=lifetime, now=now
        )
        return connect_url(self.public_base_url, token), now + lifetime

    def _secret(self) -> str:
        assert self.token_secret is not None, "CONNECT_TOKEN_SECRET is required"
        return self.token_secret.get_secret_value()

    # --- the click ----------------------------------------------------------------------

    async def click(self, claims: ConnectClaims) -> str:
        """The token's customer clicked Connect: a Link URL. A token with a `jti` is held
        while the work is done and spent only with the redirect; if the click fails, the
        same link works again."""
        if not self.clicks.allow(claims.customer_id):
            log.info("too many clicks for customer %r", claims.customer_id)
            raise TooManyClicks(
                "Too many clicks for this customer; try again shortly.", headers=RETRY_SHORTLY
            )
        if claims.jti is None:  # reusable tokens (CONNECT_REUSABLE_TOKENS)
            return await self.connect(claims.customer_id)
        held_since, state = await self._hold(claims)
        try:
            link = await self.connect(claims.customer_id, state)
        except BaseException:
            await asyncio.shield(self._let_go(claims.jti, held_since))
            raise
        await self._spend(claims.jti, held_since)
        await self.prune_spent()
        return link

    async def _hold(self, claims: ConnectClaims) -> tuple[datetime, feeds.ClickState | None]:
        """Hold the token's jti for this click, and read the customer's click state in the
        same transaction. A spent token is refused; while another click holds it, this one
        waits for its outcome: spent (refused) or let go (held here)."""
        assert claims.jti is not None
        deadline = time.monotonic() + HOLD_WAIT_SECONDS
        delay = 0.02
        while True:
            held = await self._try_hold(claims)
            if held is not None:
                return held
            if time.monotonic() + delay > deadline:
                raise Busy(
                    "This link is at work in another click.",
                    headers=RETRY_SHORTLY,
                    page="try_shortly",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _try_hold(
        self, claims: ConnectClaims
    ) -> tuple[datetime, feeds.ClickState | None] | None:
        """The time this click holds the jti from, with the click state read in the hold's
        transaction; None while another click holds it."""
        assert claims.jti is not None
        now = utcnow()
        async with self.sessions() as session:
            session.add(
                UsedConnectToken(
                    jti=claims.jti,
                    customer_id=claims.customer_id,
                    expires_at=claims.expires_at,
                    used_at=now,
                )
            )
            try:
                state = await feeds.get_click_state(session, claims.customer_id)  # flushes
                await session.commit()
                return now, state
            except IntegrityError:
                await session.rollback()
            row = await session.get(UsedConnectToken, claims.jti, populate_existing=True)
            if row is None:  # let go of just now: try again
                return None
            if row.spent_at is not None:
                log.info("connect token replayed for customer %r", claims.customer_id)
                raise Unauthorized("This link was already used.")
            # A hold left by a click that died long ago is taken over; a recent one is not.
            taken = await session.execute(
                update(UsedConnectToken)
                .where(
                    UsedConnectToken.jti == claims.jti,
                    UsedConnectToken.spent_at.is_(None),
                    UsedConnectToken.used_at == row.used_at,
                    UsedConnectToken.used_at < now - timedelta(seconds=HOLD_SECONDS),
                )
                .values(used_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                await session.commit()
                return None
            state = await feeds.get_click_state(session, claims.customer_id)
            await session.commit()
            return now, state

    async def _spend(self, jti: str, held_since: datetime) -> None:
        """The redirect is issued: the token is spent, committed before the answer."""
        async with self.sessions() as session:
            await session.execute(
                update(UsedConnectToken)
                .where(UsedConnectToken.jti == jti, UsedConnectToken.used_at == held_since)
                .values(spent_at=utcnow())
            )
            await session.commit()

    async def _let_go(self, jti: str, held_since: datetime) -> None:
        """The click failed: the token is free again for the next click."""
        try:
            async with self.sessions() as session:
                await session.execute(
                    delete(UsedConnectToken).where(
                        UsedConnectToken.jti == jti,
                        UsedConnectToken.spent_at.is_(None),
                        UsedConnectToken.used_at == held_since,
                    )
                )
                await session.commit()
        except Exception:  # the hold then lapses after HOLD_SECONDS
            log.warning("could not free a connect token after a failed click", exc_info=True)

    async def prune_spent(self, now: datetime | None = None, *, force: bool = False) -> int:
        """Forget tokens that have expired (they are refused anyway); at most once a minute."""
        if not force and time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return 0
        self._pruned_at = time.monotonic()
        cutoff = (now or utcnow()) - CLOCK_SKEW
        async with self.sessions() as session:
            result = await session.execute(
                delete(UsedConnectToken).where(UsedConnectToken.expires_at < cutoff)
            )
            await session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def connect(self, customer_id: str, state: feeds.ClickState | None = None) -> str:
        """Return a Link URL fetched from Codat during this call; `state`, when given, was read
        by this click a moment ago."""
        if state is None:
            async with self.sessions() as session:
                state = await feeds.get_click_state(session, customer_id)
        _check_eligible(
            customer_id, state.country if state else None, len(state.accounts) if state else 0
        )
        assert state is not None
        feed = state.feed
        if _feed_in_sync(feed, state.accounts):
            # Only a fresh link is needed; the database connection is back in the pool first.
            assert feed is not None and feed.company_id and feed.connection_id
            with talking_to_codat(self.budget, f"connecting customer {customer_id!r}"):
                connection = await self._get_connection(feed.company_id, feed.connection_id)
            if connection is not None and connection.status in REUSABLE_CONNECTION_STATUSES:
                if connection.status != feed.connection_status:
                    await self._store_status(customer_id, connection.status)
                return self._safe_link(connection)
        async with self._lease(customer_id) as lease:
            if lease is None:  # another click finished the work while we waited
                return await self.connect(customer_id)
            with talking_to_codat(self.budget, f"connecting customer {customer_id!r}"):
                return await self._complete(customer_id, lease)

    # --- steps -------------------------------------------------------------------------

    async def _eligible_customer(self, session: AsyncSession, customer_id: str) -> Customer:
        customer = await feeds.get_customer_with_accounts(session, customer_id)
        _check_eligible(
            customer_id,
            customer.country if customer else None,
            len(customer.source_accounts) if customer else 0,
        )
        assert customer is not None
        return customer

    async def _complete(self, customer_id: str, lease: _Lease) -> str:
        return self._safe_link(await self._prepare(customer_id, lease))

    async def provision(
        self, customer_id: str, *, lease_ttl: timedelta, afford: Callable[[], Awaitable[bool]]
    ) -> Provisioned:
        """Ahead of any click, do what a first click does before its Link URL, under the
        customer's lease, once `afford` (the quota) agrees; nothing while a click or another
        replica holds the customer, or once one of them has done it."""
        lease = _Lease(f"provision:{self.owner}:{secrets.token_hex(6)}")
        async with self.sessions() as session:
            won = await feeds.try_lease(session, customer_id, lease.owner, lease_ttl)
            await session.commit()
            state = await feeds.get_click_state(session, customer_id) if won else None
        if not won:
            return "busy"
        try:
            if state is not None and _feed_in_sync(state.feed, state.accounts):
                return "in_sync"
            if not await afford():
                return "unaffordable"
            await self._prepare(customer_id, lease)
        finally:
            if not lease.released:
                async with self.sessions() as session:
                    await feeds.release_lease(session, customer_id, lease.owner)
                    await session.commit()
        return "provisioned"

    async def _prepare(self, customer_id: str, lease: _Lease) -> Connection:
        """The company (found or created, tagged), the connection and the source accounts in
        Codat; the lease is released with Codat's answers. A click and `provision` share it."""
        async with self.sessions() as session:
            customer = await self._eligible_customer(session, customer_id)
            feed = customer.bank_feed
            assert feed is not None  # the lease created it
            # No transaction stays open across a Codat call: each step commits before its
            # first call, so the read above shares the transaction of the first write.
            company_id = feed.company_id or await self._ensure_company(session, customer, feed)
            previous = feed.connection_id
            try:
                connection = await self._ensure_connection(session, feed, company_id)
            except CodatNotFound:
                if not await self._company_gone(company_id):
                    raise
                # Deleted in Codat: forget it and start again, as the webhook would have.
                await forget_company(session, feed, utcnow())
                await announce(session, customer_id)
                await session.commit()
                company_id = await self._ensure_company(session, customer, feed)
                previous = None
                connection = await self._ensure_connection(session, feed, company_id)
            accounts = list(customer.source_accounts)
            if previous is not None and connection.id != previous:
                for account in accounts:  # a new connection starts with no source accounts
                    forget_push(account)
            try:
                target = (company_id, connection.id)
                report = await create_missing(self.codat, target, accounts)
                kill_points.reached("accounts created")
                await update_changed(self.codat, target, accounts, report)
            finally:
                # Codat's answers are kept even if a later step fails; the lease goes with them.
                await feeds.release_lease(session, customer_id, lease.owner)
                await announce(session, customer_id)
                await session.commit()
                lease.released = True
            kill_points.reached("committed")
            return connection

    async def _ensure_company(
        self, session: AsyncSession, customer: Customer, feed: BankFeed
    ) -> str:
        if feed.company_requested_at is not None:
            # An earlier attempt may have created it and lost the answer: adopt, never duplicate.
            await session.commit()
            found = await self.codat.find_companies_by_tag(CUSTOMER_TAG, customer.id)
            if found:
                company = min(found, key=lambda c: (c.created is None, c.created, c.id))
                feed.company_id = company.id
                feed.company_request_key = None
                await session.commit()
                return company.id
        feed.company_requested_at = utcnow()
        # An earlier click's create that got no answer is sent again under its own key.
        feed.company_request_key = feed.company_request_key or new_idempotency_key()
        await session.commit()
        kill_points.reached("company requested")

        async def keep_key(key: str) -> None:  # a new key (after a 5xx), stored before it is sent
            feed.company_request_key = key
            await session.commit()

        company = await writes.create_company(
            self.codat,
            company_name(customer),
            tag=(CUSTOMER_TAG, customer.id),
            description=f"Bank feeds for customer {customer.id}",
            key=feed.company_request_key,
            keep_key=keep_key,
        )
        kill_points.reached("company created")
        feed.company_id = company.id
        feed.company_request_key = None
        await session.commit()
        kill_points.reached("company stored")
        return company.id

    async def _ensure_connection(
        self, session: AsyncSession, feed: BankFeed, company_id: str
    ) -> Connection:
        await session.commit()  # before a Codat call; nothing is open on a first click
        if feed.connection_id is not None:
            current = await self._get_connection(company_id, feed.connection_id)
            if current is not None:
                await self._note_status(session, feed, current)
                if current.status in REUSABLE_CONNECTION_STATUSES:
                    return current
        elif feed.connection_requested_at is not None:
            adoptable = writes.adoptable(await self.codat.list_connections(company_id))
            if adoptable:
                chosen = min(adoptable, key=lambda c: (c.created is None, c.created, c.id))
                feeds.record_connection(feed, session, chosen.id, chosen.status, utcnow())
                feed.connection_request_key = None
                await announce(session, feed.customer_id)
                await session.commit()
                return chosen
        feed.connection_requested_at = utcnow()
        # Only ever set while a create is unanswered: then it is sent again under that key.
        feed.connection_request_key = feed.connection_request_key or new_idempotency_key()
        await session.commit()
        kill_points.reached("connection requested")

        async def keep_key(key: str) -> None:  # a new key (after a 5xx), stored before it is sent
            feed.connection_request_key = key
            await session.commit()

        created = await writes.create_connection(
            self.codat, company_id, key=feed.connection_request_key, keep_key=keep_key
        )
        kill_points.reached("connection created")
        feeds.record_connection(feed, session, created.id, created.status, utcnow())
        feed.connection_request_key = None
        await announce(session, feed.customer_id)
        await session.commit()
        kill_points.reached("connection stored")
        return created

    async def _get_connection(self, company_id: str, connection_id: str) -> Connection | None:
        try:
            return await self.codat.get_connection(company_id, connection_id)
        except CodatNotFound:
            return None  # deleted in Codat: start a new one

    async def _company_gone(self, company_id: str) -> bool:
        try:
            await self.codat.get_company(company_id)
        except CodatNotFound:
            return True
        return False

    async def _note_status(
        self, session: AsyncSession, feed: BankFeed, connection: Connection
    ) -> None:
        if feeds.set_connection_status(feed, connection.status, utcnow()):
            await announce(session, feed.customer_id)
            await session.commit()

    async def _store_status(self, customer_id: str, status: str) -> None:
        async with self.sessions() as session:
            feed = await feeds.get_bank_feed(session, customer_id)
            if feed is not None and feeds.set_connection_status(feed, status, utcnow()):
                await announce(session, customer_id)
                await session.commit()

    def _safe_link(self, connection: Connection) -> str:
        link = connection.link_url or ""
        parts = urlsplit(link)  # which drops tabs and newlines a browser would also drop
        if (
            not _printable_ascii(link)  # what is checked is then exactly what is sent
            or parts.scheme not in ("https", "http")
            or (parts.hostname or "").lower() not in self.allowed_link_hosts
            or not _port_is_valid(link)
        ):
            log.error("refusing to redirect to a Link URL on host %r", parts.hostname)
            raise CodatRefused(f"Codat gave a Link URL on host {parts.hostname!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost"):
            raise CodatRefused(f"Codat gave a plain-http Link URL on host {parts.hostname!r}")
        return link

    @asynccontextmanager
    async def _lease(self, customer_id: str) -> AsyncIterator[_Lease | None]:
        """Hold the customer's lease in the database; yields None if the work got done."""
        lease = _Lease(f"{self.owner}:{secrets.token_hex(6)}")
        deadline = time.monotonic() + max(LEASE_WAIT_SECONDS, self.lease_ttl.total_seconds() + 1)
        delay = 0.02
        while True:
            done = False
            async with self.sessions() as session:
                won = await feeds.try_lease(
                    session, customer_id, lease.owner, self.lease_ttl, click=True
                )
                await session.commit()
                if not won:
                    state = await feeds.get_click_state(session, customer_id)
                    done = state is not None and _feed_in_sync(state.feed, state.accounts)
            if done:  # yield only once the session is closed: the caller opens its own
                yield None
                return
            if won:
                break
            if time.monotonic() + delay > deadline:
                raise Busy("another click is still connecting this customer")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        try:
            yield lease
        finally:
            if not lease.released:
                async with self.sessions() as session:
                    await feeds.release_lease(session, customer_id, lease.owner)
                    await session.commit()


class ClickLimit:
    """At most `per_minute` clicks by one customer in any minute, in this process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = {}

    def allow(self, customer_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        since = now - CLICK_WINDOW_SECONDS
        if len(self.seen) > 10_000:  # forget customers who stopped clicking
            self.seen = {c: q for c, q in self.seen.items() if q and q[-1] > since}
        recent = self.seen.setdefault(customer_id, deque())
        while recent and recent[0] <= since:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return False
        recent.append(now)
        return True


@dataclass
class _Lease:
    owner: str
    released: bool = False


def _printable_ascii(text: str) -> bool:
    """No space, no control character, nothing outside ASCII: as a URL Codat gives is."""
    return all("!" <= c <= "~" for c in text)


def _port_is_valid(link: str) -> bool:
    """A Link URL's port, if it has one, is a number a browser would accept."""
    try:
        urlsplit(link).port  # noqa: B018 - raises ValueError when it is not
    except ValueError:
        return False
    return True


def _check_eligible(customer_id: str, country: str | None, account_count: int) -> None:
    """Refuse, before anything is written to Codat, a click that cannot go ahead."""
    if country is None:
        raise CustomerNotFound(customer_id)
    if country not in CONNECTABLE_COUNTRIES:
        raise Forbidden(
            f"Customer {customer_id!r} is in {country}: only US and CA businesses can connect.",
            page="country_not_supported",
        )
    if account_count == 0:
        raise Conflict(f"Customer {customer_id!r} has no accounts to connect.", page="no_accounts")


def _feed_in_sync(feed: BankFeed | None, accounts: Sequence[SourceAccount]) -> bool:
    """The company, the connection and every account are in Codat as we hold them: a click
    needs only a fresh Link URL."""
    return (
        feed is not None
        and feed.company_id is not None
        and feed.connection_id is not None
        and (
            feed.connection_status is None or feed.connection_status in REUSABLE_CONNECTION_STATUSES
        )
        and all(in_sync(a) for a in accounts)
    )

"""The connect flow: from a customer's click to a fresh Codat Link URL, never duplicating."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds import repository as feeds
from app.bank_feeds import writes
from app.bank_feeds.company_gone import forget_company
from app.bank_feeds.sync import create_missing, forget_push, update_changed
from app.codat.client import CodatClient, retry_budget
from app.codat.errors import CodatError, CodatNotFound
from app.codat.models import Connection, company_name_for_codat
from app.customers.repository import get_customer_with_accounts
from app.db import utcnow
from app.models import BankFeed, Customer, SourceAccount

log = logging.getLogger("app.connect")

CONNECTABLE_COUNTRIES = frozenset({"US", "CA"})
CUSTOMER_TAG = "bankfeedsCustomerId"
LEASE_WAIT_SECONDS = 12.0


class ConnectRefused(Exception):
    """The click cannot go ahead; `reason` names the page to show."""

    def __init__(self, reason: str, status_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class CodatUnavailable(Exception):
    """Codat did not answer in time; nothing half-done is left, the next click resumes."""


class UnsafeLinkUrl(Exception):
    """Codat returned a link to a host we do not redirect to."""


def company_name(customer: Customer) -> str:
    """The customer's name in the form Codat accepts for a company (accents taken off)."""
    return company_name_for_codat(customer.name, f"Customer {customer.id}")


class ConnectService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        codat: CodatClient,
        allowed_link_hosts: frozenset[str],
        *,
        retry_budget_seconds: float = 4.0,
    ) -> None:
        self.sessions = sessions
        self.codat = codat
        self.allowed_link_hosts = allowed_link_hosts
        self.budget = retry_budget_seconds
        # A lease outlives its holder's Codat retries; after a crash it frees itself this soon.
        self.lease_ttl = timedelta(seconds=retry_budget_seconds + 5)
        self.owner = f"{uuid.uuid4().hex[:12]}"

    async def connect(self, customer_id: str) -> str:
        """Return a Link URL fetched from Codat during this call."""
        async with self.sessions() as session:
            state = await feeds.get_click_state(session, customer_id)
        _check_eligible(state.country if state else None, len(state.accounts) if state else 0)
        assert state is not None
        feed = state.feed
        settled = _is_settled(feed, state.accounts)
        if settled:  # the database connection is back in the pool before Codat is called
            assert feed is not None and feed.company_id and feed.connection_id
            with retry_budget(self.budget):
                connection = await self._get_connection(feed.company_id, feed.connection_id)
            if connection is not None and connection.reusable:
                if connection.status != feed.connection_status:
                    await self._store_status(customer_id, connection.status)
                return self._safe_link(connection)
        async with self._lease(customer_id) as lease:
            if lease is None:  # another click finished the work while we waited
                return await self.connect(customer_id)
            with retry_budget(self.budget):
                return await self._complete(customer_id, lease)

    # --- steps -------------------------------------------------------------------------

    async def _eligible_customer(self, session: AsyncSession, customer_id: str) -> Customer:
        customer = await get_customer_with_accounts(session, customer_id)
        _check_eligible(
            customer.country if customer else None, len(customer.source_accounts) if customer else 0
        )
        assert customer is not None
        return customer

    async def _complete(self, customer_id: str, lease: _Lease) -> str:
        async with self.sessions() as session:
            customer = await self._eligible_customer(session, customer_id)
            feed = customer.bank_feed
            assert feed is not None  # the lease created it
            await session.commit()  # no transaction stays open across a Codat call
            company_id = feed.company_id or await self._ensure_company(session, customer, feed)
            previous = feed.connection_id
            try:
                connection = await self._ensure_connection(session, feed, company_id)
            except CodatNotFound:
                if not await self._company_gone(company_id):
                    raise
                # Deleted in Codat: forget it and start again, as the webhook would have.
                await forget_company(session, feed, utcnow())
                await session.commit()
                company_id = await self._ensure_company(session, customer, feed)
                previous = None
                connection = await self._ensure_connection(session, feed, company_id)
            accounts = list(customer.source_accounts)
            if previous is not None and connection.id != previous:
                for account in accounts:  # a new connection starts with no source accounts
                    forget_push(account)
            try:
                report = await create_missing(self.codat, company_id, connection.id, accounts)
                await update_changed(self.codat, company_id, connection.id, accounts, report)
            finally:
                # Codat's answers are kept even if a later step fails; the lease goes with them.
                await feeds.release_lease(session, customer_id, lease.owner)
                await session.commit()
                lease.released = True
            return self._safe_link(connection)

    async def _ensure_company(
        self, session: AsyncSession, customer: Customer, feed: BankFeed
    ) -> str:
        if feed.company_requested_at is not None:
            # An earlier attempt may have created it and lost the answer: adopt, never duplicate.
            found = await self.codat.find_companies_by_tag(CUSTOMER_TAG, customer.id)
            if found:
                company = min(found, key=lambda c: (c.created is None, c.created, c.id))
                feed.company_id = company.id
                feed.company_request_key = None
                await session.commit()
                return company.id
        feed.company_requested_at = utcnow()
        await session.commit()

        async def keep_key(key: str) -> None:  # stored before it is sent
            feed.company_request_key = key
            await session.commit()

        company = await writes.create_company(
            self.codat,
            company_name(customer),
            tag=(CUSTOMER_TAG, customer.id),
            description=f"Bank feeds for customer {customer.id}",
            key=feed.company_request_key,  # an earlier click's create that got no answer
            keep_key=keep_key,
        )
        feed.company_id = company.id
        feed.company_request_key = None
        await session.commit()
        return company.id

    async def _ensure_connection(
        self, session: AsyncSession, feed: BankFeed, company_id: str
    ) -> Connection:
        if feed.connection_id is not None:
            current = await self._get_connection(company_id, feed.connection_id)
            if current is not None:
                await self._note_status(session, feed, current)
                if current.reusable:
                    return current
        elif feed.connection_requested_at is not None:
            adoptable = writes.adoptable(await self.codat.list_connections(company_id))
            if adoptable:
                chosen = min(adoptable, key=lambda c: (c.created is None, c.created, c.id))
                feeds.record_connection(feed, session, chosen.id, chosen.status, utcnow())
                feed.connection_request_key = None
                await session.commit()
                return chosen
        retry_key = feed.connection_request_key  # only ever set while a create is unanswered
        feed.connection_requested_at = utcnow()
        await session.commit()

        async def keep_key(key: str) -> None:  # stored before it is sent
            feed.connection_request_key = key
            await session.commit()

        created = await writes.create_connection(
            self.codat, company_id, key=retry_key, keep_key=keep_key
        )
        feeds.record_connection(feed, session, created.id, created.status, utcnow())
        feed.connection_request_key = None
        await session.commit()
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
            await session.commit()

    async def _store_status(self, customer_id: str, status: str) -> None:
        async with self.sessions() as session:
            feed = await feeds.get_bank_feed(session, customer_id)
            if feed is not None and feeds.set_connection_status(feed, status, utcnow()):
                await session.commit()

    def _safe_link(self, connection: Connection) -> str:
        link = connection.link_url or ""
        parts = urlsplit(link)
        if (
            parts.scheme not in ("https", "http")
            or (parts.hostname or "").lower() not in self.allowed_link_hosts
        ):
            log.error("refusing to redirect to a Link URL on host %r", parts.hostname)
            raise UnsafeLinkUrl(parts.hostname or "")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost"):
            raise UnsafeLinkUrl(parts.hostname or "")
        return link

    @asynccontextmanager
    async def _lease(self, customer_id: str) -> AsyncIterator[_Lease | None]:
        """Hold the customer's lease in the database; yields None if the work got done."""
        lease = _Lease(f"{self.owner}:{secrets.token_hex(6)}")
        deadline = time.monotonic() + max(LEASE_WAIT_SECONDS, self.lease_ttl.total_seconds() + 1)
        delay = 0.02
        while True:
            settled = False
            async with self.sessions() as session:
                won = await feeds.try_lease(
                    session, customer_id, lease.owner, self.lease_ttl, click=True
                )
                await session.commit()
                if not won:
                    state = await feeds.get_click_state(session, customer_id)
                    settled = state is not None and _is_settled(state.feed, state.accounts)
            if settled:  # yield only once the session is closed: the caller opens its own
                yield None
                return
            if won:
                break
            if time.monotonic() + delay > deadline:
                raise CodatUnavailable("another click is still connecting this customer")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        try:
            yield lease
        finally:
            if not lease.released:
                async with self.sessions() as session:
                    await feeds.release_lease(session, customer_id, lease.owner)
                    await session.commit()


@dataclass
class _Lease:
    owner: str
    released: bool = False


def _check_eligible(country: str | None, account_count: int) -> None:
    """Refuse, before anything is written to Codat, a click that cannot go ahead."""
    if country is None:
        raise ConnectRefused("customer_unknown", 404)
    if country not in CONNECTABLE_COUNTRIES:
        raise ConnectRefused("country_not_supported", 403)
    if account_count == 0:
        raise ConnectRefused("no_accounts", 409)


def _is_settled(feed: BankFeed | None, accounts: Sequence[SourceAccount]) -> bool:
    """Everything is in Codat: only a fresh link is needed."""
    return (
        feed is not None
        and feed.company_id is not None
        and feed.connection_id is not None
        and feed.connection_status in ("PendingAuth", "Linked", None)
        and all(a.in_sync for a in accounts)
    )


__all__ = ["CodatError", "CodatUnavailable", "ConnectRefused", "ConnectService", "UnsafeLinkUrl"]

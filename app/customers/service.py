"""Customers and their source accounts: our database decides, Codat follows within the request.

Each method is one unit of work: it commits before it returns, so no answer goes out before
what it reports is stored. A change Codat must make goes through `app.bank_feeds.sync` first;
if Codat fails, nothing is committed here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bank_feeds import repository as feeds
from app.bank_feeds import writes
from app.bank_feeds.schemas import AccountOut, BankFeedSummary
from app.bank_feeds.statuses import (
    CONNECTED,
    LINKED,
    PENDING_AUTH,
    UNKNOWN,
    UNLINKED,
    account_status_sql,
    count_statuses,
    customer_action_reasons,
    live_connection,
)
from app.bank_feeds.sync import apply_codat_account, push_account, remove_account
from app.codat.client import CodatClient
from app.codat.errors import CodatNotFound
from app.codat.mapper import source_account_close
from app.customers import importer
from app.customers.rules import CONNECTABLE_COUNTRIES, CUSTOMER_TAG
from app.customers.schemas import (
    ACCOUNT_FIELDS,
    FIXED_FIELDS,
    AccountCounts,
    AccountDeleteOut,
    AccountIn,
    AccountWriteOut,
    CodatWrite,
    CustomerIn,
    CustomerOut,
    ImportOut,
    OffboardCodat,
    OffboardLocal,
    OffboardOut,
)
from app.db import insert_ignore, utcnow
from app.errors import Conflict, CustomerNotFound, NotFound, talking_to_codat
from app.events.outbox import announce
from app.models import (
    BankFeed,
    CodatEvent,
    Customer,
    OutboundEvent,
    SourceAccount,
    UsedConnectToken,
)


@dataclass
class CustomerService:
    sessions: async_sessionmaker[AsyncSession]
    codat: CodatClient
    budget: float  # seconds for one request's Codat calls (a write-through), retries included
    added: Callable[[], None] = lambda: None  # a customer or account was created or imported

    # --- customers ----------------------------------------------------------------------

    async def put_customer(self, customer_id: str, body: CustomerIn) -> tuple[CustomerOut, bool]:
        """Create or update; True when created. Two PUTs racing to create both succeed."""
        async with self.sessions() as session:
            values = {"name": body.name, "country": body.country, "locale": body.locale}
            dialect = session.get_bind().dialect.name
            inserted = await session.execute(
                insert_ignore(dialect, Customer, {"id": customer_id, **values})
            )
            created = inserted.rowcount == 1  # type: ignore[attr-defined]
            if not created:
                customer = await _require_customer(session, customer_id)
                customer.name, customer.country, customer.locale = (
                    body.name,
                    body.country,
                    body.locale,
                )
                await session.flush()
            out = await _customer_out(session, customer_id)
            await session.commit()
        if created:
            self.added()
        return out, created

    async def get_customer(self, customer_id: str) -> CustomerOut:
        """The customer, with counts of their accounts and a summary of their bank feed."""
        async with self.sessions() as session:
            return await _customer_out(session, customer_id)

    async def offboard(self, customer_id: str, *, purge: bool) -> OffboardOut:
        """Unlink the customer's QuickBooks connection; with `purge`, delete everything."""
        async with self.sessions() as session:
            await _require_customer(session, customer_id)
            feed = await feeds.get_bank_feed(session, customer_id)
            codat = OffboardCodat(
                connection_unlinked=False,
                company_deleted=False,
                connection_status=feed.connection_status if feed else None,
                companies_deleted=[],
            )
            if purge:
                codat.companies_deleted = await self._delete_companies(customer_id, feed)
                codat.company_deleted = bool(codat.companies_deleted)
                codat.connection_status = None
                accounts = await session.scalar(
                    select(func.count()).where(SourceAccount.customer_id == customer_id)
                )
                for model in (CodatEvent, UsedConnectToken, OutboundEvent):
                    await session.execute(delete(model).where(model.customer_id == customer_id))
                await session.execute(delete(Customer).where(Customer.id == customer_id))
                local = OffboardLocal(customer_deleted=True, accounts_deleted=accounts or 0)
            else:
                if feed is not None and feed.company_id and feed.connection_id:
                    codat.connection_unlinked = await self._unlink(feed)
                    codat.connection_status = feed.connection_status
                    await announce(session, customer_id)
                local = OffboardLocal(customer_deleted=False, accounts_deleted=0)
            await session.commit()
        return OffboardOut(customer_id=customer_id, purge=purge, codat=codat, local=local)

    async def _unlink(self, feed: BankFeed) -> bool:
        """Revoke the QuickBooks credentials, then end the connection: a Linked one is unlinked,
        a PendingAuth one (which Codat will not unlink) is deleted. True when one was ended."""
        company_id, connection_id = feed.company_id, feed.connection_id
        assert company_id is not None and connection_id is not None
        with talking_to_codat(self.budget, "unlinking the QuickBooks connection"):
            try:
                connection = await self.codat.get_connection(company_id, connection_id)
                await self.codat.revoke_credentials(company_id, connection_id)
            except CodatNotFound:
                return False  # gone from Codat already: nothing left to unlink
            ended = connection.status in (LINKED, PENDING_AUTH)
            status = connection.status
            if connection.status == LINKED:
                status = (await self.codat.unlink_connection(company_id, connection_id)).status
            elif ended:
                with contextlib.suppress(CodatNotFound):
                    await self.codat.delete_connection(company_id, connection_id)
                status = UNLINKED  # we severed it: Codat's word for a connection the client ended
        feeds.set_connection_status(feed, status, utcnow())
        return ended

    async def _delete_companies(self, customer_id: str, feed: BankFeed | None) -> list[str]:
        if feed is None:
            return []  # no click ever reached Codat: there is no company
        deleted = []
        with talking_to_codat(self.budget, "deleting the customer's Codat company"):
            # An earlier click may have created a company and lost the answer: find it by tag.
            found = {
                c.id for c in await self.codat.find_companies_by_tag(CUSTOMER_TAG, customer_id)
            }
            for company_id in sorted(found | ({feed.company_id} if feed.company_id else set())):
                with contextlib.suppress(CodatNotFound):
                    await self.codat.delete_company(company_id)
                    deleted.append(company_id)
        return deleted

    # --- source accounts ----------------------------------------------------------------

    async def list_accounts(self, customer_id: str) -> list[AccountOut]:
        async with self.sessions() as session:
            await _require_customer(session, customer_id)
            return [
                AccountOut.of(a) for a in await feeds.list_source_accounts(session, customer_id)
            ]

    async def get_account(self, customer_id: str, account_id: str) -> AccountOut:
        async with self.sessions() as session:
            return AccountOut.of(await _require_account(session, customer_id, account_id))

    async def put_account(
        self, customer_id: str, account_id: str, body: AccountIn
    ) -> tuple[AccountWriteOut, bool]:
        """Store the account (True when created); with a bank feed, Codat gets the change first."""
        async with self.sessions() as session:
            await _require_customer(session, customer_id)
            account = await session.get(
                SourceAccount, (customer_id, account_id), populate_existing=True
            )
            values = body.columns()
            created = account is None
            if account is None:
                account = SourceAccount(customer_id=customer_id, id=account_id)
            elif account.is_pushed:
                _refuse_fixed_changes(account, values)
            local_only = []
            if account.is_pushed and account.account_info != values["account_info"]:
                local_only.append(ACCOUNT_FIELDS["account_info"])
            if account.is_pushed and account.codat_status == CONNECTED:
                if account.balance != body.balance:
                    # Codat takes a balance only until the account connects.
                    local_only.append(ACCOUNT_FIELDS["balance"])
            target = live_connection(await feeds.get_bank_feed(session, customer_id))
            # Nothing reaches the database until Codat has answered: no write lock across its calls.
            with session.no_autoflush:
                for column, value in values.items():
                    setattr(account, column, value)
                write = await self._push(target, account, local_only)
            if created:
                session.add(account)
            await session.flush()
            await announce(session, customer_id)
            out = AccountWriteOut(**AccountOut.of(account).model_dump(), codat=write)
            await session.commit()
        if created:
            self.added()
        return out, created

    async def _push(
        self, target: tuple[str, str] | None, account: SourceAccount, local_only: list[str]
    ) -> CodatWrite:
        if target is None:
            return CodatWrite(
                action="not_sent",
                fields=[],
                local_only=[],
                note="No usable bank feed yet: Codat gets it when the customer clicks Connect.",
            )
        if account.is_pushed:
            doing = f"updating account {account.id!r} in the bank feed"
        else:
            doing = f"adding account {account.id!r} to the bank feed"
        with talking_to_codat(self.budget, doing):
            push = await push_account(self.codat, target, account)
        notes = {
            "created": "The customer must click Connect to connect the new account in QuickBooks.",
            "already_in_codat": "Codat already had this account; it now carries our name and "
            "balance.",
        }
        kept = local_only if push.action in ("updated", "unchanged") else []
        return CodatWrite(
            action=push.action, fields=push.fields, local_only=kept, note=notes.get(push.action)
        )

    async def delete_account(self, customer_id: str, account_id: str) -> AccountDeleteOut:
        """Delete in Codat (while the feed is usable), then here."""
        async with self.sessions() as session:
            account = await _require_account(session, customer_id, account_id)
            target = live_connection(await feeds.get_bank_feed(session, customer_id))
            outcome: Literal["deleted", "not_in_codat", "not_sent"] = "not_sent"
            if target is not None:
                doing = f"removing account {account_id!r} from the bank feed"
                with talking_to_codat(self.budget, doing):
                    removed = await remove_account(self.codat, target, account_id)
                outcome = "deleted" if removed else "not_in_codat"
            await session.delete(account)
            await session.flush()
            await announce(session, customer_id)
            await session.commit()
        return AccountDeleteOut(customer_id=customer_id, account_id=account_id, codat=outcome)

    async def close_account(self, customer_id: str, account_id: str) -> AccountOut:
        """PATCH `status: disconnected` in Codat (the only status change Codat allows), then
        mark the account closed here. Closing a closed account changes nothing."""
        async with self.sessions() as session:
            account = await _require_account(session, customer_id, account_id)
            if account.closed_at is None:
                target = live_connection(await feeds.get_bank_feed(session, customer_id))
                if target is None or not account.is_pushed:
                    raise Conflict(
                        f"Account {account_id!r} is not in a usable bank feed in Codat, so there "
                        "is nothing to close; delete it instead."
                    )
                update = source_account_close(account)
                with talking_to_codat(
                    self.budget, f"closing account {account_id!r} in the bank feed"
                ):
                    seen = await writes.update_source_account(self.codat, *target, update)
                now = utcnow()
                apply_codat_account(account, seen, now)
                account.closed_at = now
                await session.flush()
                await announce(session, customer_id)
            out = AccountOut.of(account)
            await session.commit()
        return out

    # --- import -------------------------------------------------------------------------

    async def import_rows(
        self, source: BinaryIO, fmt: importer.Format, *, max_rows: int
    ) -> ImportOut:
        """Every row is checked first, in a thread, as the file is read; a file with any bad
        row, or more than `max_rows` rows, writes nothing."""
        plan = await asyncio.to_thread(importer.check, source, fmt, max_rows=max_rows)
        async with self.sessions() as session:
            result = await importer.write(session, plan)
            await session.commit()
        self.added()
        return result


async def _require_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


async def _require_account(
    session: AsyncSession, customer_id: str, account_id: str
) -> SourceAccount:
    account = await session.get(SourceAccount, (customer_id, account_id), populate_existing=True)
    if account is None:
        raise NotFound(f"Account {account_id!r} of customer {customer_id!r} not found.")
    return account


def _refuse_fixed_changes(account: SourceAccount, values: dict[str, object]) -> None:
    fixed = [name for column, name in FIXED_FIELDS if getattr(account, column) != values[column]]
    if fixed:
        raise Conflict(
            f"Codat cannot change {', '.join(fixed)} of account {account.id!r}: it is already "
            "in the customer's bank feed. Nothing was changed. Delete the account and add it "
            "under a new id instead."
        )


async def _customer_out(session: AsyncSession, customer_id: str) -> CustomerOut:
    customer = await _require_customer(session, customer_id)
    status = account_status_sql().label("status")
    rows = await session.execute(
        select(status, func.count())
        .where(SourceAccount.customer_id == customer_id)
        .group_by(
            SourceAccount.closed_at.is_not(None),
            SourceAccount.pushed_at.is_(None),
            SourceAccount.codat_status,
        )
    )
    counts = count_statuses([])
    for name, count in rows:
        counts[name if name in counts else UNKNOWN] += count
    feed = await feeds.get_bank_feed(session, customer_id)
    summary = None
    if feed is not None:
        reasons = customer_action_reasons(feed.connection_id, feed.connection_status, counts)
        summary = BankFeedSummary(
            company_id=feed.company_id,
            connection_id=feed.connection_id,
            connection_status=feed.connection_status,
            needs_customer_action=bool(reasons),
        )
    return CustomerOut(
        id=customer.id,
        name=customer.name,
        country=customer.country,
        locale=customer.locale,
        can_connect=customer.country in CONNECTABLE_COUNTRIES,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
        accounts=AccountCounts(
            total=sum(counts.values()), connected_count=counts[CONNECTED], by_status=counts
        ),
        bank_feed=summary,
    )

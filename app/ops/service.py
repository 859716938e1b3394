"""Customers and their source accounts: our database decides, Codat follows within the request."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bank_feeds import repository as feeds
from app.bank_feeds import writes
from app.bank_feeds.sync import apply_codat_account, mark_pushed, to_codat
from app.codat.client import CodatClient
from app.codat.errors import CodatNotFound
from app.codat.models import DEAUTHORIZED, LINKED, PENDING_AUTH, UNLINKED, SourceAccountUpdate
from app.connect.service import CONNECTABLE_COUNTRIES, CUSTOMER_TAG
from app.customers import repository as customers
from app.db import insert_ignore, utcnow
from app.models import BankFeed, CodatEvent, Customer, SourceAccount, UsedConnectToken
from app.ops.errors import CodatRefused, Conflict, NotFound, talking_to_codat
from app.ops.schemas import (
    AccountCounts,
    AccountIn,
    BankFeedSummary,
    CodatWrite,
    CustomerIn,
    CustomerOut,
    OffboardCodat,
    OffboardLocal,
    OffboardOut,
)
from app.ops.views import account_status_sql, count_statuses, customer_action_reasons

# Codat identifies a bank account by these; it cannot change them once the account is pushed.
FIXED_FIELDS = (
    ("account_type", "accountType"),
    ("account_number", "accountNumber"),
    ("currency", "currency"),
    ("sort_code", "sortCode"),
    ("routing_info", "routingInfo"),
)


def live_connection(feed: BankFeed | None) -> tuple[str, str] | None:
    """The company and connection changes go to, while the connection can still be used."""
    if feed is None or feed.company_id is None or feed.connection_id is None:
        return None
    if feed.connection_status in (UNLINKED, DEAUTHORIZED):
        return None
    return feed.company_id, feed.connection_id


# --- customers --------------------------------------------------------------------------


async def require_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await customers.get_customer(session, customer_id)
    if customer is None:
        raise NotFound(f"Customer {customer_id!r} not found.")
    return customer


async def put_customer(session: AsyncSession, customer_id: str, body: CustomerIn) -> bool:
    """Create or update; True when created. Two PUTs racing to create both succeed."""
    values = {"name": body.name, "country": body.country, "locale": body.locale}
    dialect = session.get_bind().dialect.name
    inserted = await session.execute(
        insert_ignore(dialect, Customer, {"id": customer_id, **values})
    )
    if inserted.rowcount == 1:  # type: ignore[attr-defined]
        return True
    customer = await customers.get_customer(session, customer_id)
    assert customer is not None
    customer.name, customer.country, customer.locale = body.name, body.country, body.locale
    await session.flush()
    return False


async def customer_out(session: AsyncSession, customer_id: str) -> CustomerOut:
    customer = await require_customer(session, customer_id)
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
        counts[name if name in counts else "unknown"] += count
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
            total=sum(counts.values()), connected_count=counts["connected"], by_status=counts
        ),
        bank_feed=summary,
    )


async def offboard_customer(
    session: AsyncSession, codat: CodatClient, budget: float, customer_id: str, *, purge: bool
) -> OffboardOut:
    """Unlink the customer's QuickBooks connection; with `purge`, delete everything."""
    await require_customer(session, customer_id)
    feed = await feeds.get_bank_feed(session, customer_id)
    codat_result = OffboardCodat(
        connection_unlinked=False,
        company_deleted=False,
        connection_status=feed.connection_status if feed else None,
        companies_deleted=[],
    )
    if purge:
        codat_result.companies_deleted = await _delete_companies(codat, budget, customer_id, feed)
        codat_result.company_deleted = bool(codat_result.companies_deleted)
        codat_result.connection_status = None
        accounts = await session.scalar(
            select(func.count()).where(SourceAccount.customer_id == customer_id)
        )
        for model in (CodatEvent, UsedConnectToken):
            await session.execute(delete(model).where(model.customer_id == customer_id))
        await session.execute(delete(Customer).where(Customer.id == customer_id))
        local = OffboardLocal(customer_deleted=True, accounts_deleted=accounts or 0)
    else:
        if feed is not None and feed.company_id and feed.connection_id:
            codat_result.connection_unlinked = await _unlink(codat, budget, feed)
            codat_result.connection_status = feed.connection_status
        local = OffboardLocal(customer_deleted=False, accounts_deleted=0)
    return OffboardOut(customer_id=customer_id, purge=purge, codat=codat_result, local=local)


async def _unlink(codat: CodatClient, budget: float, feed: BankFeed) -> bool:
    """Revoke the QuickBooks credentials, then end the connection: a Linked one is unlinked,
    a PendingAuth one (which Codat will not unlink) is deleted. True when one was ended."""
    assert feed.company_id is not None and feed.connection_id is not None
    with talking_to_codat(budget, "unlinking the QuickBooks connection"):
        try:
            connection = await codat.get_connection(feed.company_id, feed.connection_id)
            await codat.revoke_credentials(feed.company_id, feed.connection_id)
        except CodatNotFound:
            return False  # gone from Codat already: nothing left to unlink
        ended = connection.status in (LINKED, PENDING_AUTH)
        if connection.status == LINKED:
            connection = await codat.unlink_connection(feed.company_id, feed.connection_id)
            status = connection.status
        elif ended:
            with contextlib.suppress(CodatNotFound):
                await codat.delete_connection(feed.company_id, feed.connection_id)
            status = UNLINKED  # we severed it: Codat's word for a connection the client ended
        else:
            status = connection.status
    feeds.set_connection_status(feed, status, utcnow())
    return ended


async def _delete_companies(
    codat: CodatClient, budget: float, customer_id: str, feed: BankFeed | None
) -> list[str]:
    if feed is None:
        return []  # no click ever reached Codat: there is no company
    deleted = []
    with talking_to_codat(budget, "deleting the customer's Codat company"):
        # An earlier click may have created a company and lost the answer: find it by tag.
        found = {c.id for c in await codat.find_companies_by_tag(CUSTOMER_TAG, customer_id)}
        for company_id in sorted(found | ({feed.company_id} if feed.company_id else set())):
            with contextlib.suppress(CodatNotFound):
                await codat.delete_company(company_id)
                deleted.append(company_id)
    return deleted


# --- source accounts --------------------------------------------------------------------


async def require_account(
    session: AsyncSession, customer_id: str, account_id: str
) -> SourceAccount:
    account = await session.get(SourceAccount, (customer_id, account_id), populate_existing=True)
    if account is None:
        raise NotFound(f"Account {account_id!r} of customer {customer_id!r} not found.")
    return account


@dataclass
class AccountWrite:
    account: SourceAccount
    created: bool
    codat: CodatWrite


async def put_account(
    session: AsyncSession,
    codat: CodatClient,
    budget: float,
    customer_id: str,
    account_id: str,
    body: AccountIn,
) -> AccountWrite:
    """Store the account; when the customer has a bank feed, Codat gets the change first."""
    await require_customer(session, customer_id)
    account = await session.get(SourceAccount, (customer_id, account_id), populate_existing=True)
    values = body.columns()
    created = account is None
    if account is None:
        account = SourceAccount(customer_id=customer_id, id=account_id)
    elif account.is_pushed:
        fixed = [
            name for column, name in FIXED_FIELDS if getattr(account, column) != values[column]
        ]
        if fixed:
            raise Conflict(
                f"Codat cannot change {', '.join(fixed)} of account {account_id!r}: it is already "
                "in the customer's bank feed. Nothing was changed. Delete the account and add "
                "it under a new id instead."
            )
    local_only = []
    if account.is_pushed and account.account_info != values["account_info"]:
        local_only.append("accountInfo")
    if (
        account.is_pushed
        and account.codat_status == "connected"
        and account.balance != body.balance
    ):
        local_only.append("balance")  # Codat takes a balance only before the account connects
    target = live_connection(await feeds.get_bank_feed(session, customer_id))
    # Nothing reaches the database until Codat has answered: no write lock across its calls.
    with session.no_autoflush:
        for column, value in values.items():
            setattr(account, column, value)
        if target is None:
            write = CodatWrite(
                action="not_sent",
                fields=[],
                local_only=[],
                note="No usable bank feed yet: Codat gets it when the customer clicks Connect.",
            )
        elif not account.is_pushed:
            write = await _create_in_codat(codat, budget, target, account)
        else:
            write = await _update_in_codat(codat, budget, target, account, local_only)
    if created:
        session.add(account)
    await session.flush()
    return AccountWrite(account, created, write)


async def _create_in_codat(
    codat: CodatClient, budget: float, target: tuple[str, str], account: SourceAccount
) -> CodatWrite:
    company_id, connection_id = target
    source_account = to_codat(account)
    sent = sorted(source_account.model_dump(by_alias=True, exclude_none=True))
    with talking_to_codat(budget, f"adding account {account.id!r} to the bank feed"):
        [item] = await writes.create_source_accounts(
            codat, company_id, connection_id, [source_account]
        )
        if item.already_exists:
            # Codat has it already (an earlier answer was lost): compare what it holds with
            # ours, then align it, so a rename made since is not lost.
            existing = item.result.account or next(
                (
                    a
                    for a in await codat.list_source_accounts(company_id, connection_id)
                    if a.id == account.id
                ),
                None,
            )
            if existing is None:
                raise CodatRefused(
                    f"Codat says account {account.id!r} already exists but does not list it; "
                    "nothing was changed."
                )
            mark_pushed(account, utcnow(), existing)
            patched = await _patch(codat, target, account)
            return CodatWrite(
                action="already_in_codat",
                fields=patched,
                local_only=[],
                note="Codat already had this account; it now carries our name and balance.",
            )
        if not item.created:
            raise CodatRefused(
                f"Codat refused account {account.id!r} with status {item.result.status_code}: "
                f"{(item.result.error or 'refused')[:300]}; nothing was changed."
            )
    mark_pushed(account, utcnow(), item.result.account)
    return CodatWrite(
        action="created",
        fields=sent,
        local_only=[],
        note="The customer must click Connect to connect the new account in QuickBooks.",
    )


async def _update_in_codat(
    codat: CodatClient,
    budget: float,
    target: tuple[str, str],
    account: SourceAccount,
    local_only: list[str],
) -> CodatWrite:
    if not (account.needs_rename or account.needs_balance):
        return CodatWrite(action="unchanged", fields=[], local_only=local_only)
    with talking_to_codat(budget, f"updating account {account.id!r} in the bank feed"):
        try:
            patched = await _patch(codat, target, account)
        except CodatNotFound:
            # Codat lost the account (deleted there): add it again.
            account.pushed_at = account.codat_status = None
            return await _create_in_codat(codat, budget, target, account)
    return CodatWrite(action="updated", fields=patched, local_only=local_only)


async def _patch(codat: CodatClient, target: tuple[str, str], account: SourceAccount) -> list[str]:
    """PATCH what Codat may change (name; balance while not connected); the fields sent."""
    update = SourceAccountUpdate(
        id=account.id,
        account_name=account.account_name if account.needs_rename else None,
        balance=account.balance if account.needs_balance else None,
    )
    fields = [
        f
        for f, v in (("accountName", update.account_name), ("balance", update.balance))
        if v is not None
    ]
    if not fields:
        return []
    seen = await writes.update_source_account(codat, *target, update)
    account.pushed_account_name = account.account_name
    if update.balance is not None:
        account.pushed_balance = account.balance
    apply_codat_account(account, seen, utcnow())
    account.sync_error = None
    return fields


async def delete_account(
    session: AsyncSession, codat: CodatClient, budget: float, customer_id: str, account_id: str
) -> str:
    """Delete in Codat (while the feed is usable), then here; what happened in Codat."""
    account = await require_account(session, customer_id, account_id)
    target = live_connection(await feeds.get_bank_feed(session, customer_id))
    outcome = "not_sent"
    if target is not None:
        outcome = "deleted"
        with talking_to_codat(budget, f"removing account {account_id!r} from the bank feed"):
            try:
                await codat.delete_source_account(*target, account_id)
            except CodatNotFound:
                outcome = "not_in_codat"
    await session.delete(account)
    await session.flush()
    return outcome


async def close_account(
    session: AsyncSession, codat: CodatClient, budget: float, customer_id: str, account_id: str
) -> SourceAccount:
    """PATCH `status: disconnected` in Codat, then mark the account closed here."""
    account = await require_account(session, customer_id, account_id)
    if account.closed_at is not None:
        return account
    target = live_connection(await feeds.get_bank_feed(session, customer_id))
    if target is None or not account.is_pushed:
        raise Conflict(
            f"Account {account_id!r} is not in a usable bank feed in Codat, so there is nothing "
            "to close; delete it instead."
        )
    update = SourceAccountUpdate(id=account.id, status="disconnected")
    with talking_to_codat(budget, f"closing account {account_id!r} in the bank feed"):
        seen = await writes.update_source_account(codat, *target, update)
    now = utcnow()
    apply_codat_account(account, seen, now)
    account.closed_at = now
    await session.flush()
    return account

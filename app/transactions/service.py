"""The transaction feed for the ops API: storing what the bank sends, listing transactions and
pushes, and what operations do about a failed push or a held or rejected transaction. Each
method is one unit of work, committed before it returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import Conflict, CustomerNotFound, DomainError, NotFound, Unprocessable
from app.models import BankTransaction, Customer, SourceAccount, TransactionPush
from app.transactions import listing, tracking
from app.transactions import repository as repo
from app.transactions.rules import HELD, PENDING, REJECTED, Window, oldest_allowed, today_for
from app.transactions.schemas import (
    IngestOut,
    PushOut,
    PushPage,
    RequeueOut,
    TransactionIn,
    TransactionOut,
    TransactionPage,
)

MAX_IDS_NAMED = 20
AccountKey = tuple[str, str]  # (customer_id, account_id)


class ConflictingIds(Conflict):
    """Ids already received with other content; nothing of the request was stored."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(
            f"Transactions already received with different content (nothing was stored): "
            f"{_named(ids)}."
        )
        self.ids = list(ids)


@dataclass(frozen=True)
class FeedRules:
    """The settings the rules read."""

    timezone: str = "UTC"
    history_days: int = 7
    push_delay: timedelta = timedelta(seconds=60)

    def today(self, now: datetime) -> date:
        return today_for(now, self.timezone)


def same_content(row: BankTransaction, account_id: str, item: TransactionIn) -> bool:
    return (
        row.account_id == account_id
        and row.cleared_on == item.date
        and row.description == item.description
        and row.amount == item.amount
        and row.balance == item.balance
        and row.transaction_type == item.transactionType
        and row.counterparty == item.counterparty
        and row.reference == item.reference
    )


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_NAMED])
    more = len(ids) - MAX_IDS_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class TransactionService:
    sessions: async_sessionmaker[AsyncSession]
    rules: FeedRules
    wake: Callable[[], None] = lambda: None  # tells the push job there is work
    clock: Callable[[], datetime] = utcnow

    # --- the bank sends -------------------------------------------------------------------

    def today(self) -> date:
        return self.rules.today(self.clock())

    async def ingest(
        self, customer_id: str, account_id: str, items: Sequence[TransactionIn]
    ) -> IngestOut:
        """Store what is new; the same id with the same content again is a duplicate, with
        other content a 409 naming the ids. All or nothing."""
        for attempt in range(2):
            try:
                result = await self._ingest(customer_id, account_id, items)
            except IntegrityError:
                if attempt:  # the same ids arrived twice at once, again: let the caller retry
                    raise Conflict(
                        "Another request is storing these transactions; send them again."
                    ) from None
                continue
            self.wake()
            return result
        raise AssertionError("unreachable")

    async def _ingest(
        self, customer_id: str, account_id: str, items: Sequence[TransactionIn]
    ) -> IngestOut:
        now = self.clock()
        async with self.sessions() as session:
            await _require_account(session, customer_id, account_id)
            sorted_items = _Sorted.of(items)
            stored = await repo.existing_by_id(session, customer_id, list(sorted_items.unique))
            sorted_items.against(stored, account_id)
            if sorted_items.conflicts:
                raise ConflictingIds(sorted_items.conflicts)
            await repo.insert_transactions(
                session, _rows(customer_id, account_id, sorted_items.new, now)
            )
            if sorted_items.new:
                await repo.push_soon(session, customer_id, account_id, now + self.rules.push_delay)
            await session.commit()
        return sorted_items.out(customer_id, account_id, len(items))

    async def ingest_many(
        self, batches: Mapping[AccountKey, Sequence[TransactionIn]]
    ) -> dict[AccountKey, IngestOut | DomainError]:
        """Many accounts' transactions in one unit of work, for a bulk load: each account's
        all or nothing as in `ingest` (its error in place of its result), the others stored."""
        now = self.clock()
        answers: dict[AccountKey, IngestOut | DomainError] = {}
        async with self.sessions() as session:
            refused = await _account_problems(session, list(batches))
            stored_by_customer: dict[str, dict[str, BankTransaction]] = {}
            by_customer: dict[str, list[str]] = {}
            sorted_by_key: dict[AccountKey, _Sorted] = {}
            for key, items in batches.items():
                if key in refused:
                    answers[key] = refused[key]
                    continue
                sorted_by_key[key] = _Sorted.of(items)
                by_customer.setdefault(key[0], []).extend(sorted_by_key[key].unique)
            for customer_id, ids in by_customer.items():
                stored_by_customer[customer_id] = await repo.existing_by_id(
                    session, customer_id, ids
                )
            rows: list[dict[str, object]] = []
            due: list[AccountKey] = []
            for key, sorted_items in sorted_by_key.items():
                sorted_items.against(stored_by_customer[key[0]], key[1])
                if sorted_items.conflicts:
                    answers[key] = ConflictingIds(sorted_items.conflicts)
                    continue
                rows.extend(_rows(key[0], key[1], sorted_items.new, now))
                if sorted_items.new:
                    due.append(key)
                answers[key] = sorted_items.out(key[0], key[1], len(batches[key]))
            await repo.insert_transactions(session, rows)
            await repo.push_soon_many(session, due, now + self.rules.push_delay)
            await session.commit()
        if any(isinstance(a, IngestOut) and a.stored for a in answers.values()):
            self.wake()
        return answers

    # --- operations read ------------------------------------------------------------------

    async def transactions(
        self,
        customer_id: str,
        account_id: str,
        *,
        status: str | None,
        limit: int,
        after: int | None,
    ) -> TransactionPage:
        async with self.sessions() as session:
            await _require_account(session, customer_id, account_id, writing=False)
            return await listing.list_transactions(
                session, customer_id, account_id, status=status, limit=limit, after=after
            )

    async def pushes(
        self, filters: listing.PushFilters, *, limit: int, after: int | None
    ) -> PushPage:
        async with self.sessions() as session:
            return await listing.list_pushes(session, filters, limit=limit, after=after)

    # --- operations act -------------------------------------------------------------------

    async def retry(
        self, push_id: int, *, not_landed: bool = False, customer_id: str | None = None
    ) -> PushOut:
        """Send a failed push's transactions again (a TimedOut one only when operations have
        checked QuickBooks and say it did not land): they go back to pending. With
        `customer_id`, only a push of that customer."""
        now = self.clock()
        async with self.sessions() as session:
            push = await session.get(TransactionPush, push_id, with_for_update=True)
            if push is None or customer_id not in (None, push.customer_id):
                raise NotFound(f"No push {push_id}.")
            if push.retried_at is not None:
                raise Conflict(f"Push {push_id} was already retried at {push.retried_at}.")
            if push.status == "timed_out" and not not_landed:
                raise Conflict(
                    f"Push {push_id} timed out at Codat and may still land in QuickBooks: "
                    "check the account's For review list first, then retry with "
                    '{"not_landed": true}.'
                )
            if push.status not in ("failed", "timed_out"):
                raise Conflict(f"Push {push_id} is {push.status}: only a failed one is retried.")
            rows = await repo.transactions_of(session, push.id, ("rejected", "pushing"))
            for row in rows:
                _to_pending(row, now)
            push.retried_at = now
            push.next_attempt_at = None  # a TimedOut push is not read again: it is done with
            feed = await repo.get_feed(session, push.customer_id, push.account_id, lock=True)
            if feed is not None:  # operations say the cause is fixed
                feed.write_blocked_at = feed.write_blocked_reason = None
            await repo.push_soon(session, push.customer_id, push.account_id, now)
            await session.commit()
            out = listing.push_out(push)
        self.wake()
        return out

    async def confirm_landed(self, push_id: int) -> PushOut:
        """Operations found a TimedOut push's transactions in QuickBooks: it is settled as a
        success (they are pushed; the account's last date and balance move)."""
        now = self.clock()
        async with self.sessions() as session:
            push = await session.get(TransactionPush, push_id, with_for_update=True)
            if push is None:
                raise NotFound(f"No push {push_id}.")
            if push.status != "timed_out" or push.retried_at is not None:
                raise Conflict(f"Push {push_id} is {push.status}: only a TimedOut one can land.")
            await tracking.settle_success(session, push, now, now)
            await session.commit()
            out = listing.push_out(push)
        self.wake()
        return out

    async def requeue(
        self, customer_id: str, account_id: str, ids: Sequence[str] | None
    ) -> RequeueOut:
        """Held or rejected transactions (`ids`, or every one of the account) go back to
        pending after a fix (the rules are applied again: one still too old is held again,
        with its reason)."""
        now = self.clock()
        async with self.sessions() as session:
            await _require_account(session, customer_id, account_id)
            if ids is None:
                ids = await _held_or_rejected(session, customer_id, account_id)
                if not ids:
                    raise Conflict(f"Account {account_id!r} has no held or rejected transactions.")
            wanted = list(dict.fromkeys(ids))
            found = await repo.existing_by_id(session, customer_id, wanted)
            wrong = [
                i
                for i in wanted
                if i not in found
                or found[i].account_id != account_id
                or found[i].status not in (HELD, REJECTED)
            ]
            if wrong:
                raise Conflict(
                    f"Not held or rejected transactions of account {account_id!r} (nothing "
                    f"was requeued): {_named(wrong)}."
                )
            for item_id in wanted:
                _to_pending(found[item_id], now)
            await repo.push_soon(session, customer_id, account_id, now)
            await session.commit()
        self.wake()
        return RequeueOut(requeued=wanted)

    async def release(
        self, customer_id: str, account_id: str, transaction_id: str, sent_on: date, reason: str
    ) -> TransactionOut:
        """Send a held transaction with a later date, as operations chose, the reason kept."""
        now = self.clock()
        async with self.sessions() as session:
            account = await _require_account(session, customer_id, account_id)
            found = await repo.existing_by_id(session, customer_id, [transaction_id])
            row = found.get(transaction_id)
            if row is None or row.account_id != account_id:
                raise NotFound(f"No transaction {transaction_id!r} in account {account_id!r}.")
            if row.status != HELD:
                raise Conflict(f"Transaction {transaction_id!r} is {row.status}, not held.")
            feed = await repo.get_feed(session, customer_id, account_id)
            today = self.rules.today(now)
            window = Window(
                today=today,
                oldest=oldest_allowed(today, self.rules.history_days),
                feed_start=account.feed_start_date,
                last_pushed=feed.last_pushed_date if feed else None,
            )
            problem = (
                "must be later than the transaction's own date"
                if sent_on <= row.cleared_on
                else window.release_problem(sent_on)
            )
            if problem:
                raise Unprocessable(
                    [{"loc": ["body", "date"], "msg": problem, "type": "value_error",
                      "field": "date"}]
                )  # fmt: skip
            _to_pending(row, now)
            row.sent_date = sent_on
            row.release_reason = reason
            await repo.push_soon(session, customer_id, account_id, now)
            await session.commit()
            out = listing.transaction_out(row)
        self.wake()
        return out


@dataclass
class _Sorted:
    """One account's items sorted out: new, duplicates (of the request or of what is stored),
    and ids that come with other content."""

    unique: dict[str, TransactionIn]
    conflicts: list[str]
    duplicates: int
    new: list[TransactionIn]

    @classmethod
    def of(cls, items: Sequence[TransactionIn]) -> _Sorted:
        unique: dict[str, TransactionIn] = {}
        conflicts: list[str] = []
        duplicates = 0
        for item in items:
            seen = unique.get(item.id)
            if seen is None:
                unique[item.id] = item
            elif seen == item:
                duplicates += 1
            elif item.id not in conflicts:
                conflicts.append(item.id)
        return cls(unique, conflicts, duplicates, [])

    def against(self, stored: Mapping[str, BankTransaction], account_id: str) -> None:
        for item_id, item in self.unique.items():
            row = stored.get(item_id)
            if row is None:
                self.new.append(item)
            elif same_content(row, account_id, item):
                self.duplicates += 1
            elif item_id not in self.conflicts:
                self.conflicts.append(item_id)

    def out(self, customer_id: str, account_id: str, received: int) -> IngestOut:
        return IngestOut(
            customer_id=customer_id,
            account_id=account_id,
            received=received,
            stored=len(self.new),
            duplicates=self.duplicates,
        )


def _rows(
    customer_id: str, account_id: str, items: Sequence[TransactionIn], now: datetime
) -> list[dict[str, object]]:
    return [
        {
            "customer_id": customer_id,
            "account_id": account_id,
            "id": item.id,
            "date": item.date,  # the column behind `BankTransaction.cleared_on`
            "description": item.description,
            "amount": item.amount,
            "balance": item.balance,
            "transaction_type": item.transactionType,
            "counterparty": item.counterparty,
            "reference": item.reference,
            "status": PENDING,
            "received_at": now,
            "updated_at": now,
        }
        for item in items
    ]


async def _account_problems(
    session: AsyncSession, keys: Sequence[AccountKey]
) -> dict[AccountKey, DomainError]:
    """Why each account that cannot take transactions cannot, as `_require_account` says."""
    customers = sorted({c for c, _ in keys})
    found_customers: set[str] = set()
    accounts: dict[AccountKey, datetime | None] = {}
    for start in range(0, len(customers), repo.IN_CLAUSE):
        chunk = customers[start : start + repo.IN_CLAUSE]
        found_customers.update(
            (await session.execute(select(Customer.id).where(Customer.id.in_(chunk)))).scalars()
        )
        rows = await session.execute(
            select(SourceAccount.customer_id, SourceAccount.id, SourceAccount.closed_at).where(
                SourceAccount.customer_id.in_(chunk)
            )
        )
        accounts.update(((c, a), closed) for c, a, closed in rows.all())
    problems: dict[AccountKey, DomainError] = {}
    for customer_id, account_id in keys:
        key = (customer_id, account_id)
        if customer_id not in found_customers:
            problems[key] = CustomerNotFound(customer_id)
        elif key not in accounts:
            problems[key] = NotFound(f"Customer {customer_id!r} has no account {account_id!r}.")
        elif accounts[key] is not None:
            problems[key] = Conflict(
                f"Account {account_id!r} is closed: it takes no more transactions."
            )
    return problems


def _to_pending(row: BankTransaction, now: datetime) -> None:
    row.status = PENDING
    row.reason = None
    row.push_id = None
    row.updated_at = now


async def _require_account(
    session: AsyncSession, customer_id: str, account_id: str, *, writing: bool = True
) -> SourceAccount:
    if await session.get(Customer, customer_id) is None:
        raise CustomerNotFound(customer_id)
    account = await session.scalar(
        select(SourceAccount).where(
            SourceAccount.customer_id == customer_id, SourceAccount.id == account_id
        )
    )
    if account is None:
        raise NotFound(f"Customer {customer_id!r} has no account {account_id!r}.")
    if writing and account.closed_at is not None:
        raise Conflict(f"Account {account_id!r} is closed: it takes no more transactions.")
    return account


async def _held_or_rejected(session: AsyncSession, customer_id: str, account_id: str) -> list[str]:
    query = select(BankTransaction.id).where(
        BankTransaction.customer_id == customer_id,
        BankTransaction.account_id == account_id,
        BankTransaction.status.in_((HELD, REJECTED)),
    )
    return list((await session.execute(query.order_by(BankTransaction.seq))).scalars())

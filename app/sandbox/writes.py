"""Create-bank-transactions writes: Pending when asked, settled after `push_delay`.

Settling checks the QuickBooks Online rules against the account as it is then, in the order
the writes were asked for, and either writes every transaction (Success) or none (Failed);
an injected TimedOut write still lands, as Codat's may (or, when asked, never does). Each
settled write is announced with `bankTransactions.write.successful` or `.unsuccessful`.
Synchronous like the store: each step is atomic on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from app.sandbox.bank_transactions import (
    INVALID_TRANSACTIONS,
    account_refusal,
    qbo_errors,
)
from app.sandbox.errors import FieldError, not_found
from app.sandbox.state import (
    BankTransaction,
    Company,
    LedgerEntry,
    PushOperation,
    PushStatus,
    SourceAccount,
    WrittenTransaction,
    new_id,
)
from app.sandbox.store import EventSink, SandboxStore
from app.sandbox.wire import company_reference_json, write_webhook_payload

WRITE_SUCCESSFUL = "bankTransactions.write.successful"
WRITE_UNSUCCESSFUL = "bankTransactions.write.unsuccessful"
TIMED_OUT_MESSAGE = "The write did not complete within its timeout; it may still be written."
# What a push operation's statusCode says in each outcome.
STATUS_CODES = {
    PushStatus.PENDING: 202,
    PushStatus.SUCCESS: 200,
    PushStatus.FAILED: 400,
    PushStatus.TIMED_OUT: 504,
}


class BankTransactionWrites:
    def __init__(
        self,
        store: SandboxStore,
        delay: timedelta,
        emit: EventSink,
        on_scheduled: Callable[[datetime], None] | None = None,
    ) -> None:
        self.store = store
        self.delay = delay
        self._emit = emit
        self._on_scheduled = on_scheduled
        self._pending: dict[str, PushOperation] = {}  # by key, in the order requested

    def create(
        self,
        company_id: str,
        connection_id: str,
        account_id: str,
        transactions: tuple[BankTransaction, ...],
        timeout_minutes: int | None,
        times_out: bool = False,
        lands: bool = True,
    ) -> PushOperation:
        connection = self.store.connection(company_id, connection_id)
        account = connection.source_accounts.get(account_id)
        if account is None:
            raise not_found("Bank account", account_id)
        now = self.store.clock.now()
        open_writes = 1 + sum(
            p.account_id == account_id and p.connection_id == connection_id
            for p in self._pending.values()
        )
        account.most_open_writes = max(account.most_open_writes, open_writes)
        pushes = self.store.company(company_id).pushes
        push = PushOperation(
            key=new_id(),
            company_id=company_id,
            connection_id=connection_id,
            account_id=account_id,
            transactions=transactions,
            requested=now,
            due=now + self.delay,
            timeout_minutes=timeout_minutes,
            number=len(pushes),
            times_out=times_out,
            lands=lands,
        )
        pushes[push.key] = push
        self._pending[push.key] = push
        if self._on_scheduled is not None:
            self._on_scheduled(push.due)
        return push

    def push(self, company_id: str, key: str) -> PushOperation:
        push = self.store.company(company_id).pushes.get(key)
        if push is None:
            raise not_found("Push operation", key)
        return push

    def settle(self, everything: bool = False) -> datetime | None:
        """Settle the writes that are due (or all, for a test); return the next one still due."""
        now = self.store.clock.now()
        next_due: datetime | None = None
        for push in list(self._pending.values()):
            times_out_at = _times_out_at(push)
            if push.company_id not in self.store.companies:  # deleted, with its history
                del self._pending[push.key]
                continue
            if everything or push.due <= now:
                del self._pending[push.key]
                self._settle(push, now)
                continue
            if times_out_at is not None and times_out_at <= now:
                # Codat stops waiting; the write goes on, and may still land at `due`.
                self._finish(push, now, PushStatus.TIMED_OUT, TIMED_OUT_MESSAGE, ())
                times_out_at = None
            for moment in (push.due, times_out_at):
                if moment is not None and (next_due is None or moment < next_due):
                    next_due = moment
        return next_due

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _settle(self, push: PushOperation, now: datetime) -> None:
        if push.status is PushStatus.TIMED_OUT:  # already announced: it lands or not, quietly
            self._land_late(push, now)
            return
        company = self.store.companies[push.company_id]
        connection = company.connections.get(push.connection_id)
        account = connection.source_accounts.get(push.account_id) if connection else None
        if connection is None:
            self._finish(push, now, PushStatus.FAILED, "The data connection was not found.", ())
            return
        refusal = account_refusal(connection, account, push.account_id)
        if account is not None:
            _count(account, push)
        if refusal is not None or account is None:
            assert refusal is not None  # a missing account is refused too
            self._finish(push, now, PushStatus.FAILED, refusal.message, (refusal,))
            return
        invalid = qbo_errors(company, account, push.transactions, self.store.clock.today())
        if invalid:
            self._finish(push, now, PushStatus.FAILED, INVALID_TRANSACTIONS, tuple(invalid))
            return
        if push.times_out and not push.lands:  # Codat gave up waiting, and nothing was written
            self._finish(push, now, PushStatus.TIMED_OUT, TIMED_OUT_MESSAGE, ())
            return
        self._write(account, push, now)
        if push.times_out:
            self._finish(push, now, PushStatus.TIMED_OUT, TIMED_OUT_MESSAGE, ())
        else:
            self._finish(push, now, PushStatus.SUCCESS, None, ())

    def _land_late(self, push: PushOperation, now: datetime) -> None:
        """A write that timed out finishes its work: written if it keeps QBO's rules."""
        company = self.store.companies[push.company_id]
        connection = company.connections.get(push.connection_id)
        account = connection.source_accounts.get(push.account_id) if connection else None
        if connection is None or account is None:
            return
        _count(account, push)
        if account_refusal(connection, account, push.account_id) is not None:
            return
        if not qbo_errors(company, account, push.transactions, self.store.clock.today()):
            self._write(account, push, now)

    def _write(self, account: SourceAccount, push: PushOperation, now: datetime) -> None:
        for transaction in push.transactions:
            assert transaction.id is not None  # qbo_errors requires it
            account.ledger[transaction.id].written_by = push.key
            account.written.append(WrittenTransaction(transaction, push.key, now))
        last = push.transactions[-1]
        if last.balance is not None:
            account.balance = last.balance  # the last transaction's balance is the account's
        account.modified_date = now

    def _finish(
        self,
        push: PushOperation,
        now: datetime,
        status: PushStatus,
        message: str | None,
        errors: tuple[FieldError, ...],
    ) -> None:
        push.status, push.status_code, push.completed = status, STATUS_CODES[status], now
        push.error_message, push.errors = message, errors
        company: Company = self.store.companies[push.company_id]
        reference = company_reference_json(company, self.store.base_url)
        event = WRITE_SUCCESSFUL if status is PushStatus.SUCCESS else WRITE_UNSUCCESSFUL
        self._emit(event, push.connection_id, write_webhook_payload(push, reference))


def _times_out_at(push: PushOperation) -> datetime | None:
    """When Codat gives up waiting on a Pending write asked with `timeoutInMinutes`."""
    if push.timeout_minutes is None or push.status is not PushStatus.PENDING:
        return None
    return push.requested + timedelta(minutes=push.timeout_minutes)


def _count(account: SourceAccount, push: PushOperation) -> None:
    """Every id the account is sent is counted, written or not, so repeats and gaps show."""
    for transaction in push.transactions:
        if transaction.id is None:
            continue
        entry = account.ledger.get(transaction.id)
        if entry is None:
            entry = account.ledger[transaction.id] = LedgerEntry(transaction)
        entry.received += 1

"""What the sandbox remembers: companies, connections, source accounts, credentials, the clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from app.sandbox.errors import FieldError


class SandboxClock:
    """Wall-clock UTC plus an offset that tests move forward to expire one-time passwords."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def today(self) -> date:
        return self.now().date()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self._offset += delta
        return self.now()


class ConnectionStatus(StrEnum):
    PENDING_AUTH = "PendingAuth"
    LINKED = "Linked"
    UNLINKED = "Unlinked"
    DEAUTHORIZED = "Deauthorized"


class SourceAccountStatus(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Integration:
    key: str
    name: str
    integration_id: str
    source_id: str
    source_type: str


QBO_BANK_FEEDS = Integration(
    key="hcws",
    name="QuickBooks Online Bank Feeds",
    integration_id="8f4ae7a2-7f8d-4e39-9a0f-5c0d6f4b2c11",
    source_id="c1f35e0b-0a5e-4c64-8b7e-2d3b9a1d7f42",
    source_type="BankFeed",
)
INTEGRATIONS = {QBO_BANK_FEEDS.key: QBO_BANK_FEEDS}


@dataclass
class SourceAccount:
    id: str
    account_name: str
    account_type: str
    account_number: str
    currency: str
    balance: Decimal
    modified_date: datetime
    sort_code: str | None = None
    routing_info: dict[str, object] | None = None
    account_info: dict[str, object] | None = None
    status: SourceAccountStatus = SourceAccountStatus.PENDING
    feed_start_date: date | None = None
    # Set when the SMB disconnects in QuickBooks; Codat reports it only after a delay.
    disconnect_due: datetime | None = None
    # Every transaction id ever sent to this account, with what became of it.
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    # What Codat holds for QuickBooks, in the order written.
    written: list[WrittenTransaction] = field(default_factory=list)
    # The most writes to this account Codat has held Pending at once (a test's view).
    most_open_writes: int = 0
    # The last time QuickBooks pulled from Codat (its daily pull, or the SMB's Update).
    qbo_pulled_at: datetime | None = None


class PushStatus(StrEnum):
    PENDING = "Pending"
    FAILED = "Failed"
    SUCCESS = "Success"
    TIMED_OUT = "TimedOut"


@dataclass(frozen=True)
class BankTransaction:
    """One item of a create-bank-transactions body; None where the item left a field out."""

    id: str | None
    date: datetime | None  # a local date-time: any offset sent is ignored, as Codat does
    description: str | None
    amount: Decimal | None
    balance: Decimal | None
    transaction_type: str | None
    counterparty: str | None = None
    reference: str | None = None
    reconciled: bool | None = None


@dataclass
class LedgerEntry:
    """A transaction id as the sandbox saw it: how often it came, and the push that wrote it."""

    transaction: BankTransaction
    received: int = 0
    written_by: str | None = None


@dataclass(frozen=True)
class WrittenTransaction:
    transaction: BankTransaction
    push_key: str
    written_at: datetime


@dataclass
class PushOperation:
    """A create-bank-transactions write: Pending until `due`, then settled once."""

    key: str
    company_id: str
    connection_id: str
    account_id: str
    transactions: tuple[BankTransaction, ...]
    requested: datetime
    due: datetime
    timeout_minutes: int | None
    number: int  # its place in the company's push history
    times_out: bool = False  # an injected TimedOut: the status says TimedOut...
    lands: bool = True  # ...and the write lands, unless this says it never will
    status: PushStatus = PushStatus.PENDING
    status_code: int = 202
    completed: datetime | None = None
    error_message: str | None = None
    errors: tuple[FieldError, ...] = ()


@dataclass
class Credential:
    username: str
    password: str
    issued_at: datetime
    signed_in_at: datetime | None = None


@dataclass
class Connection:
    id: str
    company_id: str
    integration: Integration
    created: datetime
    status: ConnectionStatus = ConnectionStatus.PENDING_AUTH
    source_accounts: dict[str, SourceAccount] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)


@dataclass
class Company:
    id: str
    name: str
    description: str
    tags: dict[str, str]
    created: datetime
    connections: dict[str, Connection] = field(default_factory=dict)
    pushes: dict[str, PushOperation] = field(default_factory=dict)  # in the order requested


@dataclass(frozen=True)
class LinkPass:
    """A one-time password in a connection's linkUrl."""

    otp: str
    company_id: str
    connection_id: str
    issued_at: datetime


@dataclass(frozen=True)
class QboSession:
    """A QuickBooks simulator sign-in, bound to the connection whose credentials were used."""

    token: str
    company_id: str
    connection_id: str
    signed_in_at: datetime


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    route: str | None
    status: int  # 0: the client got no answer (an injected timeout, drop or lost response)
    at: datetime
    fault: str | None = None  # what the fault edge injected: "429", "timeout", "quota", ...
    idempotency: str | None = None  # "replayed", "in_progress" (409) or "mismatch" (422)


def new_id() -> str:
    return str(uuid.uuid4())

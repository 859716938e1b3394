"""The tables: customers, their source accounts, bank feeds, Codat's event inbox, the events we
send the host app (endpoints, outbox, deliveries), the operations console's audit log, and the
bank transactions with their pushes to Codat."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, JSONType, Money, UTCDateTime, utcnow

# Our ids of customers and accounts: what the host app may use, within the 64-character columns.
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
MAX_ROW_ID = 2**31 - 1  # our integer keys are 32-bit on Postgres
# An account the customer has still to connect: not closed, and not pushed or pending in Codat.
WAITING_ACCOUNTS = "closed_at IS NULL AND (pushed_at IS NULL OR codat_status = 'pending')"


class Customer(Base):
    """A business customer of the host app, keyed by the host app's own id."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    locale: Mapped[str] = mapped_column(String(2), default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    source_accounts: Mapped[list[SourceAccount]] = relationship(
        back_populates="customer",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SourceAccount.id",
    )
    bank_feed: Mapped[BankFeed | None] = relationship(
        back_populates="customer",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        CheckConstraint("locale in ('en', 'fr')", name="locale"),
        CheckConstraint("length(country) = 2", name="country"),
    )


class SourceAccount(Base):
    """A bank account of ours, in Codat's v2 source-account shape, with its sync state."""

    __tablename__ = "source_accounts"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_name: Mapped[str] = mapped_column(String(200))
    account_type: Mapped[str] = mapped_column(String(16))
    account_number: Mapped[str] = mapped_column(String(64))
    sort_code: Mapped[str | None] = mapped_column(String(32))
    routing_info: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[Decimal] = mapped_column(Money())
    account_info: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # What Codat holds, as last written or read; None until Codat has the account.
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pushed_account_name: Mapped[str | None] = mapped_column(String(200))
    pushed_balance: Mapped[Decimal | None] = mapped_column(Money())
    codat_status: Mapped[str | None] = mapped_column(String(16))
    feed_start_date: Mapped[date | None] = mapped_column(Date())
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heard_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_error: Mapped[str | None] = mapped_column(Text)
    # Closed by us (`:close`): Codat's status set to disconnected, for good.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship(back_populates="source_accounts", lazy="raise")

    __table_args__ = (
        CheckConstraint(
            "account_type in ('checking', 'savings', 'loan', 'creditCard', 'prepaidCard')",
            name="account_type",
        ),
        # The fleet's counts by account status read this index, not the wide rows.
        Index("ix_source_accounts_status", "codat_status", "closed_at", "pushed_at"),
        # Accounts still waiting on the customer (`statuses.account_waiting_sql`): the
        # needs-action rule asks only these.
        Index(
            "ix_source_accounts_waiting",
            "customer_id",
            sqlite_where=text(WAITING_ACCOUNTS),
            postgresql_where=text(WAITING_ACCOUNTS),
        ),
    )

    @property
    def is_pushed(self) -> bool:
        return self.pushed_at is not None


class BankFeed(Base):
    """A customer's bank feed in Codat: one company, its current `hcws` connection."""

    __tablename__ = "bank_feeds"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    company_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    connection_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    connection_status: Mapped[str | None] = mapped_column(String(16))
    connection_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    company_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connection_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The Idempotency-Key of the create in flight: a later click sends the same one, so a
    # create Codat is still working on (or finished, the answer lost) is never made twice.
    company_request_key: Mapped[str | None] = mapped_column(String(64))
    connection_request_key: Mapped[str | None] = mapped_column(String(64))
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_reconcile_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_webhook_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="bank_feed", lazy="raise")
    connections: Mapped[list[BankFeedConnection]] = relationship(
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="BankFeedConnection.created_at",
    )

    __table_args__ = (
        Index("ix_bank_feeds_next_reconcile_at", "next_reconcile_at"),
        Index("ix_bank_feeds_updated_at", "updated_at"),
    )


class BankFeedConnection(Base):
    """Every `hcws` connection a customer has had: the current one and the history."""

    __tablename__ = "bank_feed_connections"

    connection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("bank_feeds.customer_id", ondelete="CASCADE"), index=True
    )
    company_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CodatEvent(Base):
    """The webhook inbox: every accepted delivery, once, with how handling went."""

    __tablename__ = "codat_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(100))
    generated_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    company_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("webhook_id"),
        Index("ix_codat_events_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_codat_events_received_at", "received_at"),  # the last one received
        CheckConstraint(
            "status in ('pending', 'handled', 'ignored', 'unmatched', 'failed')", name="status"
        ),
    )


class CodatQuotaDay(Base):
    """Codat's daily quota as all replicas see it: background requests spent, last headers."""

    __tablename__ = "codat_quota_days"

    day: Mapped[date] = mapped_column(Date(), primary_key=True)  # UTC, as Codat resets
    background_used: Mapped[int] = mapped_column(Integer, default=0)
    daily_limit: Mapped[int | None] = mapped_column(Integer)  # X-Rate-Limit-Limit
    remaining: Mapped[int | None] = mapped_column(Integer)  # X-Rate-Limit-Remaining
    remaining_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsedConnectToken(Base):
    """A connect token's `jti`: held by the click working on it (`spent_at` empty), then spent
    with its redirect; kept until the token would have expired anyway, then pruned."""

    __tablename__ = "used_connect_tokens"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # held since
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ServiceState(Base):
    """Small shared facts all processes see, such as a Codat rate-limit pause."""

    __tablename__ = "service_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class EventEndpoint(Base):
    """A host app's URL for our events, the types it wants, and its signing secrets."""

    __tablename__ = "event_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret still signs, until `previous_secret_expires_at`.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OutboundEvent(Base):
    """The outbox: an event for the host app, stored in the transaction of the change."""

    __tablename__ = "outbound_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)  # the exact JSON sent, so every attempt is alike
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventDelivery(Base):
    """One event to one endpoint: attempts, with backoff, until delivered or out of time."""

    __tablename__ = "event_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbound_events.id", ondelete="CASCADE"))
    endpoint_name: Mapped[str] = mapped_column(
        ForeignKey("event_endpoints.name", ondelete="CASCADE")
    )
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deliver_until: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_name"),
        Index("ix_event_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_event_deliveries_queue", "endpoint_name", "customer_id", "status"),
        CheckConstraint("status in ('pending', 'delivered', 'failed')", name="status"),
    )


class CustomerEventState(Base):
    """What the host app was last told of a customer; its row lock orders their events."""

    __tablename__ = "customer_event_states"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str | None] = mapped_column(String(64))
    connection_status: Mapped[str | None] = mapped_column(String(16))
    accounts: Mapped[dict[str, str]] = mapped_column(JSONType)  # account id -> status
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ConsoleAuditEntry(Base):
    """What was done in the operations console: by which session, when, and how it ended."""

    __tablename__ = "console_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    session_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    remote: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_console_audit_log_action_remote_at", "action", "remote", "at"),
        CheckConstraint("outcome in ('ok', 'failed', 'refused')", name="outcome"),
    )


class TransactionFeed(Base):
    """An account's transaction feed: what QuickBooks last got, when to push next, its lease."""

    __tablename__ = "transaction_feeds"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_pushed_date: Mapped[date | None] = mapped_column(Date())
    last_pushed_balance: Mapped[Decimal | None] = mapped_column(Money())
    last_pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # A write refused because the customer disconnected the account in QuickBooks (Codat says
    # so only 10 days later): no more pushes until it connects again or operations retry.
    write_blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    write_blocked_reason: Mapped[str | None] = mapped_column(Text)
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["customer_id", "account_id"],
            ["source_accounts.customer_id", "source_accounts.id"],
            ondelete="CASCADE",
        ),
    )


class TransactionPush(Base):
    """One create-bank-transactions call: recorded with its Idempotency-Key and exact body
    before Codat is called, then Codat's `pushOperationKey` and status."""

    __tablename__ = "transaction_pushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str] = mapped_column(String(64), index=True)
    connection_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    push_operation_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)  # the exact JSON sent, so a resend is identical
    status: Mapped[str] = mapped_column(String(16))
    transaction_count: Mapped[int] = mapped_column(Integer)
    last_date: Mapped[date] = mapped_column(Date())
    last_balance: Mapped[Decimal] = mapped_column(Money())
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # by operations

    __table_args__ = (
        ForeignKeyConstraint(
            ["customer_id", "account_id"],
            ["source_accounts.customer_id", "source_accounts.id"],
            ondelete="CASCADE",
        ),
        Index("ix_transaction_pushes_status_next_attempt_at", "status", "next_attempt_at"),
        # The transactions pushed per day, for the console's chart.
        Index(
            "ix_transaction_pushes_succeeded",
            "completed_at",
            sqlite_where=text("status = 'success'"),
            postgresql_where=text("status = 'success'"),
            postgresql_include=["transaction_count"],
        ),
        CheckConstraint(
            "status in ('sending', 'unconfirmed', 'pending', 'success', 'failed', 'timed_out')",
            name="status",
        ),
    )


class BankTransaction(Base):
    """A cleared transaction from the bank's ledger, kept exactly as received, and where it is
    on its way to QuickBooks."""

    __tablename__ = "bank_transactions"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(64))
    id: Mapped[str] = mapped_column(String(100))  # the bank's own id
    cleared_on: Mapped[date] = mapped_column("date", Date())  # Codat's `date`: a local date
    description: Mapped[str] = mapped_column(String(1000))
    amount: Mapped[Decimal] = mapped_column(Money())
    balance: Mapped[Decimal] = mapped_column(Money())
    transaction_type: Mapped[str] = mapped_column(String(16))
    counterparty: Mapped[str | None] = mapped_column(String(1000))
    reference: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)  # why held or rejected
    push_id: Mapped[int | None] = mapped_column(
        ForeignKey("transaction_pushes.id", ondelete="SET NULL"), index=True
    )
    # Released by operations: sent with this later date instead, for the recorded reason.
    sent_date: Mapped[date | None] = mapped_column(Date())
    release_reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("customer_id", "id"),
        ForeignKeyConstraint(
            ["customer_id", "account_id"],
            ["source_accounts.customer_id", "source_accounts.id"],
            ondelete="CASCADE",
        ),
        Index("ix_bank_transactions_account_status", "customer_id", "account_id", "status"),
        Index(
            "ix_bank_transactions_held",
            "customer_id",
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
        CheckConstraint(
            "status in ('pending', 'pushing', 'pushed', 'held', 'rejected')", name="status"
        ),
    )

    @property
    def push_date(self) -> date:
        """The date QuickBooks gets: the cleared date, or the later one operations chose."""
        return self.sent_date or self.cleared_on

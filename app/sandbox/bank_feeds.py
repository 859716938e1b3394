"""Source accounts, QuickBooks credentials, and what the SMB does in QuickBooks.

Synchronous like the store, for the same reason: each change is atomic on the event loop.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.sandbox.errors import CodatError, not_found
from app.sandbox.state import (
    Connection,
    ConnectionStatus,
    Credential,
    QboSession,
    SourceAccount,
    SourceAccountStatus,
)
from app.sandbox.store import SandboxStore
from app.sandbox.validation import SourceAccountDraft, SourceAccountUpdate

DUPLICATE_ACCOUNT = "A bank account already exists with the same Id"
QBO_SESSION_LIFETIME = timedelta(hours=1)
FEED_HISTORY = timedelta(days=7)
_USERNAME_ALPHABET = string.ascii_uppercase + string.digits
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class FeedStart:
    """The feed start date QuickBooks kept, and whether it moved the SMB's choice."""

    day: date
    clamped: bool


class BankFeeds:
    def __init__(
        self,
        store: SandboxStore,
        disconnect_delay: timedelta,
        on_disconnect_scheduled: Callable[[datetime], None] | None = None,
    ) -> None:
        self.store = store
        self.disconnect_delay = disconnect_delay
        self._on_disconnect_scheduled = on_disconnect_scheduled
        self._qbo_sessions: dict[str, QboSession] = {}

    # Source accounts (Codat API)

    def add_source_account(
        self, connection: Connection, draft: SourceAccountDraft
    ) -> SourceAccount:
        if draft.id in connection.source_accounts:
            raise CodatError(409, DUPLICATE_ACCOUNT)
        account = SourceAccount(
            id=draft.id,
            account_name=draft.account_name,
            account_type=draft.account_type,
            account_number=draft.account_number,
            currency=draft.currency,
            balance=draft.balance,
            modified_date=self.store.clock.now(),
            sort_code=draft.sort_code,
            routing_info=draft.routing_info,
            account_info=draft.account_info,
        )
        connection.source_accounts[account.id] = account
        return account

    def source_account(self, connection: Connection, account_id: str) -> SourceAccount:
        account = connection.source_accounts.get(account_id)
        if account is None:
            raise not_found("Source account", account_id)
        return account

    def update_source_account(
        self, connection: Connection, account_id: str, update: SourceAccountUpdate
    ) -> SourceAccount:
        account = self.source_account(connection, account_id)
        if update.id != account_id:
            raise CodatError(400, "The id in the body must match the accountId in the path.")
        fixed = {
            "accountType": (update.account_type, account.account_type),
            "accountNumber": (update.account_number, account.account_number),
            "currency": (update.currency, account.currency),
            "sortCode": (update.sort_code, account.sort_code),
        }
        for field_name, (wanted, current) in fixed.items():
            if wanted is not None and wanted != current:
                raise CodatError(400, f"{field_name} cannot be changed on a source account.")
        if update.status is not None and update.status not in (
            account.status,
            SourceAccountStatus.DISCONNECTED,
        ):
            raise CodatError(400, "The status of a source account can only be set to disconnected.")
        if update.balance is not None and update.balance != account.balance:
            if account.status is SourceAccountStatus.CONNECTED:
                raise CodatError(
                    400, "The balance can only be changed on accounts that are not connected."
                )
            account.balance = update.balance
        if update.account_name is not None:
            account.account_name = update.account_name
        account.modified_date = self.store.clock.now()
        if update.status is SourceAccountStatus.DISCONNECTED:
            self._disconnect_now(connection, account)
        return account

    def delete_source_account(self, connection: Connection, account_id: str) -> None:
        self.source_account(connection, account_id)
        del connection.source_accounts[account_id]

    # Credentials

    def issue_credentials(self, connection: Connection) -> Credential:
        username = "-".join(
            "".join(secrets.choice(_USERNAME_ALPHABET) for _ in range(4)) for _ in range(3)
        )
        password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))
        credential = Credential(username, password, issued_at=self.store.clock.now())
        connection.credentials[username] = credential
        return credential

    def revoke_credentials(self, connection: Connection) -> None:
        connection.credentials.clear()
        ended = [t for t, s in self._qbo_sessions.items() if s.connection_id == connection.id]
        for token in ended:
            del self._qbo_sessions[token]

    # QuickBooks simulator

    def sign_in(self, username: str, password: str) -> QboSession | None:
        """Spend a one-time credential on a QuickBooks session; None if it is not good."""
        for company in self.store.companies.values():
            for connection in company.connections.values():
                credential = connection.credentials.get(username.strip())
                if credential is None or credential.signed_in_at is not None:
                    continue
                if not secrets.compare_digest(credential.password.encode(), password.encode()):
                    return None
                now = self.store.clock.now()
                credential.signed_in_at = now
                session = QboSession(secrets.token_urlsafe(24), company.id, connection.id, now)
                self._qbo_sessions[session.token] = session
                return session
        return None

    def qbo_connection(self, token: str) -> Connection | None:
        session = self._qbo_sessions.get(token)
        if session is None:
            return None
        if self.store.clock.now() - session.signed_in_at > QBO_SESSION_LIFETIME:
            del self._qbo_sessions[token]
            return None
        company = self.store.companies.get(session.company_id)
        return company.connections.get(session.connection_id) if company else None

    def feed_start(self, chosen: date) -> FeedStart:
        """QuickBooks takes at most 7 days of history and refuses a future start."""
        today = self.store.clock.today()
        if chosen > today:
            raise ValueError("future start date")
        earliest = today - FEED_HISTORY
        return FeedStart(earliest, True) if chosen < earliest else FeedStart(chosen, False)

    def connect_accounts(
        self, connection: Connection, account_ids: list[str], start: date
    ) -> list[SourceAccount]:
        accounts = [self.source_account(connection, a) for a in dict.fromkeys(account_ids)]
        now = self.store.clock.now()
        for account in accounts:
            if account.status is SourceAccountStatus.CONNECTED:
                raise CodatError(409, f"Source account {account.id} is already connected.")
        self.store.set_connection_status(connection, ConnectionStatus.LINKED)
        for account in accounts:
            account.status = SourceAccountStatus.CONNECTED
            account.feed_start_date = start
            account.modified_date = now
            account.disconnect_due = None
            self.store.emit_source_account_event(
                "bankFeeds.sourceAccount.connected", connection, account
            )
        return accounts

    def request_disconnect(self, connection: Connection, account_id: str) -> datetime:
        """The SMB disconnects in QuickBooks; Codat reports it after `disconnect_delay`."""
        account = self.source_account(connection, account_id)
        if account.status is not SourceAccountStatus.CONNECTED:
            raise CodatError(409, f"Source account {account.id} is not connected.")
        if account.disconnect_due is None:
            account.disconnect_due = self.store.clock.now() + self.disconnect_delay
            if self._on_disconnect_scheduled is not None:
                self._on_disconnect_scheduled(account.disconnect_due)
        return account.disconnect_due

    def settle(self) -> datetime | None:
        """Apply every disconnection whose delay has passed; return the next one still due."""
        now = self.store.clock.now()
        next_due: datetime | None = None
        for company in list(self.store.companies.values()):
            for connection in list(company.connections.values()):
                for account in list(connection.source_accounts.values()):
                    due = account.disconnect_due
                    if due is not None and due <= now:
                        self._disconnect_now(connection, account)
                    elif due is not None and (next_due is None or due < next_due):
                        next_due = due
        return next_due

    def _disconnect_now(self, connection: Connection, account: SourceAccount) -> None:
        account.disconnect_due = None
        if account.status is SourceAccountStatus.DISCONNECTED:
            return
        account.status = SourceAccountStatus.DISCONNECTED
        account.modified_date = self.store.clock.now()
        self.store.emit_source_account_event(
            "bankFeeds.sourceAccount.disconnected", connection, account
        )
        # Codat unlinks the connection once no source account is left connected.
        still_connected = any(
            a.status in (SourceAccountStatus.CONNECTED, SourceAccountStatus.CONNECTING)
            for a in connection.source_accounts.values()
        )
        if connection.status is ConnectionStatus.LINKED and not still_connected:
            self.store.set_connection_status(connection, ConnectionStatus.UNLINKED)

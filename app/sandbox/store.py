"""Companies, connections and their one-time Link passwords, held in memory.

Every method is synchronous on purpose: with no `await` inside, each one runs to completion
on the event loop, so concurrent requests never observe half a change.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from app.sandbox.errors import CodatError, not_found
from app.sandbox.state import (
    INTEGRATIONS,
    Company,
    Connection,
    ConnectionStatus,
    LinkPass,
    SandboxClock,
    SourceAccount,
    new_id,
)
from app.sandbox.wire import (
    Json,
    company_details_json,
    company_json,
    company_reference_json,
    connection_json,
    source_account_v2_json,
)

OTP_LIFETIME = timedelta(hours=1)

EventSink = Callable[[str, str, Json], None]


def _ignore_event(event_type: str, ordering_key: str, payload: Json) -> None:
    return None


class SandboxStore:
    def __init__(self, clock: SandboxClock, base_url: str, on_event: EventSink | None = None):
        self.clock = clock
        self.base_url = base_url
        self.companies: dict[str, Company] = {}
        self._link_passes: dict[str, LinkPass] = {}
        self._on_event = on_event or _ignore_event

    # Companies

    def create_company(self, name: str, description: str, tags: dict[str, str]) -> Company:
        company = Company(
            id=new_id(), name=name, description=description, tags=tags, created=self.clock.now()
        )
        self.companies[company.id] = company
        return company

    def company(self, company_id: str) -> Company:
        company = self.companies.get(company_id)
        if company is None:
            raise not_found("Company", company_id)
        return company

    def delete_company(self, company_id: str) -> None:
        """Gone for good, with its connections: their ids answer 404 from now on."""
        company = self.company(company_id)
        for connection in company.connections.values():
            self._forget_link_passes(connection.id)
        company.connections.clear()
        del self.companies[company_id]
        self._on_event("company.deleted", company.id, company_details_json(company, self.base_url))

    # Connections

    def create_connection(self, company_id: str, platform_key: str) -> Connection:
        company = self.company(company_id)
        integration = INTEGRATIONS.get(platform_key)
        if integration is None:
            raise CodatError(404, f"Integration with key {platform_key} was not found.")
        connection = Connection(
            id=new_id(), company_id=company.id, integration=integration, created=self.clock.now()
        )
        company.connections[connection.id] = connection
        self.emit_connection_event("connection.created", connection)
        return connection

    def connection(self, company_id: str, connection_id: str) -> Connection:
        connection = self.company(company_id).connections.get(connection_id)
        if connection is None:
            raise not_found("Connection", connection_id)
        return connection

    def delete_connection(self, company_id: str, connection_id: str) -> None:
        connection = self.connection(company_id, connection_id)
        self.emit_connection_event("connection.deleted", connection)
        self._forget_link_passes(connection.id)
        del self.companies[company_id].connections[connection_id]

    def unlink_connection(self, company_id: str, connection_id: str) -> Connection:
        connection = self.connection(company_id, connection_id)
        if connection.status is not ConnectionStatus.LINKED:
            raise CodatError(
                400,
                f"Only Linked data connections can be unlinked; "
                f"this connection is {connection.status.value}.",
            )
        self.set_connection_status(connection, ConnectionStatus.UNLINKED)
        return connection

    def set_connection_status(self, connection: Connection, status: ConnectionStatus) -> None:
        previous = connection.status
        if previous is status:
            return
        connection.status = status
        if status is ConnectionStatus.LINKED:
            was_linked_before = previous is not ConnectionStatus.PENDING_AUTH
            event = "connection.reconnected" if was_linked_before else "connection.connected"
            self.emit_connection_event(event, connection)
        elif previous is ConnectionStatus.LINKED:
            self.emit_connection_event("connection.disconnected", connection)

    # One-time Link passwords

    def issue_link_url(self, connection: Connection) -> str:
        """A fresh linkUrl: every read of a connection hands out a new one-time password."""
        now = self.clock.now()
        self._forget_expired_link_passes(now)
        otp = f"{secrets.randbelow(1_000_000):06d}"
        while otp in self._link_passes:
            otp = f"{secrets.randbelow(1_000_000):06d}"
        self._link_passes[otp] = LinkPass(otp, connection.company_id, connection.id, now)
        return (
            f"{self.base_url}/link/companies/{connection.company_id}"
            f"/connections/{connection.id}/start?otp={otp}"
        )

    def connection_for_link_pass(
        self, company_id: str, connection_id: str, otp: str
    ) -> Connection | None:
        """The connection a Link page may act on, or None when the password is not good."""
        link_pass = self._link_passes.get(otp)
        if link_pass is None or self.clock.now() - link_pass.issued_at > OTP_LIFETIME:
            return None
        if (link_pass.company_id, link_pass.connection_id) != (company_id, connection_id):
            return None
        company = self.companies.get(company_id)
        return company.connections.get(connection_id) if company else None

    def _forget_expired_link_passes(self, now: datetime) -> None:
        expired = [k for k, p in self._link_passes.items() if now - p.issued_at > OTP_LIFETIME]
        for otp in expired:
            del self._link_passes[otp]

    def _forget_link_passes(self, connection_id: str) -> None:
        stale = [k for k, p in self._link_passes.items() if p.connection_id == connection_id]
        for otp in stale:
            del self._link_passes[otp]

    # Wire shapes that hand out one-time passwords

    def connection_json(self, connection: Connection) -> Json:
        return connection_json(connection, self.issue_link_url(connection))

    def company_json(self, company: Company) -> Json:
        connections = [self.connection_json(c) for c in company.connections.values()]
        return company_json(company, self.base_url, connections)

    # Webhooks

    def emit_connection_event(self, event_type: str, connection: Connection) -> None:
        company = self.companies[connection.company_id]
        payload: Json = {
            "referenceCompany": company_reference_json(company, self.base_url),
            "connection": self.connection_json(connection),
        }
        self._on_event(event_type, connection.id, payload)

    def emit_source_account_event(
        self, event_type: str, connection: Connection, account: SourceAccount
    ) -> None:
        company = self.companies[connection.company_id]
        payload: Json = {
            "referenceCompany": company_reference_json(company, self.base_url),
            "companyId": company.id,
            "connectionId": connection.id,
            "sourceAccount": source_account_v2_json(account),
        }
        self._on_event(event_type, connection.id, payload)

    # Admin view

    def snapshot(self) -> Json:
        return {
            "now": self.clock.now().isoformat(),
            "companies": [
                {
                    "id": company.id,
                    "name": company.name,
                    "tags": dict(company.tags),
                    "connections": [
                        {
                            "id": connection.id,
                            "integrationKey": connection.integration.key,
                            "status": connection.status.value,
                            "credentials": len(connection.credentials),
                            "sourceAccounts": [
                                source_account_v2_json(a)
                                for a in connection.source_accounts.values()
                            ],
                        }
                        for connection in company.connections.values()
                    ],
                }
                for company in self.companies.values()
            ],
        }

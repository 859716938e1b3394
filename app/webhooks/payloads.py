"""The `payload` of the Codat webhooks we act on, read leniently with the client's models."""

from __future__ import annotations

from pydantic import Field

from app.codat.models import CodatDateTime, Connection, Lenient, LenientStr, SourceAccount


class CompanyReference(Lenient):
    id: str


class ConnectionPayload(Lenient):
    """connection.created / connected / disconnected / reconnected / failed / deleted."""

    reference_company: CompanyReference | None = Field(default=None, alias="referenceCompany")
    connection: Connection


class SourceAccountPayload(Lenient):
    """bankFeeds.sourceAccount.connected / disconnected.

    Since 2025-01-10: `referenceCompany`, `connectionId`, `sourceAccount`. Before: `companyId`
    and the account under `bankAccount`.
    """

    reference_company: CompanyReference | None = Field(default=None, alias="referenceCompany")
    company_id: str | None = Field(default=None, alias="companyId")
    connection_id: str | None = Field(default=None, alias="connectionId")
    source_account: SourceAccount | None = Field(default=None, alias="sourceAccount")
    bank_account: SourceAccount | None = Field(default=None, alias="bankAccount")


class RateLimitPayload(Lenient):
    """client.rateLimit.reached / reset."""

    daily_quota: int | None = Field(default=None, alias="dailyQuota")
    quota_remaining: int | None = Field(default=None, alias="quotaRemaining")
    expiry_date: CodatDateTime | None = Field(default=None, alias="expiryDate")


class CompanyPayload(Lenient):
    """company.created / company.deleted: Codat's `companyDetails`."""

    id: LenientStr

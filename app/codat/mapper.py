"""Our source-account rows in Codat's write shapes, and the fields each write sends."""

from __future__ import annotations

from app.codat.models import (
    AccountInfoCreate,
    RoutingInfoCreate,
    SourceAccountCreate,
    SourceAccountUpdate,
    wire,
)
from app.models import SourceAccount


def source_account_create(account: SourceAccount) -> SourceAccountCreate:
    """The v2 prototype Codat creates the account from (our JSON columns hold its keys)."""
    return SourceAccountCreate.model_validate(
        {
            "id": account.id,
            "account_name": account.account_name,
            "account_type": account.account_type,
            "account_number": account.account_number,
            "sort_code": account.sort_code,
            "routing_info": _maybe(RoutingInfoCreate, account.routing_info),
            "currency": account.currency,
            "balance": account.balance,
            "account_info": _maybe(AccountInfoCreate, account.account_info),
        }
    )


def source_account_update(
    account: SourceAccount, *, name: bool, balance: bool
) -> SourceAccountUpdate:
    """The PATCH for what Codat may change: the name, and the balance until it connects."""
    return SourceAccountUpdate(
        id=account.id,
        account_name=account.account_name if name else None,
        balance=account.balance if balance else None,
    )


def source_account_close(account: SourceAccount) -> SourceAccountUpdate:
    """The PATCH that closes an account in the bank feed: `disconnected` is the only status
    Codat lets a client set."""
    return SourceAccountUpdate(id=account.id, status="disconnected")


def fields_sent(body: SourceAccountCreate | SourceAccountUpdate) -> list[str]:
    """The fields a write carries; for a PATCH, those it changes (its `id` only names it)."""
    fields = wire(body)
    if isinstance(body, SourceAccountUpdate):
        fields.pop("id")
    return sorted(fields)


def _maybe(
    model: type[RoutingInfoCreate] | type[AccountInfoCreate], value: dict[str, object] | None
) -> RoutingInfoCreate | AccountInfoCreate | None:
    return model.model_validate(value) if value else None

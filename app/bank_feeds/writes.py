"""Codat writes that survive a 5xx: read the state back, redo only what is missing, new key.

Codat keeps a 5xx under its Idempotency-Key for 90 minutes, so the client ends a write there
(`CodatWriteUnconfirmed`). The write may have happened. Each function here looks at what Codat
holds now and repeats only what is not there, as a new request with a new key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from app.bank_feeds.statuses import REUSABLE_CONNECTION_STATUSES
from app.codat.client import CodatClient, new_idempotency_key
from app.codat.errors import CodatWriteUnconfirmed
from app.codat.models import (
    BatchItem,
    Company,
    Connection,
    SourceAccount,
    SourceAccountCreate,
    SourceAccountUpdate,
)

log = logging.getLogger("app.bank_feeds")

WRITE_ROUNDS = 3  # a write, then at most two read-backs and repeats


KeepKey = Callable[[str], Awaitable[None]]


async def create_company(
    codat: CodatClient,
    name: str,
    *,
    tag: tuple[str, str],
    description: str,
    key: str | None = None,
    keep_key: KeepKey | None = None,
) -> Company:
    """The company, created once. `key` is the Idempotency-Key of an earlier attempt that got
    no answer: sent again, Codat replays that attempt's answer (or says it is still working).
    Every new key goes to `keep_key` before it is sent. After a 5xx, a company carrying the
    tag is adopted; only if there is none is it created again, under a new key."""
    for round_ in range(WRITE_ROUNDS):
        if round_:
            found = await codat.find_companies_by_tag(*tag)
            if found:
                return min(found, key=lambda c: (c.created is None, c.created, c.id))
        key = await _fresh(key if not round_ else None, keep_key)
        try:
            return await codat.create_company(
                name, tags=dict([tag]), description=description, idempotency_key=key
            )
        except CodatWriteUnconfirmed as exc:
            log.warning("creating a Codat company: %s; reading back", type(exc).__name__)
            if round_ == WRITE_ROUNDS - 1:
                raise
    raise AssertionError("unreachable")


async def _fresh(key: str | None, keep_key: KeepKey | None) -> str:
    if key is not None:
        return key
    key = new_idempotency_key()
    if keep_key is not None:
        await keep_key(key)
    return key


def adoptable(connections: Sequence[Connection]) -> list[Connection]:
    """Connections a click may take over: QBO bank feeds still pending or linked."""
    return [
        c for c in connections if c.is_qbo_bank_feed and c.status in REUSABLE_CONNECTION_STATUSES
    ]


async def create_connection(
    codat: CodatClient,
    company_id: str,
    *,
    key: str | None = None,
    keep_key: KeepKey | None = None,
) -> Connection:
    """The `hcws` connection, created once (keys as for `create_company`); after a 5xx an
    existing QBO bank feed is adopted instead."""
    for round_ in range(WRITE_ROUNDS):
        if round_:
            found = adoptable(await codat.list_connections(company_id))
            if found:
                return min(found, key=lambda c: (c.created is None, c.created, c.id))
        key = await _fresh(key if not round_ else None, keep_key)
        try:
            return await codat.create_connection(company_id, idempotency_key=key)
        except CodatWriteUnconfirmed as exc:
            log.warning("creating a Codat connection: %s; reading back", type(exc).__name__)
            if round_ == WRITE_ROUNDS - 1:
                raise
    raise AssertionError("unreachable")


async def create_source_accounts(
    codat: CodatClient,
    company_id: str,
    connection_id: str,
    accounts: Sequence[SourceAccountCreate],
) -> list[BatchItem]:
    """One result per account. After a 5xx, those Codat holds answer as "already exists"
    (with what Codat holds, to compare); only the others are sent again."""
    results: dict[str, BatchItem] = {}
    missing = list(accounts)
    for round_ in range(WRITE_ROUNDS):
        if round_:
            held = {a.id: a for a in await codat.list_source_accounts(company_id, connection_id)}
            for account in list(missing):
                if account.id in held:
                    results[account.id] = BatchItem.already_held(held[account.id])
                    missing.remove(account)
            if not missing:
                break
        try:
            items = await codat.create_source_accounts(company_id, connection_id, missing)
        except CodatWriteUnconfirmed as exc:
            log.warning("creating source accounts: %s; reading back", type(exc).__name__)
            if round_ == WRITE_ROUNDS - 1:
                raise
            continue
        results.update({item.source_account_id: item for item in items})
        break
    return [results[a.id] for a in accounts if a.id in results]


def holds_update(held: SourceAccount, update: SourceAccountUpdate) -> bool:
    """Whether Codat's copy already carries every field of `update`."""
    if update.account_name is not None and held.account_name != update.account_name:
        return False
    if update.balance is not None and held.balance != Decimal(update.balance):
        return False
    return update.status is None or held.status == update.status


async def update_source_account(
    codat: CodatClient, company_id: str, connection_id: str, update: SourceAccountUpdate
) -> SourceAccount:
    """PATCH once: after a 5xx, Codat's copy is read; sent again only if it lacks the change."""
    for round_ in range(WRITE_ROUNDS):
        if round_:
            held = next(
                (
                    a
                    for a in await codat.list_source_accounts(company_id, connection_id)
                    if a.id == update.id
                ),
                None,
            )
            if held is not None and holds_update(held, update):
                return held
        try:
            return await codat.update_source_account(company_id, connection_id, update)
        except CodatWriteUnconfirmed as exc:
            log.warning("updating a source account: %s; reading back", type(exc).__name__)
            if round_ == WRITE_ROUNDS - 1:
                raise
    raise AssertionError("unreachable")

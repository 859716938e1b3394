"""What operations do: retry a failed push, requeue held or rejected transactions, release a
held one with a later date and the reason kept; pushes by page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.errors import Conflict, Unprocessable
from app.models import BankTransaction
from app.transactions.listing import PushFilters
from app.transactions.summary import needs_action
from tests.transactions.support import (
    ACCOUNT,
    CUSTOMER,
    TODAY,
    Feed,
    item,
)


async def status_of(feed: Feed, transaction_id: str) -> tuple[str, str | None]:
    async with feed.sessions() as session:
        row = await session.scalar(
            select(BankTransaction).where(BankTransaction.id == transaction_id)
        )
        assert row is not None
        return row.status, row.reason


async def test_a_failed_push_is_retried_by_operations_only(feed: Feed) -> None:
    outcomes = iter(["Failed", "Success"])
    feed.codat.answer = lambda body: next(outcomes)
    feed.codat.error_message = "QuickBooks is unavailable."
    await feed.add(item(1))
    await feed.job.run_once()
    assert await status_of(feed, "txn-1") == ("rejected", "QuickBooks is unavailable.")
    feed.clock.advance(days=1)
    await feed.job.run_once()
    assert len(feed.codat.created) == 1  # a failure waits for operations
    (failed,) = await feed.pushes()
    out = await feed.service.retry(failed.id)
    assert out.retried_at is not None
    with pytest.raises(Conflict):
        await feed.service.retry(failed.id)
    await feed.job.run_once()
    assert await status_of(feed, "txn-1") == ("pushed", None)


async def test_a_timed_out_push_is_retried_only_when_it_did_not_land(feed: Feed) -> None:
    feed.codat.answer = lambda body: "TimedOut"
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    with pytest.raises(Conflict, match="may still land"):
        await feed.service.retry(push.id)
    await feed.service.retry(push.id, not_landed=True)
    assert await status_of(feed, "txn-1") == ("pending", None)
    with pytest.raises(Conflict):
        await feed.service.confirm_landed(push.id)  # retried: it is not settled twice


async def test_a_timed_out_push_retried_by_operations_no_longer_holds_the_account(
    feed: Feed,
) -> None:
    outcomes = iter(["TimedOut", "Success"])
    feed.codat.answer = lambda body: next(outcomes)
    await feed.add(item(1))
    await feed.job.run_once()
    feed.clock.advance(minutes=6)
    await feed.job.run_once()  # read once more: still TimedOut, left to operations
    (push,) = await feed.pushes()
    assert push.status == "timed_out" and push.next_attempt_at is None
    assert [r.code for r in needs_action({}, None, push)] == ["push_timed_out"]
    await feed.service.retry(push.id, not_landed=True)
    (retried,) = await feed.pushes()
    assert needs_action({}, None, retried) == []  # operations have dealt with it
    await feed.job.run_once()
    assert len(feed.codat.created) == 2, "the retried push still holds the account"
    assert [t["id"] for t in feed.codat.created[-1]["transactions"]] == ["txn-1"]
    assert await status_of(feed, "txn-1") == ("pushed", None)
    gets = len([c for c in feed.codat.calls if c.method == "GET"])
    feed.clock.advance(hours=2)
    await feed.job.run_once()
    assert len([c for c in feed.codat.calls if c.method == "GET"]) == gets  # not read again


async def test_a_timed_out_push_found_in_quickbooks_is_settled_as_pushed(feed: Feed) -> None:
    feed.codat.answer = lambda body: "TimedOut"
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    settled = await feed.service.confirm_landed(push.id)
    assert settled.status == "success"
    assert await status_of(feed, "txn-1") == ("pushed", None)
    await feed.add(item(2))
    await feed.job.run_once()
    assert len(feed.codat.created) == 2  # the account goes on; txn-1 was not sent again
    assert [t["id"] for t in feed.codat.created[-1]["transactions"]] == ["txn-2"]


async def test_held_transactions_are_requeued_or_released_with_a_later_date(feed: Feed) -> None:
    feed.codat.answer = lambda body: "Success"
    await feed.add(item(1, TODAY))
    await feed.job.run_once()
    await feed.add(item(2, TODAY - timedelta(days=2)), item(3, TODAY - timedelta(days=1)))
    await feed.job.run_once()
    assert (await status_of(feed, "txn-2"))[0] == "held"
    with pytest.raises(Conflict, match="txn-1"):
        await feed.service.requeue(CUSTOMER, ACCOUNT, ["txn-2", "txn-1"])
    await feed.service.requeue(CUSTOMER, ACCOUNT, ["txn-2", "txn-3"])
    await feed.job.run_once()
    assert (await status_of(feed, "txn-2"))[0] == "held"  # the rules still hold it
    with pytest.raises(Unprocessable):
        await feed.service.release(
            CUSTOMER, ACCOUNT, "txn-2", TODAY - timedelta(days=1), "before the last pushed"
        )
    released = await feed.service.release(
        CUSTOMER, ACCOUNT, "txn-2", TODAY, "Posted late by the card processor"
    )
    assert released.sent_date == TODAY and released.release_reason
    await feed.job.run_once()
    assert await status_of(feed, "txn-2") == ("pushed", None)
    assert feed.codat.created[-1]["transactions"][0]["date"] == TODAY.isoformat()


async def test_pushes_page_by_keyset_with_filters(feed: Feed) -> None:
    feed.codat.answer = lambda body: "Success"
    for n in range(3):
        await feed.add(item(n))
        await feed.job.run_once()
    first = await feed.service.pushes(PushFilters(customer_id=CUSTOMER), limit=2, after=None)
    assert len(first.items) == 2 and first.next_cursor is not None
    rest = await feed.service.pushes(
        PushFilters(customer_id=CUSTOMER), limit=2, after=int(first.next_cursor)
    )
    assert [p.id for p in first.items + rest.items] == sorted(
        (p.id for p in await feed.pushes()), reverse=True
    )
    assert rest.next_cursor is None
    none = await feed.service.pushes(PushFilters(status="failed"), limit=10, after=None)
    assert none.items == []

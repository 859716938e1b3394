"""`bankTransactions.write.successful` / `.unsuccessful`: a push is settled once, whatever the
order or the number of deliveries; an unknown key waits while a push is still unanswered."""

from __future__ import annotations

from typing import Any

import pytest

from app.webhooks.handlers import HANDLERS, NotRecordedYet
from app.webhooks.inbox import InboxEvent
from tests.transactions.support import (
    COMPANY,
    CONNECTION,
    NOW,
    Feed,
    item,
)


def event(key: str, status: str, n: int = 1) -> InboxEvent:
    result = "successful" if status == "Success" else "unsuccessful"
    payload: dict[str, Any] = {
        "id": key, "type": "Create", "referenceCompany": {"id": COMPANY},
        "connectionId": CONNECTION, "requestedOnDate": NOW.isoformat(),
        "completedOnDate": NOW.isoformat(), "status": status, "record": None,
        "attachmentId": None,
    }  # fmt: skip
    return InboxEvent(
        n, f"msg_{n}", f"bankTransactions.write.{result}", NOW, NOW, payload, COMPANY, 0
    )


async def handle(feed: Feed, delivered: InboxEvent) -> str:
    async with feed.sessions() as session:
        outcome = await HANDLERS[delivered.event_type](session, delivered)
        await session.commit()
    return outcome.status


async def test_success_settles_the_push_once(feed: Feed) -> None:
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.push_operation_key
    assert await handle(feed, event(push.push_operation_key, "Success")) == "handled"
    assert await handle(feed, event(push.push_operation_key, "Success", 2)) == "ignored"
    (push,) = await feed.pushes()
    assert push.status == "success"


async def test_a_failure_is_read_back_for_its_validation_errors(feed: Feed) -> None:
    feed.codat.validation = {
        "errors": [{"itemId": "txn-1", "message": "Bad", "validatorName": "X"}]
    }
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.push_operation_key
    feed.codat.settle(push.push_operation_key, "Failed")
    feed.codat.operations[push.push_operation_key]["validation"] = feed.codat.validation
    assert await handle(feed, event(push.push_operation_key, "Failed")) == "handled"
    await feed.job.run_once()  # reads the operation now, not after the polling delay
    (push,) = await feed.pushes()
    assert push.status == "failed"
    assert push.validation and push.validation["errors"][0]["itemId"] == "txn-1"


async def test_an_unknown_key_waits_while_a_push_is_unanswered(feed: Feed) -> None:
    assert await handle(feed, event("f1b0c3c0-7777-4a4a-9b9b-000000000001", "Success")) == (
        "unmatched"
    )
    feed.codat.lose_answers = 1000
    await feed.add(item(1))
    await feed.job.run_once()
    with pytest.raises(NotRecordedYet):
        await handle(feed, event("f1b0c3c0-7777-4a4a-9b9b-000000000001", "Success"))

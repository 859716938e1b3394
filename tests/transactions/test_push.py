"""The push job under QuickBooks' rules, exactly once, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import BankTransaction, SourceAccount, TransactionFeed
from app.transactions.push import PushReport
from tests.transactions.support import (
    ACCOUNT,
    CUSTOMER,
    TODAY,
    Feed,
    build_feed,
    item,
    linked_customer,
)


async def statuses(feed: Feed) -> dict[str, tuple[str, str | None]]:
    async with feed.sessions() as session:
        rows = await session.execute(select(BankTransaction).order_by(BankTransaction.seq))
        return {t.id: (t.status, t.reason) for t in rows.scalars()}


async def account_feed(feed: Feed) -> TransactionFeed:
    async with feed.sessions() as session:
        state = await session.get(TransactionFeed, (CUSTOMER, ACCOUNT))
        assert state is not None
        return state


def sent_ids(feed: Feed, n: int = -1) -> list[str]:
    posts = [c for c in feed.codat.calls if c.method == "POST"]
    return [t["id"] for t in json.loads(posts[n].body)["transactions"]]


async def test_a_push_is_recorded_with_its_key_before_codat_is_called(feed: Feed) -> None:
    await feed.add(item(1), item(2))
    await feed.job.run_once()
    (call,) = [c for c in feed.codat.calls if c.method == "POST"]
    assert call.recorded, "the push and its Idempotency-Key were not committed before the call"
    (push,) = await feed.pushes()
    assert call.key == push.idempotency_key
    assert push.push_operation_key is not None and push.status == "pending"
    assert (await statuses(feed))["txn-1"] == ("pushing", None)


async def test_oldest_first_stable_within_a_day_and_exact_decimals(feed: Feed) -> None:
    yesterday = TODAY - timedelta(days=1)
    await feed.add(item(3, TODAY, "-0.10"), item(1, yesterday, "100.25"))
    await feed.add(item(2, TODAY, "-99999999999.9999"), item(0, yesterday, "-1"))
    await feed.job.run_once()
    assert sent_ids(feed) == ["txn-1", "txn-0", "txn-3", "txn-2"]
    body = feed.codat.calls[-1].body
    assert '"amount":100.25,' in body and '"amount":-99999999999.9999,' in body
    assert '"amount":-0.10,' in body
    assert json.loads(body)["accountId"] == ACCOUNT


async def test_success_moves_the_last_pushed_date_and_the_account_balance(feed: Feed) -> None:
    feed.codat.answer = lambda body: "Success"
    await feed.add(item(1, TODAY - timedelta(days=1)), item(2, TODAY))
    await feed.job.run_once()
    assert await statuses(feed) == {"txn-1": ("pushed", None), "txn-2": ("pushed", None)}
    state = await account_feed(feed)
    assert state.last_pushed_date == TODAY
    assert state.last_pushed_balance == Decimal("1002.00")
    async with feed.sessions() as session:
        account = await session.get(SourceAccount, (CUSTOMER, ACCOUNT))
        assert account is not None and account.balance == Decimal("1002.00")


async def test_only_connected_accounts_are_pushed_and_the_others_say_why(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await linked_customer(sessions, account_status="pending")
    feed = build_feed(sessions)
    await feed.add(item(1))
    report = await feed.job.run_once()
    assert feed.codat.calls == []
    assert report.waiting == [f"{CUSTOMER}/{ACCOUNT}"]
    assert (await statuses(feed))["txn-1"] == ("pending", None)
    async with sessions() as session:  # the customer finishes in QuickBooks
        account = await session.get(SourceAccount, (CUSTOMER, ACCOUNT))
        assert account is not None
        account.codat_status = "connected"
        await session.commit()
    feed.clock.advance(minutes=6)
    await feed.job.run_once()
    assert sent_ids(feed) == ["txn-1"]
    await feed.job.codat.aclose()


async def test_at_most_1000_per_push_and_one_push_at_a_time(feed: Feed) -> None:
    await feed.add(*(item(n) for n in range(2500)))
    await feed.job.run_once()
    assert len(sent_ids(feed)) == 1000
    await feed.job.run_once()  # the first is still Pending: nothing new is sent
    assert len([c for c in feed.codat.calls if c.method == "POST"]) == 1
    for push in await feed.pushes():
        assert push.push_operation_key is not None
        feed.codat.settle(push.push_operation_key, "Success")
    feed.clock.advance(minutes=6)  # polled after a while
    await feed.job.run_once()
    await feed.job.run_once()
    posts = [c for c in feed.codat.calls if c.method == "POST"]
    assert [len(json.loads(c.body)["transactions"]) for c in posts] == [1000, 1000]
    assert sent_ids(feed) == [f"txn-{n}" for n in range(1000, 2000)]


async def test_late_transactions_are_held_with_the_reason_never_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await linked_customer(sessions, feed_start=TODAY - timedelta(days=3))
    feed = build_feed(sessions)
    feed.codat.answer = lambda body: "Success"
    await feed.add(item(1, TODAY))
    await feed.job.run_once()
    await feed.add(
        item(2, TODAY - timedelta(days=1)),  # older than what QuickBooks has
        item(3, TODAY),
    )
    await feed.job.run_once()
    found = await statuses(feed)
    assert found["txn-2"][0] == "held" and "most recent transaction" in str(found["txn-2"][1])
    assert found["txn-3"] == ("pushed", None)
    assert sent_ids(feed) == ["txn-3"]
    await feed.job.codat.aclose()


async def test_the_feed_start_date_and_the_history_window_hold_what_is_older(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await linked_customer(sessions, feed_start=TODAY - timedelta(days=2))
    feed = build_feed(sessions)
    await feed.add(
        item(1, TODAY - timedelta(days=3)),  # before the start date
        item(2, TODAY - timedelta(days=2)),
    )
    await feed.job.run_once()
    found = await statuses(feed)
    assert found["txn-1"][0] == "held" and "feed start date" in str(found["txn-1"][1])
    assert sent_ids(feed) == ["txn-2"]
    await feed.job.codat.aclose()


async def test_the_history_window_holds_what_is_older(feed: Feed) -> None:
    await feed.add(
        item(1, TODAY - timedelta(days=7)),  # the 8th day counting today
        item(2, TODAY - timedelta(days=6)),
    )
    await feed.job.run_once()
    found = await statuses(feed)
    assert found["txn-1"][0] == "held" and "7 days of history" in str(found["txn-1"][1])
    assert sent_ids(feed) == ["txn-2"]


async def test_a_lost_answer_is_resumed_with_the_same_key_and_written_once(feed: Feed) -> None:
    feed.codat.lose_answers = 1000
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.status == "sending" and push.push_operation_key is None
    feed.codat.lose_answers = 0
    feed.clock.advance(hours=1)
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.push_operation_key is not None
    keys = {c.key for c in feed.codat.calls if c.method == "POST"}
    assert keys == {push.idempotency_key}
    assert len(feed.codat.created) == 1


async def test_after_codats_replay_window_the_push_history_is_read_first(feed: Feed) -> None:
    feed.codat.lose_answers = 1000
    await feed.add(item(1))
    await feed.job.run_once()
    feed.codat.lose_answers = 0
    feed.codat.replies.clear()  # 90 minutes on, Codat no longer replays the key
    feed.clock.advance(minutes=91)
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.push_operation_key in feed.codat.operations  # found in the history
    assert len(feed.codat.created) == 1, "the push was sent again"
    assert [c.method for c in feed.codat.calls][-1] == "GET"


async def test_a_5xx_is_looked_up_then_sent_under_a_new_key(feed: Feed) -> None:
    answers = iter(["down", "Pending"])
    feed.codat.answer = lambda body: next(answers)
    await feed.add(item(1))
    await feed.job.run_once()
    (push,) = await feed.pushes()
    first_key = push.idempotency_key
    assert push.status == "unconfirmed"
    feed.clock.advance(hours=1)
    await feed.job.run_once()
    (push,) = await feed.pushes()
    assert push.status == "pending" and push.idempotency_key != first_key
    assert len(feed.codat.created) == 1


async def test_timed_out_is_never_sent_again_without_operations(feed: Feed) -> None:
    feed.codat.answer = lambda body: "TimedOut"
    await feed.add(item(1))
    await feed.job.run_once()
    for _ in range(3):
        feed.clock.advance(hours=2)
        await feed.job.run_once()
    assert len([c for c in feed.codat.calls if c.method == "POST"]) == 1
    (push,) = await feed.pushes()
    assert push.status == "timed_out" and push.next_attempt_at is None
    assert (await statuses(feed))["txn-1"][0] == "pushing"


async def test_a_failed_push_maps_codats_item_ids_and_sends_the_rest(feed: Feed) -> None:
    feed.codat.answer = lambda body: "Failed" if len(body["transactions"]) == 3 else "Success"
    feed.codat.validation = {
        "errors": [
            {
                "itemId": "txn-2",
                "message": "Description is required.",
                "validatorName": "BankTransactions",
            }
        ],
        "warnings": [],
    }
    await feed.add(item(1), item(2), item(3))
    await feed.job.run_once()
    found = await statuses(feed)
    assert found["txn-2"] == ("rejected", "Description is required. (BankTransactions)")
    assert found["txn-1"] == ("pending", None) and found["txn-3"] == ("pending", None)
    await feed.job.run_once()
    assert sent_ids(feed) == ["txn-1", "txn-3"]
    assert (await statuses(feed))["txn-1"] == ("pushed", None)


async def test_a_write_refused_for_a_disconnected_account_flags_it_at_once(feed: Feed) -> None:
    feed.codat.answer = lambda body: "Failed"
    feed.codat.error_message = "The bank account has been disconnected in QuickBooks Online."
    await feed.add(item(1))
    await feed.job.run_once()
    state = await account_feed(feed)
    assert state.write_blocked_at is not None and "disconnected" in str(state.write_blocked_reason)
    assert (await statuses(feed))["txn-1"] == ("pending", None)
    feed.clock.advance(days=1)
    report = await feed.job.run_once()
    assert len([c for c in feed.codat.calls if c.method == "POST"]) == 1
    assert report.waiting == [f"{CUSTOMER}/{ACCOUNT}"]


async def test_polling_keeps_to_the_background_quota_share(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await linked_customer(sessions)
    feed = build_feed(sessions, quota_share=0.000001)  # nothing to spend
    await feed.add(item(1))
    await feed.job.run_once()
    feed.clock.advance(minutes=10)
    await feed.job.run_once()
    assert [c.method for c in feed.codat.calls] == ["POST"]
    await feed.job.codat.aclose()
    polled = build_feed(sessions)
    polled.codat = feed.codat
    polled.job.codat = feed.codat.client()
    polled.clock.now = feed.clock.now + timedelta(minutes=30)
    feed.codat.clock = polled.clock
    (push,) = await polled.pushes()
    assert push.push_operation_key
    feed.codat.settle(push.push_operation_key, "Success")
    await polled.job.run_once()
    assert [c.method for c in feed.codat.calls] == ["POST", "GET"]
    assert (await statuses(polled))["txn-1"] == ("pushed", None)
    await polled.job.codat.aclose()


async def test_one_worker_per_account(
    feed: Feed, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = build_feed(sessions)
    await feed.add(item(1))
    async with sessions() as session:
        from app.transactions import repository

        assert await repository.try_lease(
            session, CUSTOMER, ACCOUNT, other.job.owner, feed.clock(), timedelta(minutes=5)
        )
        await session.commit()
    report = await feed.job.run_once()
    assert report.busy == [f"{CUSTOMER}/{ACCOUNT}"] and feed.codat.calls == []
    assert isinstance(report, PushReport)
    await other.job.codat.aclose()


async def test_an_account_waiting_on_its_push_is_not_polled_in_a_loop(feed: Feed) -> None:
    await feed.add(item(1))
    await feed.job.run_once()
    await feed.add(item(2))  # arrives while the first push is Pending
    await feed.job.run_once()
    assert (await account_feed(feed)).next_push_at is None  # settling the push schedules it
    assert await feed.job.seconds_until_next() >= 1.0
    (push,) = await feed.pushes()
    assert push.push_operation_key
    feed.codat.settle(push.push_operation_key, "Success")
    feed.clock.advance(minutes=6)
    await feed.job.run_once()  # polled: Success, and txn-2 goes at once
    assert sent_ids(feed) == ["txn-2"]


async def test_a_pusher_whose_lease_lapsed_records_no_second_push_while_one_is_out(
    feed: Feed,
) -> None:
    """The lease keeps one pusher on an account; should it lapse while its holder still works,
    a second pusher that gets the account's row still records nothing beside an outstanding
    push: Codat never holds two of one account's writes at once."""
    await feed.add(*(item(n) for n in range(1500)))
    await feed.job.run_once()  # 1,000 sent, still Pending in Codat
    other = build_feed(feed.sessions).job  # another replica, the same database
    other.clock = feed.clock

    assert await other._record_next(CUSTOMER, ACCOUNT, PushReport()) is None
    assert len(await feed.pushes()) == 1
    assert len([c for c in feed.codat.calls if c.method == "POST"]) == 1
    await other.codat.aclose()


async def test_a_write_in_the_history_naming_no_account_is_not_taken_while_another_may_own_it(
    feed: Feed,
) -> None:
    other = "cus-1-acc-1"
    async with feed.sessions() as session:
        account = await session.get(SourceAccount, (CUSTOMER, other))
        assert account is not None
        account.codat_status, account.status_changed_at = "connected", feed.clock()
        await session.commit()
    downs = {other: 1}

    def answer(body: dict[str, object]) -> str:
        if downs.get(str(body["accountId"]), 0):
            downs[str(body["accountId"])] -= 1
            return "down"  # a 500: Codat made nothing
        return "Pending"

    feed.codat.answer = answer
    feed.codat.lose_answers = 1000  # account 0's write is made; its answers never arrive
    await feed.add(item(1))
    await feed.add(item(2), account=other)
    await feed.job.run_once()
    feed.clock.advance(minutes=2)
    await feed.job.run_once()  # account 1 looks in the history: account 0's write is there
    pushes = {p.account_id: p for p in await feed.pushes()}
    assert pushes[other].push_operation_key is None, "account 0's write was taken as account 1's"
    assert len(feed.codat.created) == 1  # and account 1's was not sent again meanwhile
    (key,) = feed.codat.operations
    feed.codat.settle(key, "Success")  # Codat's answer now names the account it wrote to
    feed.codat.operations[key]["changes"] = [
        {"type": "Created", "recordRef": {"id": ACCOUNT, "dataType": "bankTransactions"}}
    ]
    feed.codat.lose_answers = 0
    feed.clock.advance(hours=1)
    await feed.job.run_once()
    await feed.job.run_once()
    pushes = {p.account_id: p for p in await feed.pushes()}
    assert pushes[ACCOUNT].push_operation_key == key and pushes[ACCOUNT].status == "success"
    assert pushes[other].push_operation_key not in (None, key)
    sent = [[t["id"] for t in body["transactions"]] for body in feed.codat.created]
    assert sent == [["txn-1"], ["txn-2"]]


async def test_several_accounts_are_pushed_at_once_each_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    import asyncio
    import contextlib

    import httpx

    from app.codat.client import CodatClient
    from app.transactions.push import PushJob

    await linked_customer(sessions)
    second = f"{CUSTOMER}-acc-1"
    async with sessions() as session:
        account = await session.get(SourceAccount, (CUSTOMER, second))
        assert account is not None
        account.codat_status = "connected"
        account.pushed_at = account.status_changed_at = account.updated_at
        await session.commit()
    for concurrency, overlapping in ((1, 1), (2, 2)):
        feed = build_feed(sessions, concurrency=concurrency)
        in_flight, most = 0, 0
        arrived = asyncio.Event()  # as many creates in flight as may overlap

        async def slow(
            request: httpx.Request,
            feed: Feed = feed,
            overlapping: int = overlapping,
            arrived: asyncio.Event = arrived,
        ) -> httpx.Response:
            nonlocal in_flight, most
            if request.method == "POST":
                in_flight += 1
                most = max(most, in_flight)
                if in_flight >= overlapping:
                    arrived.set()
                # Held until the others may start, however busy the machine: one push after
                # another is then seen as such, never by chance.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), timeout=5)
                in_flight -= 1
            return await feed.codat.handle(request)

        await feed.job.codat.aclose()
        feed.job.codat = CodatClient(
            "http://codat.test", "test-key", transport=httpx.MockTransport(slow)
        )
        feed.codat.answer = lambda body: "Success"
        n = concurrency * 10
        await feed.add(item(n))
        await feed.add(item(n + 1), account=second)
        await feed.job.run_once()
        posts = [c.path for c in feed.codat.calls if c.method == "POST"]
        assert sorted(p.split("/")[-2] for p in posts) == [ACCOUNT, second]
        assert most == overlapping
        await feed.job.codat.aclose()
    with pytest.raises(ValueError):
        PushJob(sessions, feed.job.codat, rules=feed.job.rules, concurrency=11)

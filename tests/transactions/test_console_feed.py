"""The console shows the transaction feed: pushes per day, feeds with failed, held or stale
pushes, and a customer's latest transactions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from app.console.extensions import pushed_transactions_per_day
from app.console.queries import chart_days
from app.models import BankTransaction, ConsoleAuditEntry, TransactionPush
from tests.conftest import Service
from tests.console.support import csrf_of, sign_in
from tests.console.test_pages import row
from tests.factories import add_customer


async def a_feed_with_problems(service: Service) -> None:
    now = service.services.console.now()
    await add_customer(service.sessions, "cus-1", name="Maple Street Bakery", accounts=1)
    async with service.sessions() as session:
        session.add(
            TransactionPush(
                customer_id="cus-1",
                account_id="cus-1-acc-0",
                company_id="c",
                connection_id="k",
                idempotency_key="key-0",
                body="{}",
                status="success",
                transaction_count=1,
                last_date=now.date(),
                last_balance=Decimal("957.90"),
                requested_at=now - timedelta(minutes=1),
                completed_at=now,
                attempts=1,
            )
        )
        push = TransactionPush(
            customer_id="cus-1", account_id="cus-1-acc-0", company_id="c", connection_id="k",
            idempotency_key="key-1", body="{}", status="failed", transaction_count=1,
            last_date=now.date(), last_balance=Decimal("1"), requested_at=now, attempts=1,
        )  # fmt: skip
        session.add(push)
        for n, status in ((1, "pushed"), (2, "held")):
            session.add(
                BankTransaction(
                    customer_id="cus-1",
                    account_id="cus-1-acc-0",
                    id=f"bank-{n}",
                    cleared_on=now.date() - timedelta(days=n),
                    description=f"Flour delivery {n}",
                    amount=Decimal("-42.10"),
                    balance=Decimal("957.90"),
                    transaction_type="Debit",
                    status=status,
                    pushed_at=now if status == "pushed" else None,
                )
            )
        await session.commit()


async def test_the_overview_and_the_customer_page_show_the_feed(service: Service) -> None:
    await a_feed_with_problems(service)
    await sign_in(service.client)
    overview = await service.client.get("/console/")
    assert overview.status_code == 200
    assert 'id="push-problems"' in overview.text and 'id="pushed-chart"' in overview.text
    assert "Maple Street Bakery" in overview.text
    page = await service.client.get("/console/customers/cus-1")
    assert page.status_code == 200
    assert 'id="transactions"' in page.text
    assert "Flour delivery 1" in page.text and "Flour delivery 2" in page.text


async def test_pushed_per_day_counts_the_successful_pushes_transactions(
    service: Service,
) -> None:
    now = service.services.console.now()
    await add_customer(service.sessions, "cus-1", name="Maple Street Bakery", accounts=1)
    async with service.sessions() as session:
        for n, (status, count, ago) in enumerate(
            [("success", 1000, 0), ("success", 7, 0), ("success", 5, 2), ("failed", 40, 0)]
        ):
            at = now - timedelta(days=ago)
            session.add(
                TransactionPush(
                    customer_id="cus-1",
                    account_id="cus-1-acc-0",
                    company_id="c",
                    connection_id="k",
                    idempotency_key=f"key-{n}",
                    body="{}",
                    status=status,
                    transaction_count=count,
                    last_date=at.date(),
                    last_balance=Decimal("1"),
                    requested_at=at,
                    completed_at=at,
                    attempts=1,
                )
            )
        await session.commit()
    days = chart_days(now.date())
    async with service.sessions() as session:
        per_day = await pushed_transactions_per_day(session, days)
    assert per_day is not None
    assert per_day[-1] == 1007 and per_day[-3] == 5 and sum(per_day) == 1012


async def test_staff_retry_the_failed_push_and_requeue_held_transactions(
    service: Service,
) -> None:
    await a_feed_with_problems(service)
    await sign_in(service.client)
    page = await service.client.get("/console/customers/cus-1")
    account = row(page, "account-cus-1-acc-0")
    assert "Retry the failed push" in account and "Requeue held transactions" in account
    async with service.sessions() as session:
        push_id = await session.scalar(
            select(TransactionPush.id).where(TransactionPush.status == "failed")
        )

    other = await service.client.post(
        f"/console/customers/cus-2/pushes/{push_id}/retry", data={"csrf": csrf_of(page.text)}
    )
    retried = await service.client.post(
        f"/console/customers/cus-1/pushes/{push_id}/retry", data={"csrf": csrf_of(page.text)}
    )
    again = await service.client.post(
        f"/console/customers/cus-1/pushes/{push_id}/retry", data={"csrf": csrf_of(page.text)}
    )
    requeued = await service.client.post(
        "/console/customers/cus-1/accounts/cus-1-acc-0/requeue",
        data={"csrf": csrf_of(page.text)},
    )

    assert other.status_code == 404  # a push of another customer is not found under this one
    assert retried.status_code == 303
    assert retried.headers["location"] == "/console/customers/cus-1?done=push_retried"
    assert again.status_code == 409  # retried once only
    assert requeued.status_code == 303
    assert requeued.headers["location"] == "/console/customers/cus-1?done=requeued"
    async with service.sessions() as session:
        push = await session.get(TransactionPush, push_id)
        statuses = dict(
            (await session.execute(select(BankTransaction.id, BankTransaction.status))).all()
        )
        entries = list(
            (
                await session.execute(
                    select(ConsoleAuditEntry.action, ConsoleAuditEntry.outcome)
                    .where(ConsoleAuditEntry.action != "sign_in")
                    .order_by(ConsoleAuditEntry.id)
                )
            ).all()
        )
    assert push is not None and push.retried_at is not None
    assert statuses["bank-2"] == "pending"  # the rules apply again when it is pushed
    assert entries == [
        ("retry_push", "failed"),
        ("retry_push", "ok"),
        ("retry_push", "failed"),
        ("requeue_transactions", "ok"),
    ]
    after = await service.client.get(requeued.headers["location"])
    assert "queued again" in after.text

"""Bank-feed status per customer (from our database, or Codat on refresh), the list, and sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, update

from app.bank_feeds.sync import needs_rename
from app.models import BankFeed, Customer, SourceAccount
from tests.conftest import FaultyService, Service
from tests.customers.test_import import HEADER, post_import
from tests.ops_api import (
    calls,
    codat_connection,
    customer_with_accounts,
    link_in_quickbooks,
    ops_get,
    put_account,
    put_customer,
    with_bank_feed,
)


async def status_of(service: Service, customer_id: str = "cus-1", **params: Any) -> Any:
    response = await ops_get(service, f"/ops/customers/{customer_id}/bank-feed", **params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_before_connect_every_account_is_not_pushed(service: Service) -> None:
    await customer_with_accounts(service)
    status = await status_of(service)
    assert status["connection_id"] is None and status["company_id"] is None
    assert status["connection_status"] is None and status["history"] == []
    assert [a["status"] for a in status["accounts"]] == ["not_pushed", "not_pushed"]
    assert status["counts"]["not_pushed"] == 2 and status["connected_count"] == 0
    assert status["needs_customer_action"] is True
    assert [r["code"] for r in status["reasons"]] == ["no_connection"]
    assert service.codat_calls() == []


async def test_after_connect_the_connection_waits_for_the_customer(service: Service) -> None:
    await with_bank_feed(service)
    status = await status_of(service)
    assert status["connection_status"] == "PendingAuth" and status["company_id"]
    assert status["counts"]["pending"] == 2
    assert all(a["pushed_at"] and a["last_heard_at"] for a in status["accounts"])
    assert [r["code"] for r in status["reasons"]] == ["connection_pending_auth"]
    assert status["refreshed"] is False
    assert service.codat_calls() == []  # from our database only


async def test_refresh_reads_codat_and_stores_what_it_read(service: Service) -> None:
    await with_bank_feed(service, accounts=3)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    assert (await status_of(service))["connection_status"] == "PendingAuth"  # not yet known
    status = await status_of(service, refresh="true")
    assert status["refreshed"] is True and status["last_refreshed_at"]
    assert sorted(m for m, _ in calls(service)) == ["GET", "GET"]
    assert status["connection_status"] == "Linked" and status["linked_at"]
    by_id = {a["id"]: a for a in status["accounts"]}
    assert by_id["acc-0"]["status"] == "connected" and by_id["acc-0"]["feedStartDate"]
    assert by_id["acc-2"]["status"] == "pending" and by_id["acc-2"]["feedStartDate"] is None
    assert status["counts"]["connected"] == 2 and status["connected_count"] == 2
    assert [r["code"] for r in status["reasons"]] == ["accounts_pending"]
    service.sandbox.reset_calls()
    stored = await status_of(service)  # committed: the next plain read sees it
    assert stored["connection_status"] == "Linked" and stored["connected_count"] == 2
    assert service.codat_calls() == []


async def test_refresh_sees_a_disconnection(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    connection = codat_connection(service)
    service.sandbox.bank_feeds.request_disconnect(connection, "acc-1")
    service.sandbox.clock.advance(timedelta(days=11))
    status = await status_of(service, refresh="true")
    assert status["counts"]["disconnected"] == 1 and status["connected_count"] == 1
    listed = await ops_get(service, "/ops/bank-feeds", has_disconnected_accounts="true")
    assert [r["customer_id"] for r in listed.json()["items"]] == ["cus-1"]


async def test_history_lists_earlier_connections(service: Service) -> None:
    await with_bank_feed(service)
    link_in_quickbooks(service, "cus-1", ["acc-0", "acc-1"])
    first = (await status_of(service, refresh="true"))["connection_id"]
    await service.client.delete("/ops/customers/cus-1", headers=service.ops_headers)  # unlink
    await service.services.connect.connect("cus-1")  # the customer comes back
    status = await status_of(service)
    assert status["connection_id"] != first and status["connection_status"] == "PendingAuth"
    assert [(h["connection_id"], h["status"]) for h in status["history"]] == [(first, "Unlinked")]
    assert status["history"][0]["replaced_at"] is not None


async def test_refresh_without_a_feed_reads_nothing(service: Service) -> None:
    await customer_with_accounts(service)
    status = await status_of(service, refresh="true")
    assert status["refreshed"] is False and service.codat_calls() == []


async def test_refresh_when_codat_is_down_is_503(faulty: FaultyService) -> None:
    await with_bank_feed(faulty.service)
    faulty.fail(502)
    response = await ops_get(faulty.service, "/ops/customers/cus-1/bank-feed", refresh="true")
    assert response.status_code == 503 and response.headers["retry-after"]
    assert (await ops_get(faulty.service, "/ops/customers/nobody/bank-feed")).status_code == 404


# --- sync ----------------------------------------------------------------------------------------


async def sync(service: Service, customer_id: str = "cus-1") -> Any:
    return await service.client.post(
        f"/ops/customers/{customer_id}/bank-feed/sync", headers=service.ops_headers
    )


async def test_sync_needs_a_bank_feed(service: Service) -> None:
    await customer_with_accounts(service)
    response = await sync(service)
    assert response.status_code == 409 and "click Connect first" in response.json()["detail"]
    assert (await sync(service, "nobody")).status_code == 404
    assert service.codat_calls() == []


async def test_sync_pushes_imported_changes(service: Service) -> None:
    await with_bank_feed(service)
    rows = (
        "cus-1,Acme Plumbing LLC,US,en,acc-0,Renamed by import,checking,1000000,USD,0,,,,\n"
        "cus-1,Acme Plumbing LLC,US,en,acc-5,New one,savings,555,USD,10,,,,\n"
        "cus-1,Acme Plumbing LLC,US,en,acc-6,New two,savings,666,USD,20,,,,\n"
    )
    assert (await post_import(service, HEADER + rows)).status_code == 200
    assert service.codat_calls() == []
    response = await sync(service)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "customer_id": "cus-1",
        "created": ["acc-5", "acc-6"],
        "already_in_codat": [],
        "updated": ["acc-0"],
        "failed": {},
        "codat_calls": 2,
    }
    assert sorted(m for m, _ in calls(service)) == ["PATCH", "POST"]
    in_codat = codat_connection(service).source_accounts
    assert in_codat["acc-0"].account_name == "Renamed by import" and "acc-6" in in_codat
    status = await status_of(service)
    assert status["counts"]["pending"] == 4 and all(a["in_sync"] for a in status["accounts"])
    service.sandbox.reset_calls()
    again = (await sync(service)).json()
    assert again["codat_calls"] == 0 and service.codat_calls() == []


async def test_sync_refuses_an_unlinked_connection(service: Service) -> None:
    await with_bank_feed(service)
    async with service.sessions() as session:
        await session.execute(update(BankFeed).values(connection_status="Unlinked"))
        await session.commit()
    response = await sync(service)
    assert response.status_code == 409 and "Unlinked" in response.json()["detail"]


async def test_sync_keeps_what_codat_confirmed_before_a_failure(faulty: FaultyService) -> None:
    service = faulty.service
    await with_bank_feed(service)
    rows = (
        "cus-1,Acme Plumbing LLC,US,en,acc-0,Renamed,checking,1000000,USD,0,,,,\n"
        "cus-1,Acme Plumbing LLC,US,en,acc-5,New one,savings,555,USD,10,,,,\n"
    )
    assert (await post_import(service, HEADER + rows)).status_code == 200
    faulty.fail(lose_response_for=lambda request: request.method == "PATCH")
    response = await sync(service)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "kept" in response.json()["detail"]
    async with service.sessions() as session:
        created = await session.get(SourceAccount, ("cus-1", "acc-5"))
        renamed = await session.get(SourceAccount, ("cus-1", "acc-0"))
    assert created is not None and created.is_pushed  # the batch create was kept
    assert renamed is not None and needs_rename(renamed)  # the rename is still to do
    faulty.recover()
    assert (await sync(service)).json()["updated"] == ["acc-0"]


# --- the list -------------------------------------------------------------------------------------


async def set_rows(service: Service, model: Any, where: Any, **values: Any) -> None:
    async with service.sessions() as session:
        await session.execute(update(model).where(where).values(**values))
        await session.commit()


async def fleet(service: Service) -> None:
    """a: no feed; b: PendingAuth; c: Linked, all connected; d: Linked, one disconnected."""
    await customer_with_accounts(service, "a")
    for customer_id in ("b", "c", "d"):
        await with_bank_feed(service, customer_id)
    for customer_id in ("c", "d"):
        link_in_quickbooks(service, customer_id, ["acc-0", "acc-1"])
        await status_of(service, customer_id, refresh="true")
    await set_rows(
        service,
        SourceAccount,
        (SourceAccount.customer_id == "d") & (SourceAccount.id == "acc-1"),
        codat_status="disconnected",
    )
    await put_customer(service, "e", country="GB")  # no accounts, no feed
    service.sandbox.reset_calls()


async def listed(service: Service, **params: Any) -> Any:
    response = await ops_get(service, "/ops/bank-feeds", **params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_rows_counts_and_summary(service: Service) -> None:
    await fleet(service)
    page = await listed(service)
    rows = {r["customer_id"]: r for r in page["items"]}
    assert list(rows) == ["a", "b", "c", "d", "e"] and page["next_cursor"] is None
    assert rows["a"]["connection_status"] is None and rows["a"]["account_count"] == 2
    assert rows["a"]["counts"]["not_pushed"] == 2 and rows["a"]["needs_customer_action"] is True
    assert rows["b"]["connection_status"] == "PendingAuth" and rows["b"]["counts"]["pending"] == 2
    assert rows["c"]["connected_count"] == 2 and rows["c"]["needs_customer_action"] is False
    assert rows["d"]["counts"]["disconnected"] == 1 and rows["d"]["connected_count"] == 1
    assert rows["e"]["account_count"] == 0 and rows["e"]["name"] == "Acme Plumbing LLC"
    assert page["summary"] == {
        "total_customers": 5,
        "by_connection_status": {"none": 2, "PendingAuth": 1, "Linked": 2},
        "connected_accounts": 3,
        "needs_customer_action": 3,
    }
    assert service.codat_calls() == []


async def test_list_filters(service: Service) -> None:
    await fleet(service)

    async def ids(**params: Any) -> list[str]:
        return [r["customer_id"] for r in (await listed(service, **params))["items"]]

    assert await ids(connection_status="Linked") == ["c", "d"]
    assert await ids(connection_status="PendingAuth") == ["b"]
    assert await ids(connection_status="none") == ["a", "e"]
    assert await ids(has_disconnected_accounts="true") == ["d"]
    assert await ids(has_disconnected_accounts="false") == ["a", "b", "c", "e"]
    assert await ids(needs_customer_action="true") == ["a", "b", "e"]
    assert await ids(needs_customer_action="false") == ["c", "d"]
    assert await ids(connection_status="Linked", has_disconnected_accounts="false") == ["c"]
    filtered = await listed(service, connection_status="Linked")
    assert filtered["summary"]["total_customers"] == 2
    assert filtered["summary"]["by_connection_status"] == {"Linked": 2}

    old = datetime(2020, 1, 1, tzinfo=UTC)
    for model in (Customer, BankFeed, SourceAccount):
        key = model.id if model is Customer else model.customer_id
        await set_rows(service, model, key != "c", updated_at=old)
    since = (old + timedelta(days=1)).isoformat()
    assert await ids(updated_since=since) == ["c"]
    await set_rows(
        service, SourceAccount, SourceAccount.customer_id == "a", updated_at=datetime.now(UTC)
    )
    assert await ids(updated_since=since) == ["a", "c"]
    assert await ids(updated_since="2020-01-02T00:00:00") == ["a", "c"]  # naive means UTC


async def test_needs_customer_action_filter_matches_the_status_page(service: Service) -> None:
    await fleet(service)
    await put_account(service, "c", "acc-new")  # Linked, but a new account is pending
    for row in (await listed(service))["items"]:
        status = await status_of(service, row["customer_id"])
        assert row["needs_customer_action"] == status["needs_customer_action"], row


async def test_pagination_is_stable_while_customers_are_added(service: Service) -> None:
    for n in range(7):
        await put_customer(service, f"cus-{n:02d}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await listed(service, **params)
        seen += [r["customer_id"] for r in page["items"]]
        if cursor is None:
            assert page["summary"]["total_customers"] == 7
        else:
            assert page["summary"] is None  # the first page carries it
        if len(seen) == 3:
            await put_customer(service, "cus-00a")  # lands before the cursor: not seen
            await put_customer(service, "cus-99")  # lands after it: seen once
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"cus-{n:02d}" for n in range(7)] + ["cus-99"]


async def test_list_parameters_are_checked(service: Service) -> None:
    for params, field in (
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor"),
        ({"connection_status": "Broken"}, "connection_status"),
        ({"updated_since": "yesterday"}, "updated_since"),
    ):
        response = await ops_get(service, "/ops/bank-feeds", **params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", field]


async def test_a_page_of_10000_customers_is_at_most_two_queries_and_no_codat(
    service: Service,
) -> None:
    rows = [HEADER] + [
        f"cus-{n:05d},Customer {n},US,en,acc-1,Checking,checking,{n},USD,1,,,,\n"
        for n in range(10000)
    ]
    assert (await post_import(service, "".join(rows))).status_code == 200
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = service.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = await listed(service, limit=100)
        second = await listed(service, limit=100, cursor=page["next_cursor"])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(page["items"]) == 100 and page["summary"]["total_customers"] == 10000
    assert page["items"][-1]["customer_id"] == "cus-00099"
    assert second["items"][0]["customer_id"] == "cus-00100"
    assert page["summary"]["by_connection_status"] == {"none": 10000}
    # first page: summary + page; next page: the page alone
    assert all("GROUP BY" in s for s in statements) and len(statements) == 3
    assert second["summary"] is None
    assert service.codat_calls() == []

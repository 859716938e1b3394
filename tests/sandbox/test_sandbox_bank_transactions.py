"""Create bank transactions and its push operations: asynchronous, idempotent, and as strict as
QuickBooks Online Bank Feeds (every `api` response is also checked against Codat's spec)."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.sandbox.bank_transactions import (
    ACCOUNT_NOT_CONNECTED,
    AMOUNT_SIGN,
    CHRONOLOGICAL_ORDER,
    DUPLICATE_ID,
    FEED_START_DATE,
    FUTURE_DATE,
    HISTORY_WINDOW,
    REQUIRED,
    TARGET_ACCOUNT_DISCONNECTED,
    TRANSACTION_TYPE,
    parse_local_datetime,
)
from app.sandbox.emulator import Sandbox
from app.sandbox.state import ConnectionStatus, SourceAccountStatus
from tests.sandbox.sandbox_oas import assert_valid
from tests.sandbox.sandbox_support import ConnectionRef, WebhookReceiver
from tests.sandbox.sandbox_transactions import (
    connect,
    create_path,
    dumps,
    push_body,
    settle,
    transaction,
    write,
)
from tests.sandbox.test_sandbox_webhooks import verify


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"push_delay": timedelta(minutes=5)}


@pytest.fixture
async def ref(new_connection, sandbox: Sandbox) -> ConnectionRef:
    connection: ConnectionRef = await new_connection(accounts=2)
    connect(sandbox, connection, ["acc-1", "acc-2"], days_back=5)
    return connection


def _today(sandbox: Sandbox) -> date:
    return sandbox.clock.today()


async def test_a_write_is_pending_then_succeeds_after_the_delay(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)
    body = push_body(
        [
            transaction("t-1", today - timedelta(days=1), "-12.50", "987.50"),
            transaction("t-2", today, "100.25", "1087.75", kind="Credit"),
        ]
    )

    created = await write(api, ref, body)

    assert created.status_code == 200
    push = created.json()
    assert "data" not in push
    assert push["status"] == "Pending"
    assert push["statusCode"] == 202
    assert push["dataType"] == "bankTransactions"
    assert push["companyId"] == ref.company_id
    assert push["dataConnectionKey"] == ref.connection_id
    assert "completedOnUtc" not in push
    key = push["pushOperationKey"]
    assert (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()["status"] == "Pending"

    await api.post("/_sandbox/clock/advance", json={"seconds": 300})

    done = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert done["status"] == "Success"
    assert done["statusCode"] == 200
    assert done["completedOnUtc"].endswith("Z")
    assert done["validation"] == {"errors": [], "warnings": []}
    accounts = {a["id"]: a for a in (await api.get(f"{ref.accounts}")).json()}
    assert accounts["acc-1"]["balance"] == 1087.75  # the last transaction's balance
    ledger = (await api.get("/_sandbox/ledger", params={"accountId": "acc-1"})).json()
    [account] = ledger["accounts"]
    assert account["balance"] == "1087.75"
    assert [w["id"] for w in account["written"]] == ["t-1", "t-2"]
    assert [(r["id"], r["received"], r["writtenBy"]) for r in account["received"]] == [
        ("t-1", 1, key),
        ("t-2", 1, key),
    ]


async def test_a_write_settles_on_its_own_without_another_request(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    sandbox.writes.delay = timedelta(milliseconds=50)
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])
    key = (await write(api, ref, body)).json()["pushOperationKey"]

    push = sandbox.writes.push(ref.company_id, key)
    for _ in range(500):  # polled with a deadline: the sandbox's own timer settles it
        if push.status.value != "Pending":
            break
        await asyncio.sleep(0.02)

    assert push.status.value == "Success"


async def test_amounts_are_kept_exactly_as_sent(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    body = push_body([transaction("t-1", _today(sandbox), "100.25000000000001", "0.1")])
    assert b"100.25000000000001" in dumps(body)

    await write(api, ref, body)
    await settle(api)

    [written] = (
        sandbox.store.connection(ref.company_id, ref.connection_id).source_accounts["acc-1"].written
    )
    assert written.transaction.amount == Decimal("100.25000000000001")
    assert written.transaction.balance == Decimal("0.1")


async def test_the_same_idempotency_key_replays_the_same_write(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])
    headers = {"Idempotency-Key": "3c1e5a1e-8a57-4e0b-9d35-4a1c1f7f1a01"}

    first = await write(api, ref, body, headers=headers)
    again = await write(api, ref, body, headers=headers)
    other_body = push_body([transaction("t-2", _today(sandbox), "-1", "94")])
    other = await write(api, ref, other_body, headers=headers)

    assert again.json()["pushOperationKey"] == first.json()["pushOperationKey"]
    assert other.status_code == 422
    history = (await api.get(f"/companies/{ref.company_id}/push")).json()
    assert history["totalResults"] == 1


async def test_push_history_is_paged_and_filtered(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)
    for n in range(3):
        body = push_body([transaction(f"t-{n}", today, "-1", str(10 - n))])
        assert (await write(api, ref, body)).status_code == 200
    await settle(api)
    bad = push_body([transaction("t-9", today + timedelta(days=1), "-1", "1")])
    failed_key = (await write(api, ref, bad)).json()["pushOperationKey"]
    await settle(api)
    history = f"/companies/{ref.company_id}/push"

    first = (await api.get(history, params={"pageSize": 2})).json()
    second = (await api.get(history, params={"pageSize": 2, "page": 2})).json()
    failed = (await api.get(history, params={"query": "status=Failed"})).json()
    newest = (await api.get(history, params={"orderBy": "-requestedOnUtc"})).json()

    assert first["totalResults"] == 4 and len(first["results"]) == 2
    assert "next" in first["_links"] and "next" not in second["_links"]
    assert [p["pushOperationKey"] for p in failed["results"]] == [failed_key]
    assert newest["results"][0]["pushOperationKey"] == failed_key
    assert (await api.get(history, params={"query": "colour=blue"})).status_code == 400


async def test_an_unknown_push_operation_or_account_is_404(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    missing = await api.get(
        f"/companies/{ref.company_id}/push/6f1c1a52-0d5e-4f4e-9c1e-1a2b3c4d5e6f"
    )
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")], account="acc-9")
    unknown_account = await write(api, ref, body)

    assert missing.status_code == 404
    assert unknown_account.status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "validator"),
    [
        ({"transactions": []}, "accountId", "Required"),
        ({"accountId": "acc-2", "transactions": []}, "accountId", "AccountId"),
        ({"accountId": "acc-1"}, "transactions", "Required"),
        ({"accountId": "acc-1", "transactions": []}, "transactions", "MinItems"),
        (
            {"accountId": "acc-1", "transactions": [{"amount": "1"}]},
            "transactions[0].amount",
            "Type",
        ),
        (
            {"accountId": "acc-1", "transactions": [{"date": "22/08/2023"}]},
            "transactions[0].date",
            "Type",
        ),
        (
            {"accountId": "acc-1", "transactions": [{"transactionType": "Refund"}]},
            "transactions[0].transactionType",
            "Enum",
        ),
        (
            {"accountId": "acc-1", "transactions": [{"memo": "x"}]},
            "transactions[0].memo",
            "UnknownField",
        ),
    ],
)
async def test_a_malformed_body_is_400_naming_the_field(
    api: httpx.AsyncClient, ref: ConnectionRef, body: dict[str, Any], field: str, validator: str
) -> None:
    response = await api.post(create_path(ref), json=body)

    assert response.status_code == 400
    errors = response.json()["validation"]["errors"]
    assert {"itemId": field, "validatorName": validator} in [
        {"itemId": e["itemId"], "validatorName": e["validatorName"]} for e in errors
    ]
    assert (await api.get(f"/companies/{ref.company_id}/push")).json()["totalResults"] == 0


async def test_more_than_1000_transactions_are_refused(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)
    items = [transaction(f"t-{n}", today, "-1", str(2000 - n)) for n in range(1001)]

    response = await write(api, ref, push_body(items))

    assert response.status_code == 400
    [error] = response.json()["validation"]["errors"]
    assert error["itemId"] == "transactions"
    assert error["validatorName"] == "MaxItems"
    assert "at most 1000" in error["message"]


async def test_1000_transactions_are_taken(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)
    items = [transaction(f"t-{n}", today, "-1", str(2000 - n)) for n in range(1000)]

    key = (await write(api, ref, push_body(items))).json()["pushOperationKey"]

    assert await settle(api) == 1
    assert sandbox.writes.push(ref.company_id, key).status.value == "Success"
    assert await settle(api) == 0


def _days(sandbox: Sandbox, n: int) -> date:
    return _today(sandbox) + timedelta(days=n)


RULES = [
    # (what is wrong, the transaction, validatorName, words of the message)
    ("future date", dict(day=1), FUTURE_DATE, "Future-dated transactions cannot be written"),
    ("older than 7 days", dict(day=-8), HISTORY_WINDOW, "older than 7 days"),
    ("before the feed start", dict(day=-6), FEED_START_DATE, "before the feed start date"),
    ("no balance", dict(balance=None), REQUIRED, "'balance' is required"),
    ("no description", dict(description=None), REQUIRED, "'description' is required"),
    ("no amount", dict(amount=None), REQUIRED, "'amount' is required"),
    ("a positive Debit", dict(amount="5", kind="Debit"), AMOUNT_SIGN, "A Debit must have a neg"),
    ("a negative Credit", dict(amount="-5", kind="Credit"), AMOUNT_SIGN, "A Credit must"),
    ("a zero Debit", dict(amount="0", kind="Debit"), AMOUNT_SIGN, "A Debit must have a neg"),
    ("a type QBO ignores", dict(kind="Fee"), TRANSACTION_TYPE, "Credit, Debit or Unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "validator", "words"), RULES, ids=[r[0] for r in RULES])
async def test_a_write_breaking_a_qbo_rule_fails_naming_the_transaction(
    api: httpx.AsyncClient,
    sandbox: Sandbox,
    ref: ConnectionRef,
    case: str,
    change: dict[str, Any],
    validator: str,
    words: str,
) -> None:
    today = _today(sandbox)
    settings = {"day": 0, "amount": "-5", "balance": "95", "kind": "Debit", **change}
    bad = transaction(
        "t-bad",
        today + timedelta(days=settings.pop("day")),
        settings.pop("amount"),
        settings.pop("balance"),
        **settings,
    )

    key = (await write(api, ref, push_body([bad]))).json()["pushOperationKey"]
    await settle(api)

    push = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert push["status"] == "Failed"
    assert push["statusCode"] == 400
    assert push["errorMessage"]
    errors = push["validation"]["errors"]
    assert {e["itemId"] for e in errors} == {"t-bad"}
    [error] = [e for e in errors if e["validatorName"] == validator]
    assert words in error["message"]
    account = sandbox.store.connection(ref.company_id, ref.connection_id).source_accounts["acc-1"]
    assert account.written == []  # nothing of a failed write is kept
    assert account.balance == Decimal("1250.75")
    assert {i: e.received for i, e in account.ledger.items()} == {"t-bad": 1}


async def test_a_transaction_older_than_the_newest_written_fails(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    await write(api, ref, push_body([transaction("t-1", _days(sandbox, 0), "-5", "95")]))
    await settle(api)
    late = push_body(
        [
            transaction("t-2", _days(sandbox, 0), "-1", "94"),
            transaction("t-3", _days(sandbox, -1), "-1", "93"),
        ]
    )

    key = (await write(api, ref, late)).json()["pushOperationKey"]
    await settle(api)

    push = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert [(e["itemId"], e["validatorName"]) for e in push["validation"]["errors"]] == [
        ("t-3", CHRONOLOGICAL_ORDER),
        ("t-3", CHRONOLOGICAL_ORDER),
    ]
    messages = [e["message"] for e in push["validation"]["errors"]]
    assert "older than the most recent transaction in the account" in messages[0]
    assert "sorted by date, earliest first" in messages[1]


async def test_transaction_ids_are_unique_across_the_company(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)
    await write(api, ref, push_body([transaction("t-1", today, "-5", "95")]))
    await settle(api)
    twice = push_body([transaction("t-1", today, "-5", "95")], account="acc-2")
    within = push_body(
        [transaction("t-7", today, "-5", "95"), transaction("t-7", today, "-1", "94")]
    )

    other_account = (await write(api, ref, twice)).json()
    repeated = (await write(api, ref, within)).json()
    await settle(api)

    for push, item in ((other_account, "t-1"), (repeated, "t-7")):
        done = sandbox.writes.push(ref.company_id, push["pushOperationKey"])
        assert done.status.value == "Failed"
        assert [(e.item_id, e.validator) for e in done.errors] == [(item, DUPLICATE_ID)]
        assert "already exists for this company" in done.errors[0].message
    ledger = (await api.get("/_sandbox/ledger", params={"accountId": "acc-1"})).json()
    received = {r["id"]: r["received"] for r in ledger["accounts"][0]["received"]}
    assert received == {"t-1": 1, "t-7": 2}


async def test_the_ledger_shows_the_most_writes_an_account_had_pending_at_once(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    today = _today(sandbox)

    async def most_open(account: str) -> int:
        ledger = (await api.get("/_sandbox/ledger", params={"accountId": account})).json()
        return int(ledger["accounts"][0]["mostOpenWrites"])

    await write(api, ref, push_body([transaction("t-1", today, "-5", "95")]))
    await settle(api)
    await write(api, ref, push_body([transaction("t-2", today, "-5", "90")]))
    other = push_body([transaction("t-3", today, "-5", "95")], account="acc-2")
    await write(api, ref, other)
    assert (await most_open("acc-1"), await most_open("acc-2")) == (1, 1)  # one after another

    await write(api, ref, push_body([transaction("t-4", today, "-5", "85")]))
    await settle(api)
    assert (await most_open("acc-1"), await most_open("acc-2")) == (2, 1)


@pytest.mark.parametrize("state", ["disconnected", "disconnecting", "unlinked", "pending"])
async def test_a_write_to_an_account_that_is_not_connected_fails(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef, state: str
) -> None:
    connection = sandbox.store.connection(ref.company_id, ref.connection_id)
    account = connection.source_accounts["acc-1"]
    if state == "disconnected":
        account.status = SourceAccountStatus.DISCONNECTED
    elif state == "disconnecting":  # the SMB disconnected it in QBO; Codat says so in 10 days
        sandbox.bank_feeds.request_disconnect(connection, "acc-1")
    elif state == "unlinked":
        connection.status = ConnectionStatus.UNLINKED
    else:
        account.status = SourceAccountStatus.PENDING
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])

    key = (await write(api, ref, body)).json()["pushOperationKey"]
    sandbox.settle(all_writes=True)

    push = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert push["status"] == "Failed"
    [error] = push["validation"]["errors"]
    assert error["itemId"] == "acc-1"
    expected = TARGET_ACCOUNT_DISCONNECTED if state == "disconnecting" else ACCOUNT_NOT_CONNECTED
    assert error["validatorName"] == expected
    assert push["errorMessage"] == error["message"]
    assert account.written == []


@pytest.mark.parametrize("config_overrides", [{"push_delay": timedelta(minutes=5)}])
async def test_an_injected_timeout_ends_timed_out_but_the_write_lands(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    assert (await api.put("/_sandbox/faults", json={"push_timeout_rate": 1.0})).status_code == 200
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])

    key = (await write(api, ref, body)).json()["pushOperationKey"]
    await settle(api)

    push = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert push["status"] == "TimedOut"
    assert push["errorMessage"]
    ledger = (await api.get("/_sandbox/ledger", params={"accountId": "acc-1"})).json()
    assert [w["id"] for w in ledger["accounts"][0]["written"]] == ["t-1"]


async def test_a_write_slower_than_its_timeout_times_out_then_lands(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    sandbox.writes.delay = timedelta(minutes=3)
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])
    created = await write(api, ref, body, params={"timeoutInMinutes": 2})
    key = created.json()["pushOperationKey"]
    account = sandbox.store.connection(ref.company_id, ref.connection_id).source_accounts["acc-1"]

    await api.post("/_sandbox/clock/advance", json={"seconds": 120})
    timed_out = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    written_at_timeout = list(account.written)
    await api.post("/_sandbox/clock/advance", json={"seconds": 60})
    later = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()

    assert created.json()["timeoutInMinutes"] == 2
    assert timed_out["status"] == "TimedOut"
    assert "may still be written" in timed_out["errorMessage"]
    assert written_at_timeout == []
    assert later == timed_out  # the status stays; the write lands all the same
    assert [w.transaction.id for w in account.written] == ["t-1"]
    assert account.balance == Decimal("95")
    await sandbox.webhooks.drain()
    events = [d.event_type for d in sandbox.webhooks.deliveries if ".write." in d.event_type]
    assert events == ["bankTransactions.write.unsuccessful"]  # once, at the timeout


@pytest.mark.parametrize(
    "params", [{"timeoutInMinutes": "soon"}, {"allowSyncOnPushComplete": "maybe"}]
)
async def test_bad_query_parameters_are_400(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef, params: dict[str, str]
) -> None:
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])

    assert (await write(api, ref, body, params=params)).status_code == 400


async def test_injected_faults_reach_the_write_endpoint(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    faults = {
        "status_rates": {"503": 1.0},
        "routes": [create_path(ref).replace(ref.company_id, "*")],
    }
    assert (await api.put("/_sandbox/faults", json=faults)).status_code == 200
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])

    response = await write(api, ref, body)

    assert response.status_code == 503
    assert sandbox.store.company(ref.company_id).pushes == {}


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "push_delay": timedelta(minutes=5),
            "webhook_max_delay": 0.2,
            "webhook_duplicate_rate": 0.5,
            "webhook_seed": 7,
        }
    ],
)
async def test_write_webhooks_are_signed_and_arrive_out_of_order_and_some_twice(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef, receiver: WebhookReceiver
) -> None:
    today = _today(sandbox)
    keys = []
    for n in range(8):
        items = [transaction(f"t-{n}", today + timedelta(days=n % 2), "-1", str(100 - n))]
        keys.append((await write(api, ref, push_body(items))).json()["pushOperationKey"])
        await settle(api)  # the odd ones are future-dated: they fail

    await sandbox.webhooks.drain()

    writes = [d for d in sandbox.webhooks.deliveries if ".write." in d.event_type]
    assert [d.envelope["payload"]["id"] for d in writes] == keys  # type: ignore[index]
    assert [d.event_type for d in writes] == [
        f"bankTransactions.write.{'unsuccessful' if n % 2 else 'successful'}" for n in range(8)
    ]
    arrived = []
    for headers, body in receiver.requests:
        verify(headers, body)
        envelope = json.loads(body)
        if ".write." in envelope["eventType"]:
            assert_valid("platform", "/components/schemas/DataTypeWriteWebhook", envelope)
            arrived.append(headers["webhook-id"])
    emitted = [d.message_id for d in writes]
    first_arrivals = list(dict.fromkeys(arrived))
    assert sorted(first_arrivals) == sorted(emitted)
    assert first_arrivals != emitted
    assert len(arrived) > len(emitted)


@pytest.mark.parametrize(
    ("sent", "local"),
    [
        ("2023-08-22", "2023-08-22T00:00:00"),
        ("2023-08-22T10:21:00", "2023-08-22T10:21:00"),
        ("2023-08-22T22:21:00-05:00", "2023-08-22T22:21:00"),  # the offset is ignored
        ("2023-08-22T01:21:00Z", "2023-08-22T01:21:00"),
        ("2023-08-22T10:21:00.1234567", "2023-08-22T10:21:00.123456"),
    ],
)
def test_a_date_is_a_local_date_time_whatever_offset_comes_with_it(sent: str, local: str) -> None:
    assert parse_local_datetime(sent).isoformat() == local


@pytest.mark.parametrize("sent", ["20230822", "2023-13-01", "22/08/2023", "2023-08-22 10:21"])
def test_a_date_that_is_not_iso_8601_is_refused(sent: str) -> None:
    with pytest.raises(ValueError):
        parse_local_datetime(sent)


@pytest.mark.parametrize("config_overrides", [{"push_delay": timedelta(minutes=5)}])
async def test_an_injected_timeout_can_be_one_that_never_lands(
    api: httpx.AsyncClient, sandbox: Sandbox, ref: ConnectionRef
) -> None:
    faults = {"push_timeout_rate": 1.0, "push_timeout_lost_rate": 1.0}
    assert (await api.put("/_sandbox/faults", json=faults)).status_code == 200
    body = push_body([transaction("t-1", _today(sandbox), "-5", "95")])

    key = (await write(api, ref, body)).json()["pushOperationKey"]
    await settle(api)

    push = (await api.get(f"/companies/{ref.company_id}/push/{key}")).json()
    assert push["status"] == "TimedOut"
    ledger = (await api.get("/_sandbox/ledger", params={"accountId": "acc-1"})).json()
    [entry] = ledger["accounts"][0]["received"]
    assert entry["received"] == 1 and entry["writtenBy"] is None  # received, never written
    assert ledger["accounts"][0]["written"] == []

"""Bulk import: CSV or JSON, every row checked first, any bad row writes nothing."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.cli import main
from app.models import Customer, SourceAccount
from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET, Service, _truncate
from tests.ops_api import ops_get, with_bank_feed

HEADER = (
    "customer_id,name,country,locale,account_id,accountName,accountType,accountNumber,"
    "currency,balance,sortCode,routingInfo.bankCode,routingInfo.type,accountInfo.nickname\n"
)
GOOD_CSV = HEADER + (
    'cus-1,"Acme Plumbing, LLC",US,en,acc-1,Operating,checking,111,USD,1500.25,,021001088,aba,\n'
    'cus-1,"Acme Plumbing, LLC",US,en,acc-2,"Card ""Gold""",creditCard,222,USD,-99.9,,,,Gold\n'
    "cus-2,Boulangerie Tremblay,CA,fr,acc-1,Compte courant,savings,333,CAD,0,,,,\n"
    "cus-3,Just A Customer,GB,en,,,,,,,,,,\n"
)


async def post_import(
    service: Service, body: str | bytes, media_type: str = "text/csv"
) -> httpx.Response:
    return await service.client.post(
        "/ops/customers:import",
        content=body,
        headers={**service.ops_headers, "Content-Type": media_type},
    )


async def counts(service: Service) -> tuple[int, int]:
    async with service.sessions() as session:
        customers = await session.scalar(select(func.count()).select_from(Customer))
        accounts = await session.scalar(select(func.count()).select_from(SourceAccount))
    return customers or 0, accounts or 0


def errors_by_line(response: httpx.Response) -> set[tuple[int, str]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all({"loc", "msg", "type", "line", "row", "field"} <= set(e) for e in detail)
    assert all(e["loc"] == ["body", e["line"], e["field"]] for e in detail)
    return {(e["line"], e["field"]) for e in detail}


async def test_csv_import_creates_then_counts_unchanged_and_updated(service: Service) -> None:
    response = await post_import(service, GOOD_CSV)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "rows": 4,
        "customers": {"created": 3, "updated": 0, "unchanged": 0},
        "accounts": {"created": 3, "updated": 0, "unchanged": 0},
    }
    card = (await ops_get(service, "/ops/customers/cus-1/accounts/acc-2")).json()
    assert card["accountName"] == 'Card "Gold"' and card["balance"] == "-99.90"
    assert card["accountInfo"] == {
        "nickname": "Gold",
        "description": None,
        "accountOpenDate": None,
        "availableBalance": None,
    }
    operating = (await ops_get(service, "/ops/customers/cus-1/accounts/acc-1")).json()
    assert operating["routingInfo"] == {"bankCode": "021001088", "type": "aba"}
    customer = (await ops_get(service, "/ops/customers/cus-2")).json()
    assert customer["name"] == "Boulangerie Tremblay" and customer["locale"] == "fr"
    assert service.codat_calls() == []  # Codat hears on the next connect or sync

    again = await post_import(service, GOOD_CSV)
    assert again.json()["customers"] == {"created": 0, "updated": 0, "unchanged": 3}
    assert again.json()["accounts"] == {"created": 0, "updated": 0, "unchanged": 3}

    changed = GOOD_CSV.replace("Compte courant,savings,333,CAD,0", "Épargne,savings,333,CAD,12")
    changed = changed.replace("Just A Customer,GB", "Just A Customer,IE")
    result = (await post_import(service, changed)).json()
    assert result["customers"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert result["accounts"] == {"created": 0, "updated": 1, "unchanged": 2}
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-2", "acc-1"))
    assert account is not None and account.account_name == "Épargne"
    assert account.balance == Decimal("12")


async def test_json_import_with_nested_fields_and_exact_numbers(service: Service) -> None:
    rows = """[
      {"customer_id": "cus-1", "name": "Acme", "country": "US", "locale": "en",
       "account_id": "acc-1", "accountName": "Operating", "accountType": "checking",
       "accountNumber": 12345670, "currency": "USD", "balance": 0.1,
       "routingInfo": {"bankCode": "021001088", "type": "rtn"},
       "accountInfo": {"description": "Main", "availableBalance": 12345678901234.5678}},
      {"customer_id": "cus-1", "name": "Acme", "country": "US",
       "account_id": "acc-2", "accountName": "Loan", "accountType": "loan",
       "accountNumber": "L-1", "currency": "USD", "balance": "-250000"}
    ]"""
    response = await post_import(service, rows, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["accounts"]["created"] == 2
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-1", "acc-1"))
    assert account is not None
    assert account.balance == Decimal("0.1") and account.account_number == "12345670"
    assert account.account_info == {
        "description": "Main",
        "availableBalance": "12345678901234.5678",
    }


async def test_bad_csv_rows_are_all_reported_and_nothing_is_written(service: Service) -> None:
    bad = HEADER + (
        "cus-1,Acme,US,en,acc-1,Operating,checking,111,USD,1.00,,,,\n"  # line 2: fine
        "cus-1,Acme,US,en,acc-2,Savings,savings,222,usd,1.00,,,,\n"  # 3: currency
        "cus-1,Acme,US,en,acc-3,,checking,333,USD,1.00,,,,\n"  # 4: accountName
        "bad id,Acme,US,en,acc-4,X,checking,444,USD,1.00,,,,\n"  # 5: customer_id
        "cus-1,Other Name,US,en,acc-5,X,checking,555,USD,1.00,,,,\n"  # 6: name differs
        "cus-1,Acme,US,en,acc-1,Again,checking,111,USD,1.00,,,,\n"  # 7: duplicate
        "cus-2,Acme,US,en,acc-1,X,checking,1,GBP,1.00,,,,\n"  # 8: GBP needs sortCode
        "cus-3,Acme,US,en,acc-1,X,checking,1,USD,1.23456,,,,\n"  # 9: balance
        "cus-4,Acme,US,en,acc-1,X,checking,1,USD,1,,1,nope,\n"  # 10: routing type
        "cus-5,Acme <b>,XX,de,,,,,,,,,,\n"  # 11: name, country, locale
        "cus-6,Acme,US,en,,Orphan,,,,,,,,\n"  # 12: account fields without id
    )
    response = await post_import(service, bad)
    assert errors_by_line(response) == {
        (3, "currency"),
        (4, "accountName"),
        (5, "customer_id"),
        (6, "name"),
        (7, "account_id"),
        (8, "sortCode"),
        (9, "balance"),
        (10, "routingInfo.type"),
        (11, "name"),
        (11, "country"),
        (11, "locale"),
        (12, "account_id"),
    }
    assert await counts(service) == (0, 0)


async def test_bad_json_rows_report_the_line_each_row_starts_on(service: Service) -> None:
    good = {"customer_id": "c1", "name": "Acme", "country": "US"}
    text = (
        "[\n"
        + ",\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "account_id": "a1", "accountName": "X"}, indent=2),
                json.dumps({**good, "country": "Canada"}),
                json.dumps({**good, "shoeSize": 9}),
                "42",
            ]
        )
        + "\n]"
    )
    response = await post_import(service, text, "application/json")
    # Rows start on lines 2, 3, 10, 11 and 12; the second is missing accountType and more.
    lines = errors_by_line(response)
    assert {(3, "accountType"), (10, "country"), (11, "shoeSize"), (12, "row")} <= lines
    assert {line for line, _ in lines} == {3, 10, 11, 12}
    assert await counts(service) == (0, 0)
    account = {**good, "account_id": "a1", "accountName": "X", "accountType": "checking"}
    account |= {"accountNumber": "1", "currency": "USD", "balance": 1}
    one_line = json.dumps([good, {**good, "country": "Canada"}, account, account])
    response = await post_import(service, one_line, "application/json")
    assert errors_by_line(response) == {(1, "country"), (1, "account_id")}  # all on line 1
    assert sorted(e["row"] for e in response.json()["detail"]) == [2, 4]  # so rows tell


@pytest.mark.parametrize(
    ("body", "media_type", "expected"),
    [
        ("customer_id,name,country,colour\nc1,A,US,red\n", "text/csv", {(1, "colour")}),
        ("customer_id,name\nc1,A\n", "text/csv", {(1, "country")}),
        ("", "text/csv", {(1, "file")}),
        ("customer_id,name,country\n", "text/csv", {(1, "file")}),
        ("[1, 2", "application/json", {(1, "file")}),
        ('{"rows": []}', "application/json", {(1, "file")}),
        (b"customer_id,name,country\nc1,\xff,US\n", "text/csv", {(1, "file")}),
    ],
)
async def test_unreadable_files_are_422(
    service: Service, body: str | bytes, media_type: str, expected: set[tuple[int, str]]
) -> None:
    assert errors_by_line(await post_import(service, body, media_type)) == expected


async def test_other_media_types_are_415(service: Service) -> None:
    response = await post_import(service, GOOD_CSV, "application/xml")
    assert response.status_code == 415 and "text/csv" in response.json()["detail"]


async def test_import_refuses_a_change_codat_cannot_make(service: Service) -> None:
    await with_bank_feed(service, accounts=1)  # acc-0 is in Codat as checking, 1000000, USD
    row = "cus-1,Acme Plumbing LLC,US,en,acc-0,Account 0,checking,{number},USD,5,,,,\n"
    response = await post_import(service, HEADER + row.format(number="7777"))
    assert errors_by_line(response) == {(2, "accountNumber")}
    response = await post_import(service, HEADER + row.format(number="1000000"))
    assert response.status_code == 200 and response.json()["accounts"]["updated"] == 1
    assert service.codat_calls() == []


async def test_ten_thousand_accounts(service: Service) -> None:
    lines = [HEADER]
    for c in range(5000):
        for a in range(2):
            lines.append(
                f"cus-{c:05d},Customer {c},US,en,acc-{a},Account {a},checking,{c}{a},"
                f"USD,{c}.{a:02d},,,,\n"
            )
    body = "".join(lines)
    response = await post_import(service, body)
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {
        "rows": 10000,
        "customers": {"created": 5000, "updated": 0, "unchanged": 0},
        "accounts": {"created": 10000, "updated": 0, "unchanged": 0},
    }
    assert await counts(service) == (5000, 10000)
    again = await post_import(service, body.replace("Account 1,", "Account One,"))
    assert again.json()["accounts"] == {"created": 0, "updated": 5000, "unchanged": 5000}
    async with service.sessions() as session:
        account = await session.get(SourceAccount, ("cus-04999", "acc-1"))
    assert account is not None and account.balance == Decimal("4999.01")
    assert account.account_name == "Account One"


# --- the CLI -----------------------------------------------------------------------------------


def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CODAT_API_KEY", "")
    monkeypatch.setenv("CONNECT_TOKEN_SECRET", CONNECT_SECRET)
    monkeypatch.setenv("OPS_API_TOKEN", OPS_TOKEN)
    monkeypatch.setenv("CODAT_WEBHOOK_SECRET", WEBHOOK_SECRET)


def stored_counts(database_url: str) -> tuple[int, int]:
    from app.db import create_engine

    async def count() -> tuple[int, int]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            customers = await conn.scalar(select(func.count()).select_from(Customer))
            accounts = await conn.scalar(select(func.count()).select_from(SourceAccount))
        await engine.dispose()
        return customers or 0, accounts or 0

    return asyncio.run(count())


def test_cli_imports_a_csv_file(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(_truncate(database_url))
    cli_env(monkeypatch, database_url)
    path = tmp_path / "customers.csv"
    path.write_text(GOOD_CSV)
    assert main(["import", str(path), "--dry-run"]) == 0
    assert "Would import 4 rows" in capsys.readouterr().out
    assert stored_counts(database_url) == (0, 0)
    assert main(["import", str(path)]) == 0
    captured = capsys.readouterr()
    assert "Imported 4 rows: customers 3 created" in captured.out
    assert "accounts 3 created" in captured.out
    assert "writing" in captured.err  # the tqdm progress bar
    assert stored_counts(database_url) == (3, 3)


def test_cli_reports_bad_rows_and_writes_nothing(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(_truncate(database_url))
    cli_env(monkeypatch, database_url)
    path = tmp_path / "customers.json"
    rows = [
        {"customer_id": "c1", "name": "Acme", "country": "US"},
        {"customer_id": "c2", "name": "Acme", "country": "ZZ"},
    ]
    path.write_text(json.dumps(rows, indent=1))
    assert main(["import", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 7 (row 2): country:" in out and "Nothing was written: 1 error(s)" in out
    assert stored_counts(database_url) == (0, 0)
    assert main(["import", str(tmp_path / "customers.txt")]) == 2

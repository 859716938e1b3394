"""`bankfeeds import-transactions`: bad rows by line and field, restartable, memory flat."""

from __future__ import annotations

import io
import json
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db import create_engine, session_factory, utcnow
from app.models import BankTransaction
from app.transactions.cli import run_import
from tests.conftest import _truncate, make_settings
from tests.factories import add_customer

HEADER = (
    "customer_id,account_id,id,date,description,amount,balance,transactionType,"
    "counterparty,reference\n"
)


async def count(url: str) -> int:
    engine = create_engine(url)
    async with session_factory(engine)() as session:
        found = await session.scalar(select(func.count()).select_from(BankTransaction))
    await engine.dispose()
    return int(found or 0)


@pytest.fixture
async def database(database_url: str) -> str:
    await _truncate(database_url)
    engine = create_engine(database_url)
    await add_customer(session_factory(engine), "cus-1", accounts=2)
    await engine.dispose()
    return database_url


async def test_bad_rows_by_line_and_field_and_a_second_run_stores_nothing(
    database: str, tmp_path: Path
) -> None:
    day = (utcnow() - timedelta(days=1)).date().isoformat()  # yesterday wherever "today" is
    file = tmp_path / "ledger.csv"
    file.write_text(
        HEADER
        + f"cus-1,cus-1-acc-0,b-1,{day},Coffee,-4.50,95.50,Debit,Cafe,\n"
        + f"cus-1,cus-1-acc-0,b-2,{day},Refund,4.50,100.00,Debit,,\n"  # line 3: sign
        + f"cus-1,cus-1-acc-1,b-3,{day},Deposit,250.00,350.00,Credit,,R-1\n"
        + f"cus-1,nope,b-4,{day},Deposit,1.00,2.00,Credit,,\n"  # line 5: no account
        + "cus-1,cus-1-acc-0,b-5,not-a-date,Fee,-1,99,Debit,,\n"  # line 6: date
    )
    settings = make_settings(database)
    out = io.StringIO()
    assert await run_import(settings, file, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("line 3: amount: A Debit must have a negative amount")
    assert lines[1].startswith("line 6: date:")
    assert lines[2].startswith("line 5: account_id:")
    assert lines[-1] == "Read 5 rows: 2 stored, 0 already stored, 3 bad."
    again = io.StringIO()
    assert await run_import(settings, file, out=again) == 1
    assert again.getvalue().splitlines()[-1] == "Read 5 rows: 0 stored, 2 already stored, 3 bad."
    assert await count(database) == 2


@pytest.mark.slow
async def test_a_large_json_lines_file_streams_in_flat_memory(
    database: str, tmp_path: Path
) -> None:
    day = (utcnow() - timedelta(days=1)).date().isoformat()
    file = tmp_path / "ledger.jsonl"
    rows = 30_000
    with file.open("w") as handle:
        for n in range(rows):
            row = {
                "customer_id": "cus-1", "account_id": f"cus-1-acc-{n % 2}", "id": f"t-{n}",
                "date": day, "description": f"Payment {n} " + "x" * 200, "amount": -1.25,
                "balance": 1000, "transactionType": "Debit",
            }  # fmt: skip
            handle.write(json.dumps(row) + "\n")
    tracemalloc.start()
    assert await run_import(make_settings(database), file, out=io.StringIO()) == 0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert file.stat().st_size > 8_000_000
    assert peak < 40_000_000, f"peak {peak} bytes: the file was not streamed"
    assert await count(database) == rows

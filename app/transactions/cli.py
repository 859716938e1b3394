"""`bankfeeds import-transactions FILE`: cleared transactions from CSV or JSON Lines, a customer
and account on each row, streamed (memory stays flat whatever the file's size), many accounts'
rows stored in one unit of work, with a progress bar. Bad rows are reported by line and field
and skipped; running the same file again stores nothing twice (each transaction is idempotent
per id)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from app.settings import Settings, load_settings

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
YIELD_EVERY = 100  # rows read between turns of the store in flight
MAX_BUFFERED = 2_500  # rows held in memory, across accounts, stored in one unit of work
OPTIONAL = ("counterparty", "reference")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "import-transactions",
        help="load cleared bank transactions from CSV or JSON Lines",
        description="Columns (or keys): customer_id, account_id, id, date, description, amount, "
        "balance, transactionType, and optionally counterparty and reference. Bad rows are "
        "reported and skipped; the same file can be run again safely.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--format", choices=["csv", "jsonl"], default=None, help="default: by suffix"
    )
    parser.set_defaults(func=cmd_import_transactions)


def cmd_import_transactions(args: argparse.Namespace) -> int:
    return asyncio.run(run_import(load_settings(), args.file, fmt=args.format))


@dataclass
class Tally:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    bad: int = 0


@dataclass
class Batch:
    lines: list[int] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def rows_of(stream: BinaryIO, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line, row) one at a time; a row is None when the line cannot be read at all."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    if fmt == "csv":
        reader = csv.DictReader(text)
        for row in reader:
            values: dict[str, Any] = {k: v for k, v in row.items() if k is not None}
            for key in OPTIONAL:
                if values.get(key) == "":
                    values[key] = None
            yield reader.line_num, values
        return
    for line, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw, parse_float=Decimal)
        except ValueError:
            yield line, None
            continue
        yield line, value if isinstance(value, dict) else None


async def run_import(
    settings: Settings, path: Path, *, fmt: str | None = None, out: TextIO | None = None
) -> int:
    """0 when every row is stored or already was, 1 when some rows are bad, 2 when the file
    or the database cannot be used."""
    from tqdm import tqdm

    from app.db import create_engine, session_factory
    from app.errors import DomainError
    from app.migrate import current_revision, head_revision
    from app.services import feed_rules
    from app.transactions.ingest import read_item
    from app.transactions.service import ConflictingIds, TransactionService

    out = out or sys.stdout
    fmt = fmt or SUFFIXES.get(path.suffix.lower())
    if fmt not in ("csv", "jsonl"):
        print(
            f"bankfeeds import-transactions: cannot tell the format of {path}; use --format",
            file=out,
        )
        return 2
    try:
        raw = await asyncio.to_thread(path.open, "rb")
        size = os.fstat(raw.fileno()).st_size
    except OSError as exc:
        print(f"bankfeeds import-transactions: cannot read {path}: {exc}", file=out)
        return 2
    engine = create_engine(settings.database_url)
    tally = Tally()

    def bad(line: int, where: str, message: str) -> None:
        tally.bad += 1
        print(f"line {line}: {where}: {message}", file=out)

    try:
        if await current_revision(engine) != head_revision():
            print("bankfeeds import-transactions: the database is not migrated; run "
                  "`bankfeeds migrate`", file=out)  # fmt: skip
            return 2
        service = TransactionService(session_factory(engine), feed_rules(settings))
        batches: dict[tuple[str, str], Batch] = {}
        buffered = 0
        storing: asyncio.Task[None] | None = None

        async def store(batches: dict[tuple[str, str], Batch]) -> None:
            """Every buffered row, in one unit of work; an account's conflicting ids are
            reported and its other rows stored on the next attempt."""
            while batches:
                answers = await service.ingest_many(
                    {key: batch.items for key, batch in batches.items()}
                )
                again: dict[tuple[str, str], Batch] = {}
                for key, answer in answers.items():
                    batch = batches[key]
                    if isinstance(answer, ConflictingIds):
                        keep = Batch()
                        for line, item in zip(batch.lines, batch.items, strict=True):
                            if item.id in answer.ids:
                                bad(line, "id", f"{item.id} was received before with "
                                    "different content")  # fmt: skip
                            else:
                                keep.lines.append(line)
                                keep.items.append(item)
                        if keep.items:
                            again[key] = keep
                    elif isinstance(answer, DomainError):
                        for line in batch.lines:
                            bad(line, "account_id", str(answer.detail))
                    else:
                        tally.stored += answer.stored
                        tally.duplicates += answer.duplicates
                batches.clear()
                batches.update(again)

        with (
            raw,
            tqdm(total=size, unit="B", unit_scale=True, desc="importing", file=sys.stderr) as bar,
        ):
            today = service.today()
            for line, row in rows_of(raw, fmt):
                tally.rows += 1
                if tally.rows % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the store in flight goes on meanwhile
                    if tally.rows % 1000 == 0:
                        bar.update(raw.tell() - bar.n)  # bytes read so far
                if row is None:
                    bad(line, "row", "is not a JSON object")
                    continue
                customer_id, account_id = row.pop("customer_id", None), row.pop("account_id", None)
                if not isinstance(customer_id, str) or not customer_id:
                    bad(line, "customer_id", "is required")
                    continue
                if not isinstance(account_id, str) or not account_id:
                    bad(line, "account_id", "is required")
                    continue
                item, errors = read_item(0, row, today)
                for error in errors:
                    bad(line, error.field or "row", error.message)
                if item is None:
                    continue
                batch = batches.setdefault((customer_id, account_id), Batch())
                batch.lines.append(line)
                batch.items.append(item)
                buffered += 1
                if buffered >= MAX_BUFFERED:
                    # Stored while the next rows are read: one unit of work in flight at most.
                    if storing is not None:
                        await storing
                    storing = asyncio.create_task(store(batches))
                    batches, buffered = {}, 0
            if storing is not None:
                await storing
            await store(batches)
            bar.update(size - bar.n)
    finally:
        await engine.dispose()
    print(
        f"Read {tally.rows} rows: {tally.stored} stored, {tally.duplicates} already stored, "
        f"{tally.bad} bad.",
        file=out,
    )
    return 1 if tally.bad else 0

"""Bulk load of customers and accounts from CSV or JSON: every row valid, or nothing written."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, BinaryIO, Literal, TextIO

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.schemas import (
    ACCOUNT_COLUMNS,
    ACCOUNT_VALUE_COLUMNS,
    COLUMNS,
    CUSTOMER_COLUMNS,
    FIXED_FIELDS,
    REQUIRED_COLUMNS,
    TEXT_COLUMNS,
    AccountIn,
    CustomerIn,
    ImportCounts,
    ImportOut,
)
from app.db import utcnow
from app.errors import PayloadTooLarge, Unprocessable
from app.events.outbox import announce_connected
from app.models import ID_PATTERN, Customer, SourceAccount

Format = Literal["csv", "json"]
Progress = Callable[[int], object]
CHUNK = 1000
# Rows an upsert sends at once: each statement's parameters are prepared on the event loop.
WRITE_CHUNK = 200
JSON_CHUNK = 64 * 1024
MAX_ROW_CHARS = 1_000_000  # no row object is near this long
MAX_ERRORS = 100  # a file with more bad rows is answered with these and the total
# The objects a JSON row may nest (`routingInfo`), as the columns spell them dotted.
_NESTED = frozenset(c.partition(".")[0] for c in ACCOUNT_COLUMNS if "." in c)
_ID = re.compile(ID_PATTERN)
_SPACE = re.compile(r"[ \t\n\r]*")
_EXISTING_ACCOUNT_COLUMNS = (
    SourceAccount.customer_id,
    SourceAccount.id,
    SourceAccount.pushed_at,
    *(getattr(SourceAccount, c) for c in ACCOUNT_VALUE_COLUMNS),
)


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str
    type: str = "value_error"
    row: int = 0  # the row's position among the data rows, from 1; 0 for the file itself

    def as_json(self) -> dict[str, Any]:
        return {
            "loc": ["body", self.line, self.field],
            "msg": self.message,
            "type": self.type,
            "line": self.line,
            "row": self.row,
            "field": self.field,
        }


class ImportRejected(Unprocessable):
    """The file has bad rows; nothing was written. The API lists the first MAX_ERRORS, each
    with its line and field, and how many there were in all (`error_count`)."""

    def __init__(self, errors: Sequence[RowError], *, total: int | None = None) -> None:
        super().__init__([e.as_json() for e in errors])
        self.errors = list(errors)
        self.total = len(self.errors) if total is None else total
        self.extra = {"error_count": self.total}


class ImportTooLarge(PayloadTooLarge):
    def __init__(self, max_rows: int) -> None:
        super().__init__(
            f"The file has more than {max_rows} rows, the most one request takes "
            "(IMPORT_MAX_ROWS); nothing was written. Load larger books with "
            "`bankfeeds import FILE`, which reads the file from disk as it goes."
        )


@dataclass(frozen=True, eq=False)
class Row:
    line: int
    number: int
    values: dict[str, Any]
    problems: tuple[RowError, ...] = ()  # found while reading; reported with the rest


@dataclass
class Plan:
    rows: int
    customers: dict[str, tuple[Row, CustomerIn]] = field(default_factory=dict)
    accounts: dict[tuple[str, str], tuple[Row, AccountIn]] = field(default_factory=dict)


# --- reading ------------------------------------------------------------------------------


def check(
    source: BinaryIO,
    fmt: Format,
    *,
    max_rows: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Read the file as a stream and check every row with the API's own rules: the plan to
    write, or ImportRejected with the first errors and their count. Runs in a thread: it
    holds one row at a time, besides the rows' values kept for writing."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    rows = read_csv(text) if fmt == "csv" else read_json(text)
    found = Errors()
    plan = Plan(rows=0)
    try:
        for row in rows:
            plan.rows += 1
            if max_rows is not None and plan.rows > max_rows:
                raise ImportTooLarge(max_rows)
            for error in _check_row(plan, row):
                found.add(replace(error, row=row.number))
            if progress:
                progress(1)
    # A file that cannot be read is reported as such, without the rows read before.
    except UnicodeDecodeError:
        found = Errors()
        found.add(RowError(1, "file", "is not UTF-8"))
    except ImportRejected as exc:
        found = Errors()
        for error in exc.errors:
            found.add(error)
    finally:
        text.detach()  # the caller's file stays open
    if not found.total and not plan.rows:
        found.add(RowError(1, "file", "has no rows"))
    found.raise_any()
    return plan


class Errors:
    """The first MAX_ERRORS errors, and how many there were."""

    def __init__(self) -> None:
        self.first: list[RowError] = []
        self.total = 0

    def add(self, error: RowError) -> None:
        self.total += 1
        if len(self.first) < MAX_ERRORS:
            self.first.append(error)

    def raise_any(self) -> None:
        if self.total:
            raise ImportRejected(self.first, total=self.total)


def read_csv(text: TextIO) -> Iterator[Row]:
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportRejected([RowError(1, "file", "is empty: expected a header row")]) from None
    except csv.Error as exc:
        raise ImportRejected([RowError(1, "file", f"is not valid CSV: {exc}")]) from exc
    errors = [
        RowError(1, h, f"is not a known column; known: {', '.join(COLUMNS)}")
        for h in header
        if h not in COLUMNS
    ]
    errors += [
        RowError(1, h, "appears twice in the header") for h in set(header) if header.count(h) > 1
    ]
    errors += [
        RowError(1, h, "column is missing", "missing") for h in REQUIRED_COLUMNS if h not in header
    ]
    if errors:
        raise ImportRejected(errors)
    number, previous = 0, reader.line_num
    try:
        for cells in reader:
            line, previous = previous + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            number += 1
            if len(cells) > len(header):
                problem = RowError(
                    line, "row", f"has {len(cells)} cells; the header has {len(header)}"
                )
                yield Row(line, number, {}, (problem,))
                continue
            values = {h: c.strip() for h, c in zip(header, cells, strict=False) if c.strip()}
            yield Row(line, number, values)
    except csv.Error as exc:
        raise ImportRejected(
            [RowError(reader.line_num, "file", f"is not valid CSV: {exc}")]
        ) from exc


def read_json(text: TextIO) -> Iterator[Row]:
    """A JSON array of row objects, read item by item; nested `routingInfo`/`accountInfo` or
    dotted keys. Each row is reported on the line it starts on."""
    items = _JsonArray(text)
    for number, (line, item) in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield Row(line, number, {}, (RowError(line, "row", "must be an object"),))
            continue
        values, unknown = _flatten(item)
        problems = tuple(RowError(line, k, "is not a known field") for k in unknown)
        yield Row(line, number, values, problems)


class _JsonArray:
    """The items of a top-level JSON array, each with the line it starts on, decoded from a
    text stream a chunk at a time."""

    def __init__(self, text: TextIO) -> None:
        self.text = text
        self.buffer = ""
        self.position = 0
        self.line = 1  # the line of `position`
        self.eof = False
        self.decoder = json.JSONDecoder(parse_float=Decimal)

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.text.read(JSON_CHUNK)
        self.buffer = self.buffer[self.position :] + chunk
        self.position = 0
        self.eof = not chunk
        return bool(chunk)

    def _skip(self, pattern: re.Pattern[str]) -> str:
        """Skip what `pattern` matches (reading on as needed); the next character, or ''."""
        while True:
            end = pattern.match(self.buffer, self.position).end()  # type: ignore[union-attr]
            self.line += self.buffer.count("\n", self.position, end)
            self.position = end
            if end < len(self.buffer):
                return self.buffer[end]
            if not self._more():
                return ""

    def _fail(self, message: str) -> ImportRejected:
        return ImportRejected([RowError(self.line, "file", message)])

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self._skip(_SPACE) != "[":
            raise self._fail("must be a JSON array of row objects")
        self.position += 1
        if self._skip(_SPACE) == "]":
            self._end()
            return
        while True:
            yield self.line, self._item()
            following = self._skip(_SPACE)
            if following == "]":
                self._end()
                return
            if following != ",":
                raise self._fail("is not valid JSON: expected , or ] after a row")
            self.position += 1
            self._skip(_SPACE)

    def _item(self) -> Any:
        while True:
            try:
                item, end = self.decoder.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError as exc:
                if len(self.buffer) - self.position > MAX_ROW_CHARS:
                    raise self._fail(
                        f"is not valid JSON, or has a row longer than {MAX_ROW_CHARS} characters"
                    ) from None
                if self._more():
                    continue
                raise self._fail(f"is not valid JSON: {exc.msg}") from None
            except RecursionError:  # nested deeper than json can parse
                raise self._fail("is not valid JSON: nested too deeply") from None
            except ValueError as exc:  # a number too long to convert
                raise self._fail(f"is not valid JSON: {exc}") from None
            if end == len(self.buffer) and self._more():
                continue  # a number may go on in the next chunk
            self.line += self.buffer.count("\n", self.position, end)
            self.position = end
            return item

    def _end(self) -> None:
        self.position += 1
        if self._skip(_SPACE):
            raise self._fail("is not valid JSON: extra data after the array")


def _flatten(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, dict) and key in _NESTED:
            values.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            values[key] = value
    unknown = [k for k in values if k not in COLUMNS]
    clean = {}
    for key, value in values.items():
        if value is None or value == "" or key in unknown:
            continue
        is_number = isinstance(value, int | Decimal) and not isinstance(value, bool)
        clean[key] = str(value) if key in TEXT_COLUMNS and is_number else value
    return clean, unknown


# --- checking -----------------------------------------------------------------------------


def _check_row(plan: Plan, row: Row) -> list[RowError]:
    v, line = row.values, row.line
    if any(p.field == "row" for p in row.problems):
        return list(row.problems)
    errors = list(row.problems)
    errors += [
        RowError(line, k, "must be 1-64 letters, digits or . _ : -", "string_pattern_mismatch")
        for k in ("customer_id", "account_id")
        if k in v and not (isinstance(v[k], str) and _ID.fullmatch(v[k]))
    ]
    if "customer_id" not in v:
        errors.append(RowError(line, "customer_id", "Field required", "missing"))
    customer = _model(CustomerIn, {k: v[k] for k in CUSTOMER_COLUMNS[1:] if k in v}, line, errors)
    account_values = {k: v[k] for k in ACCOUNT_COLUMNS[1:] if k in v}
    account = None
    if "account_id" in v:
        account = _model(AccountIn, _nest(account_values), line, errors)
    elif account_values:
        errors.append(
            RowError(line, "account_id", "is required when account fields are given", "missing")
        )
    if errors:
        return errors
    customer_id = str(v["customer_id"])
    assert customer is not None
    first = plan.customers.setdefault(customer_id, (row, customer))
    if first[1] != customer:
        differs = next(
            k for k in CUSTOMER_COLUMNS[1:] if getattr(first[1], k) != getattr(customer, k)
        )
        errors.append(
            RowError(line, differs, f"differs from line {first[0].line} for the same customer_id")
        )
    if account is not None:
        key = (customer_id, str(v["account_id"]))
        seen = plan.accounts.setdefault(key, (row, account))
        if seen[0] is not row:
            errors.append(
                RowError(
                    line, "account_id", f"appears twice for this customer (line {seen[0].line})"
                )
            )
    return errors


def _model(
    model: type[BaseModel], values: dict[str, Any], line: int, errors: list[RowError]
) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        for e in exc.errors():
            name = ".".join(str(p) for p in e["loc"]) or "row"
            errors.append(RowError(line, name, e["msg"], e["type"]))
        return None


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in values.items():
        outer, _, inner = key.partition(".")
        if inner:
            nested.setdefault(outer, {})[inner] = value
        else:
            nested[key] = value
    return nested


# --- writing ------------------------------------------------------------------------------


async def write(session: AsyncSession, plan: Plan, progress: Progress | None = None) -> ImportOut:
    """Upsert in chunks of multi-row statements; the caller commits."""
    customer_ids = list(plan.customers)
    existing_customers: dict[str, tuple[str, str, str]] = {}
    existing_accounts: dict[tuple[str, str], Any] = {}
    for ids in _chunks(customer_ids, CHUNK):
        found = await session.execute(
            select(Customer.id, Customer.name, Customer.country, Customer.locale).where(
                Customer.id.in_(ids)
            )
        )
        existing_customers.update({i: (n, c, loc) for i, n, c, loc in found})
        rows = await session.execute(
            select(*_EXISTING_ACCOUNT_COLUMNS).where(SourceAccount.customer_id.in_(ids))
        )
        existing_accounts.update({(a.customer_id, a.id): a for a in rows})
    # Comparing every row is work for a thread, as checking was: the event loop stays free.
    changes = await asyncio.to_thread(
        _changes, plan, existing_customers, existing_accounts, utcnow()
    )
    if progress:
        progress(changes.customers.unchanged + changes.accounts.unchanged)
    await _upsert(session, Customer.__table__, ["id"], changes.customer_rows, progress)  # type: ignore[arg-type]
    await _upsert(
        session,
        SourceAccount.__table__,  # type: ignore[arg-type]
        ["customer_id", "id"],
        changes.account_rows,
        progress,
    )
    await announce_connected(session, {str(row["customer_id"]) for row in changes.account_rows})
    return ImportOut(rows=plan.rows, customers=changes.customers, accounts=changes.accounts)


@dataclass
class _Changes:
    customers: ImportCounts
    accounts: ImportCounts
    customer_rows: list[dict[str, Any]] = field(default_factory=list)
    account_rows: list[dict[str, Any]] = field(default_factory=list)


def _changes(
    plan: Plan,
    existing_customers: dict[str, tuple[str, str, str]],
    existing_accounts: dict[tuple[str, str], Any],
    now: datetime,
) -> _Changes:
    """The rows to upsert, and the counts; refuses a change Codat cannot make."""
    _refuse_fixed_changes(plan, existing_accounts)
    changes = _Changes(
        customers=ImportCounts(created=0, updated=0, unchanged=0),
        accounts=ImportCounts(created=0, updated=0, unchanged=0),
    )
    customers, accounts = changes.customers, changes.accounts
    for customer_id, (_, c) in plan.customers.items():
        before = existing_customers.get(customer_id)
        if before == (c.name, c.country, c.locale):
            customers.unchanged += 1
            continue
        customers.updated += before is not None
        customers.created += before is None
        row = {"id": customer_id, "name": c.name, "country": c.country, "locale": c.locale}
        changes.customer_rows.append({**row, "created_at": now, "updated_at": now})
    for (customer_id, account_id), (_, a) in plan.accounts.items():
        values = a.columns()
        before = existing_accounts.get((customer_id, account_id))
        if before is not None and all(getattr(before, k) == v for k, v in values.items()):
            accounts.unchanged += 1
            continue
        accounts.updated += before is not None
        accounts.created += before is None
        row = {"customer_id": customer_id, "id": account_id, **values}
        changes.account_rows.append({**row, "created_at": now, "updated_at": now})
    return changes


def _refuse_fixed_changes(plan: Plan, existing: dict[tuple[str, str], Any]) -> None:
    errors = []
    for key, (row, a) in plan.accounts.items():
        before = existing.get(key)
        if before is None or before.pushed_at is None:
            continue
        values = a.columns()
        for column, name in FIXED_FIELDS:
            if getattr(before, column) != values[column]:
                errors.append(
                    RowError(
                        row.line,
                        name,
                        "cannot change: the account is already in the customer's "
                        "bank feed and Codat keeps it; use a new account_id",
                        "conflict",
                        row.number,
                    )
                )
    if errors:
        raise ImportRejected(errors)


async def _upsert(
    session: AsyncSession,
    table: Table,
    keys: list[str],
    rows: list[dict[str, Any]],
    progress: Progress | None,
) -> None:
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    kept = set(keys) | {"created_at"}
    updates = {c: insert.excluded[c] for c in rows[0] if c not in kept}
    statement = insert.on_conflict_do_update(index_elements=keys, set_=updates)
    for chunk in _chunks(rows, WRITE_CHUNK):
        await session.execute(statement, chunk)
        if progress:
            progress(len(chunk))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

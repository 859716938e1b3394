"""`bankfeeds import FILE`: load customers and accounts from CSV or JSON into the database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from app.settings import Settings, load_settings

SUFFIXES = {".csv": "csv", ".json": "json"}


def register_import(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "import",
        help="load customers and accounts from a CSV or JSON file",
        description="Every row is checked first; a file with any bad row writes nothing. "
        "Codat is updated on each customer's next connect or sync.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--format", choices=["csv", "json"], default=None, help="default: by suffix"
    )
    parser.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    parser.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    return asyncio.run(
        run_import(load_settings(), args.file, fmt=args.format, dry_run=args.dry_run)
    )


async def run_import(
    settings: Settings,
    path: Path,
    *,
    fmt: str | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    """0 when imported, 1 when the file has bad rows, 2 when it cannot be read or stored."""
    from tqdm import tqdm

    from app.customers import importer
    from app.db import create_engine, session_factory
    from app.migrate import current_revision, head_revision

    out = out or sys.stdout
    fmt = fmt or SUFFIXES.get(path.suffix.lower())
    if fmt not in ("csv", "json"):
        print(f"bankfeeds import: cannot tell the format of {path}; use --format", file=out)
        return 2
    try:
        source = path.open("rb")
    except OSError as exc:
        print(f"bankfeeds import: cannot read {path}: {exc}", file=out)
        return 2
    engine = create_engine(settings.database_url)
    try:
        if await current_revision(engine) != head_revision():
            print(
                "bankfeeds import: the database is not migrated; run `bankfeeds migrate`", file=out
            )
            return 2
        with tqdm(desc="checking", unit="row") as bar:  # read from disk as it goes
            plan = await asyncio.to_thread(importer.check, source, fmt, progress=bar.update)  # type: ignore[arg-type]
        async with session_factory(engine)() as session:
            with tqdm(
                total=len(plan.customers) + len(plan.accounts), desc="writing", unit="row"
            ) as bar:
                result = await importer.write(session, plan, bar.update)
            if dry_run:
                await session.rollback()
            else:
                await session.commit()
    except importer.ImportRejected as exc:
        for error in exc.errors:
            where = f"line {error.line}" + (f" (row {error.row})" if error.row else "")
            print(f"{where}: {error.field}: {error.message}", file=out)
        shown = f" (the first {len(exc.errors)} shown)" if exc.total > len(exc.errors) else ""
        print(f"Nothing was written: {exc.total} error(s) in {path}{shown}.", file=out)
        return 1
    finally:
        source.close()
        await engine.dispose()
    verb = "Would import" if dry_run else "Imported"
    c, a = result.customers, result.accounts
    print(
        f"{verb} {result.rows} rows: customers {c.created} created, {c.updated} updated, "
        f"{c.unchanged} unchanged; accounts {a.created} created, {a.updated} updated, "
        f"{a.unchanged} unchanged.",
        file=out,
    )
    return 0

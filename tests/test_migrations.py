"""The migrations go up and down on both databases, and the models do not drift from them."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.db import Base, create_engine
from app.migrate import downgrade, head_revision, upgrade


async def _tables_and_diff(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine(url)
    async with engine.connect() as conn:

        def inspect_sync(sync_conn: object) -> tuple[set[str], list[object]]:
            tables = set(inspect(sync_conn).get_table_names())  # type: ignore[union-attr]
            context = MigrationContext.configure(
                sync_conn, opts={"compare_type": True, "render_as_batch": True}
            )  # type: ignore[arg-type]
            return tables, compare_metadata(context, Base.metadata)

        result = await conn.run_sync(inspect_sync)
    await engine.dispose()
    return result


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
    from tests.conftest import _drop_postgres_db, _make_postgres_db, _postgres_reachable

    if not _postgres_reachable():
        pytest.skip("Postgres is not reachable")
    url = _make_postgres_db()
    request.addfinalizer(lambda: _drop_postgres_db(url))
    return url


def test_upgrade_to_head_then_down_to_base(empty_database: str) -> None:
    upgrade(empty_database)
    tables, diff = asyncio.run(_tables_and_diff(empty_database))
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert diff == [], f"models and migrations drift: {diff}"
    downgrade(empty_database, "base")
    tables, _ = asyncio.run(_tables_and_diff(empty_database))
    assert tables <= {"alembic_version"}
    upgrade(empty_database)


def test_single_head() -> None:
    assert head_revision() is not None

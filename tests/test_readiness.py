"""/readyz: ready only when the database answers and is migrated to the head revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from app.db import create_engine
from app.migrate import head_revision, upgrade
from tests.conftest import Service, start_service


async def test_ready_at_head(service: Service) -> None:
    response = await service.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_not_ready_before_migrations_or_behind_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    engine = create_engine(url)
    async with engine.begin() as connection:  # the file exists, with no tables
        await connection.execute(text("select 1"))
    await engine.dispose()
    async for service in start_service(url):
        response = await service.client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "not migrated"}

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with engine.begin() as connection:  # as if an older release had migrated it
        await connection.execute(text("update alembic_version set version_num = '0000_older'"))
    await engine.dispose()
    async for service in start_service(url):
        assert (await service.client.get("/readyz")).status_code == 503

    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("update alembic_version set version_num = :head"), {"head": head_revision()}
        )
    await engine.dispose()
    async for service in start_service(url):
        assert (await service.client.get("/readyz")).status_code == 200

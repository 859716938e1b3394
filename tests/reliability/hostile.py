"""Shared by the hostile-input proofs: the whole database as a value, to show nothing changed."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, settings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import Base

# Deterministic examples (the same on every run), one service shared by all of a test's examples.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def database_state(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[Any]]:
    """Every row of every table, sorted: equal before and after means nothing was written."""
    state: dict[str, list[Any]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            state[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return state


class FuzzClock:
    """When a fuzz test's first and last examples ran, per database, for the report."""

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}

    def tick(self, key: str) -> None:
        now = time.monotonic()
        self.spans.setdefault(key, [now, now])[1] = now

    def seconds(self, key: str) -> float:
        first, last = self.spans.get(key, [0.0, 0.0])
        return round(last - first, 1)

"""Shared by the hostile-input proofs: the whole database as a value, to show nothing changed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import Base

# New examples on every run, from the run's seed (printed by pytest-randomly at the top of the
# run: `-p randomly -p "randomly_seed=N"` replays it); a failure prints its own reproduction
# blob too. One service is shared by all of a test's examples.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    print_blob=True,
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


class Tally:
    """What one fuzz test's examples tried and got, and when its first and last ran: kept by
    the test itself (the `tally` fixture), so its figures never depend on another test."""

    def __init__(self) -> None:
        self.tried: Counter[str] = Counter()
        self.answers: Counter[int] = Counter()
        self.slowest_ms = 0
        self.span: list[float] = []
        # Set by the test: what the report shows when it ends.
        self.proof = ""
        self.variant: str | None = None
        self.figures: Callable[[Tally], dict[str, Any]] | None = None

    def tick(self) -> None:
        now = time.monotonic()
        self.span = [self.span[0] if self.span else now, now]

    @property
    def examples(self) -> int:
        return sum(self.answers.values())

    @property
    def seconds(self) -> float:
        return round(self.span[1] - self.span[0], 1) if self.span else 0.0

    def answered(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.answers.items())}

"""A closed-loop load generator: N workers, each sending its next request when one returns."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# request(worker, index) returns its outcome: "ok", or a short label counted as an error.
Request = Callable[[int, int], Awaitable[str]]


@dataclass
class LoadResult:
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def rps(self) -> float:
        return round(self.completed / self.elapsed_s, 1) if self.elapsed_s else 0.0


async def closed_loop(
    request: Request, concurrency: int, duration_s: float, max_requests: int
) -> LoadResult:
    """Run until `duration_s` has passed or `max_requests` were sent, whichever comes first.

    Each worker is one client (think one browser): give it its own connection, since one
    httpx pool shared by dozens of concurrent requests costs more CPU than the server does.
    """
    result = LoadResult(concurrency)
    counter = itertools.count()
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker(worker_id: int) -> None:
        while time.perf_counter() < deadline:
            index = next(counter)
            if index >= max_requests:
                return
            sent = time.perf_counter()
            try:
                outcome = await request(worker_id, index)
            except Exception as exc:  # a failed request is a result, not a crash
                outcome = type(exc).__name__
            if outcome == "ok":
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
            else:
                result.errors[outcome] += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result

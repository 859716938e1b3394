"""Clicks per second per core: the most returning clicks a second the service answers while
its p99 overhead over the sandbox's own round trip stays within the limit, with one worker
process and with `bankfeeds serve --workers N` (N: the machine's cores)."""

from __future__ import annotations

import os
from typing import Any

from bench.journeys import RETURNING_IDS, returning_clicks
from bench.load import LoadResult, closed_loop
from bench.stack import BenchFailure, Stack, measure, service_with_workers
from bench.stats import summarize

P99_OVERHEAD_LIMIT_MS = 25.0
LEVELS = (1, 2, 4, 8, 16, 32, 48)
WARMUP_CONCURRENCY = 8
WARMUP_CLICKS = 100


def machine_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def best_level(
    levels: dict[str, dict[str, Any]], limit_ms: float = P99_OVERHEAD_LIMIT_MS
) -> str | None:
    """The level with the most clicks a second among those whose p99 overhead is within
    `limit_ms`; None when none is."""
    within = {
        name: level["rps"]
        for name, level in levels.items()
        if level.get("overhead_p99_ms") is not None and level["overhead_p99_ms"] <= limit_ms
    }
    return max(within, key=lambda name: within[name]) if within else None


def per_core(layout: dict[str, Any], cores: int) -> float | None:
    """Clicks a second at the best level, per core the layout can use: a process runs on one
    core at a time, so N workers use at most min(N, cores)."""
    best = layout.get("best")
    if best is None:
        return None
    usable = max(1, min(int(layout["workers"]), cores))
    return round(float(layout["levels"][best]["rps"]) / usable, 1)


async def _sweep(
    stack: Stack, browsers: list[Any], meter: Any, sandbox_p99: dict[int, float]
) -> dict[str, dict[str, Any]]:
    config = stack.config
    ids = [RETURNING_IDS.format(i) for i in range(config.returning_customers)]
    tokens = [stack.connect_token(c) for c in ids]
    click = returning_clicks(browsers, tokens, stack.sandbox_url + "/link/")
    paths = await _connection_paths(stack, ids)

    async def sandbox_round_trip(worker: int, index: int) -> str:
        response = await stack.codat_workers[worker].get(paths[index % len(paths)])
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    # Every worker warm (its pools, caches and prepared statements) before the first level:
    # the kernel hands each new connection to any of them.
    await closed_loop(click, min(WARMUP_CONCURRENCY, len(browsers)), 30.0, WARMUP_CLICKS)
    levels: dict[str, dict[str, Any]] = {}
    for concurrency in (c for c in LEVELS if c <= len(browsers)):
        await stack.expire_link_passwords()
        if concurrency not in sandbox_p99:
            direct = await closed_loop(
                sandbox_round_trip, concurrency, config.capacity_seconds, config.level_max_requests
            )
            sandbox_p99[concurrency] = _p99(direct)
        await closed_loop(click, concurrency, 10.0, concurrency * config.warmup_requests_per_worker)
        ours, cpu = await measure(
            meter, click, concurrency, config.capacity_seconds, config.level_max_requests
        )
        if ours.errors:
            raise BenchFailure(f"capacity at concurrency {concurrency}: {dict(ours.errors)}")
        overhead = round(_p99(ours) - sandbox_p99[concurrency], 2)
        levels[str(concurrency)] = {
            "rps": ours.rps,
            "p99_ms": round(_p99(ours), 2),
            "sandbox_p99_ms": round(sandbox_p99[concurrency], 2),
            "overhead_p99_ms": overhead,
            "service_cpu_ms_per_click": cpu.get("service_ms_per_request"),
            "service_percent_of_one_core": cpu["percent_of_one_core"]["service"],
        }
        if overhead > P99_OVERHEAD_LIMIT_MS:
            break  # more clicks at once only queue longer
    return levels


def _p99(result: LoadResult) -> float:
    return float(summarize(result.latencies_ms)["p99"])


async def _connection_paths(stack: Stack, ids: list[str]) -> list[str]:
    from bench.seed import settled_feeds

    feeds = await settled_feeds(stack.db_dsn, ids)
    return [f"/companies/{feeds[c][0]}/connections/{feeds[c][1]}" for c in ids]


async def capacity(stack: Stack) -> dict[str, Any]:
    """After `returning` (its customers are connected): one worker, then one per core."""
    cores = machine_cores()
    sandbox_p99: dict[int, float] = {}
    layouts: dict[str, Any] = {}
    one = await _sweep(stack, stack.browsers, stack.cpu, sandbox_p99)
    layouts["1"] = {"workers": 1, "levels": one}
    if cores > 1:
        async with service_with_workers(stack, cores) as server:
            many = await _sweep(stack, server.browsers, server.cpu, sandbox_p99)
        layouts[str(cores)] = {"workers": cores, "levels": many}
    for layout in layouts.values():
        layout["best"] = best_level(layout["levels"])
        layout["clicks_per_second_per_core"] = per_core(layout, cores)
    stack.check_alive()
    return {"cores": cores, "p99_overhead_limit_ms": P99_OVERHEAD_LIMIT_MS, "layouts": layouts}

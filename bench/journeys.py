"""The customer's click: first connect (ours and the SDK baseline) and the returning customer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.baseline import SdkJourney
from bench.cpu import CpuMeter, net_ms_per_request
from bench.load import LoadResult, Request, closed_loop
from bench.processes import run_cli
from bench.profile import read_profile, sampling
from bench.seed import account_fields, seed_unconnected, settled_feeds
from bench.stack import BenchFailure, Stack
from bench.stats import summarize

RETURNING_IDS = "rc-{:03d}"


@dataclass(frozen=True)
class Click:
    elapsed_ms: float
    codat_calls: int
    sequential_round_trips: int
    service_cpu_ms: float | None = None
    service_wait_ms: float | None = None  # ready to run, every core busy


def first_connect_ids(count: int, index: int) -> str:
    return f"fc-{count:02d}-{index}"


def provisioned_ids(count: int, index: int) -> str:
    return f"pv-{count:02d}-{index}"


async def provision_ahead(stack: Stack, expected: int) -> None:
    """`bankfeeds worker --once` with PROVISION_AHEAD=true: the job provisions the customers
    seeded for the provisioned first click, as it would in production."""
    env = {**stack.env, "PROVISION_AHEAD": "true"}
    out = await asyncio.to_thread(run_cli, ["worker", "--once"], env)
    if f"Provisioned {expected} customer(s)" not in out:
        raise BenchFailure(f"provisioning ahead of the click: expected {expected}:\n{out}")


async def measure_idle(stack: Stack) -> dict[str, float]:
    """What the service and the reference spend per second with no click (the service's
    background jobs poll): taken off each click's CPU from here on."""
    seconds = stack.config.idle_seconds
    return {
        "service_ms_per_second": await stack.cpu.measure_idle(seconds),
        "reference_ms_per_second": await stack.reference_cpu.measure_idle(seconds),
    }


async def click_first_connect(stack: Stack, customer_id: str) -> Click:
    """One first click, timed from the request to the 302, and the Codat calls it made."""
    await stack.reset_codat_log()
    token = stack.connect_token(customer_id)
    cpu_before = stack.cpu.snapshot()
    started = time.perf_counter()
    response = await stack.http.get("/connect-bank-feeds", params={"token": token})
    elapsed_ms = (time.perf_counter() - started) * 1000
    cpu_after = stack.cpu.snapshot()
    service_cpu_ms = (cpu_after.service - cpu_before.service) * 1000
    if stack.cpu.idle_ms_per_second is not None:
        service_cpu_ms = net_ms_per_request(
            cpu_after.service - cpu_before.service,
            cpu_after.at - cpu_before.at,
            1,
            stack.cpu.idle_ms_per_second,
        )
    location = response.headers.get("location", "")
    if response.status_code != 302 or not location.startswith(stack.sandbox_url + "/link/"):
        answer = location or response.text[:300]
        raise BenchFailure(f"first connect of {customer_id}: {response.status_code} {answer}")
    calls, sequential = await stack.codat_usage()
    wait_ms = (cpu_after.service_waiting - cpu_before.service_waiting) * 1000
    return Click(elapsed_ms, calls, sequential, service_cpu_ms, wait_ms)


async def run_sdk_journey(stack: Stack, sdk: SdkJourney, name: str, accounts: int) -> Click:
    await stack.reset_codat_log()
    bodies = [account_fields(i) for i in range(accounts)]
    result = await sdk.run_async(name, bodies)
    if not result.link_url.startswith(stack.sandbox_url + "/link/"):
        raise BenchFailure(f"SDK journey returned {result.link_url!r}")
    calls, sequential = await stack.codat_usage()
    return Click(result.elapsed_ms, calls, sequential)


def _clicks_summary(clicks: list[Click]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "wall_ms": summarize([c.elapsed_ms for c in clicks]),
        "samples_ms": [round(c.elapsed_ms, 2) for c in clicks],
        "codat_calls": [c.codat_calls for c in clicks],
        "sequential_round_trips": [c.sequential_round_trips for c in clicks],
    }
    cpu = [c.service_cpu_ms for c in clicks if c.service_cpu_ms is not None]
    if cpu:
        summary["service_cpu_ms_mean"] = round(sum(cpu) / len(cpu), 2)
    waits = [c.service_wait_ms for c in clicks if c.service_wait_ms is not None]
    if waits:
        summary["service_runqueue_wait_ms_mean"] = round(sum(waits) / len(waits), 2)
    return summary


async def first_connect(stack: Stack) -> dict[str, Any]:
    """Ours and the SDK baseline alternate, customer by customer, on the same sandbox."""
    config = stack.config
    for count in config.account_counts:
        provisioned = [provisioned_ids(count, i) for i in range(config.customers_per_count)]
        await seed_unconnected(stack.db_dsn, provisioned, count)
    # Before the others exist: the job provisions every customer it may.
    await provision_ahead(stack, len(config.account_counts) * config.customers_per_count)
    for count in config.account_counts:
        batch = [first_connect_ids(count, i) for i in range(config.customers_per_count)]
        await seed_unconnected(stack.db_dsn, batch, count)
    await seed_unconnected(stack.db_dsn, ["fc-warmup"], 1)
    idle = await measure_idle(stack)
    sdk = SdkJourney(stack.sandbox_url, stack.secrets.codat_api_key)
    ours: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    ahead: dict[str, Any] = {}
    try:
        # Warm both paths once (imports, pools, prepared statements); not recorded.
        await click_first_connect(stack, "fc-warmup")
        await run_sdk_journey(stack, sdk, "Warm up", 1)
        async with stack.rss.track("first_connect"):
            for count in config.account_counts:
                our_clicks, sdk_clicks, ahead_clicks = [], [], []
                for index in range(config.customers_per_count):
                    customer_id = first_connect_ids(count, index)
                    our_clicks.append(await click_first_connect(stack, customer_id))
                    sdk_clicks.append(
                        await run_sdk_journey(stack, sdk, f"Baseline {count} {index}", count)
                    )
                    ahead_clicks.append(
                        await click_first_connect(stack, provisioned_ids(count, index))
                    )
                ours[str(count)] = _clicks_summary(our_clicks)
                baseline[str(count)] = _clicks_summary(sdk_clicks)
                ahead[str(count)] = _clicks_summary(ahead_clicks)
    finally:
        sdk.close()
    stack.check_alive()
    return {"ours": ours, "sdk_baseline": baseline, "provisioned": ahead, "idle_cpu": idle}


def _load_summary(result: LoadResult) -> dict[str, Any]:
    return {
        "concurrency": result.concurrency,
        "latency_ms": summarize(result.latencies_ms),
        "requests": result.completed,
        "errors": dict(result.errors),
        "seconds": round(result.elapsed_s, 2),
        "rps": result.rps,
    }


async def _level(
    stack: Stack, request: Any, concurrency: int, meter: CpuMeter | None = None
) -> tuple[LoadResult, dict[str, Any]]:
    """Forget old one-time passwords, warm up, then measure."""
    config = stack.config
    await stack.expire_link_passwords()
    warmup = concurrency * config.warmup_requests_per_worker
    await closed_loop(request, concurrency, duration_s=10.0, max_requests=warmup)
    await stack.reset_codat_log()
    return await stack.measure(
        request, concurrency, config.level_seconds, config.level_max_requests, meter
    )


def returning_clicks(
    browsers: list[httpx.AsyncClient], tokens: list[str], link_prefix: str
) -> Request:
    """Worker w clicks with its own browser, customer after customer; a 302 to a Link URL
    is the only success."""

    async def click(worker: int, index: int) -> str:
        response = await browsers[worker].get(
            "/connect-bank-feeds", params={"token": tokens[index % len(tokens)]}
        )
        if response.status_code != 302:
            return f"http {response.status_code}"
        if not response.headers.get("location", "").startswith(link_prefix):
            return "unexpected location"
        return "ok"

    return click


async def returning(stack: Stack) -> dict[str, Any]:
    """Each level twice: straight to the sandbox (its round trip), then through the service."""
    config = stack.config
    ids = [RETURNING_IDS.format(i) for i in range(config.returning_customers)]
    await seed_unconnected(stack.db_dsn, ids, 1)
    tokens = [stack.connect_token(c) for c in ids]
    link_prefix = stack.sandbox_url + "/link/"

    async def first_click(worker: int, index: int) -> str:
        response = await stack.browsers[worker].get(
            "/connect-bank-feeds", params={"token": tokens[index]}
        )
        return "ok" if response.status_code == 302 else f"http {response.status_code}"

    setup = await closed_loop(
        first_click, min(10, len(stack.browsers)), duration_s=60.0, max_requests=len(ids)
    )
    feeds = await settled_feeds(stack.db_dsn, ids)
    if setup.errors or len(feeds) != len(ids):
        raise BenchFailure(f"returning customers' first connect failed: {dict(setup.errors)}")
    paths = [f"/companies/{feeds[c][0]}/connections/{feeds[c][1]}" for c in ids]

    async def sandbox_round_trip(worker: int, index: int) -> str:
        response = await stack.codat_workers[worker].get(paths[index % len(paths)])
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    returning_click = returning_clicks(stack.browsers, tokens, link_prefix)
    reference_click = returning_clicks(stack.reference_browsers, tokens, link_prefix)

    levels: dict[str, Any] = {}
    for concurrency in config.concurrency_levels:
        direct, _ = await _level(stack, sandbox_round_trip, concurrency)
        async with stack.rss.track("returning"):
            ours, cpu = await _level(stack, returning_click, concurrency)
        calls = len(await stack.codat_calls())
        reference, reference_cpu = await _level(
            stack, reference_click, concurrency, stack.reference_cpu
        )
        stack.check_alive()
        if not ours.latencies_ms or not direct.latencies_ms:
            raise BenchFailure(
                f"concurrency {concurrency}: no successful request "
                f"(service {dict(ours.errors)}, sandbox {dict(direct.errors)})"
            )
        entry: dict[str, Any] = {
            "sandbox": _load_summary(direct),
            "ours": _load_summary(ours),
            "cpu": cpu,
        }
        entry["codat_calls_per_click"] = (
            round(calls / ours.completed, 3) if ours.completed else None
        )
        overhead = {}
        for pct in ("p50", "p95", "p99"):
            overhead[pct] = round(
                entry["ours"]["latency_ms"][pct] - entry["sandbox"]["latency_ms"][pct], 2
            )
        entry["overhead_ms"] = overhead
        entry["reference"] = {**_load_summary(reference), "cpu": reference_cpu}
        levels[str(concurrency)] = entry
    return levels


async def profile_clicks(stack: Stack) -> dict[str, Any]:
    """py-spy on the service while returning customers click (after `returning`), then while
    new customers click for the first time: where each click's CPU goes."""
    config = stack.config
    ids = [RETURNING_IDS.format(i) for i in range(config.returning_customers)]
    tokens = [stack.connect_token(c) for c in ids]
    click = returning_clicks(stack.browsers, tokens, stack.sandbox_url + "/link/")
    concurrency = min(10, len(stack.browsers))
    await closed_loop(click, concurrency, duration_s=10.0, max_requests=4 * concurrency)
    samples = stack.log_dir / "returning.pyspy"
    async with sampling(stack.service.pid, samples):
        done = await closed_loop(
            click, concurrency, duration_s=config.level_seconds, max_requests=config.profile_clicks
        )
    if done.errors:
        raise BenchFailure(f"profiled returning clicks failed: {dict(done.errors)}")
    profiles = {"returning": read_profile(samples, done.completed)}
    await stack.expire_link_passwords()
    new = [f"pf-{i:03d}" for i in range(config.profile_first_clicks)]
    await seed_unconnected(stack.db_dsn, new, 1)
    samples = stack.log_dir / "first.pyspy"
    async with sampling(stack.service.pid, samples):
        for customer_id in new:
            await click_first_connect(stack, customer_id)
    profiles["first"] = read_profile(samples, len(new))
    stack.check_alive()
    return profiles

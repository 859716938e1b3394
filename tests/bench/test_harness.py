"""The bench harness's pieces: statistics, load loop, latency shim, targets and report."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import os
import time
from typing import Any

import httpx
import pytest

from app.customers import importer
from app.sandbox import SandboxConfig
from bench.baseline import in_daemon_thread
from bench.load import closed_loop
from bench.ops import encode, import_rows
from bench.report import render_markdown
from bench.rss import RssMonitor, read_memory_kb
from bench.sandbox import create_delayed_sandbox
from bench.stats import Interval, calls_in_turn, percentile, sequential_depth, summarize
from bench.targets import evaluate

API_KEY = "bench-test-key-0123456789abcdef"


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert summarize([]) == {"n": 0}
    assert summarize([3.0, 1.0, 2.0])["p50"] == 2.0


def test_sequential_depth_counts_calls_waited_for_in_turn() -> None:
    chain = [Interval(0, 1), Interval(1, 2), Interval(2.5, 3)]
    assert sequential_depth(chain) == 3
    parallel = [Interval(0, 1), Interval(0.1, 1.1), Interval(0.2, 0.9)]
    assert sequential_depth(parallel) == 1
    assert sequential_depth([Interval(0, 1), *parallel[1:], Interval(1.2, 2)]) == 2


def test_calls_in_turn_reads_a_log_of_end_times() -> None:
    # three calls of 50 ms one after the other, then three in parallel
    assert calls_in_turn([0.051, 0.103, 0.155], 0.05) == 3
    assert calls_in_turn([0.051, 0.052, 0.0525], 0.05) == 1
    assert calls_in_turn([0.051, 0.103, 0.155, 0.206, 0.207, 0.2072], 0.05) == 4


async def test_closed_loop_stops_at_the_request_cap_and_counts_errors() -> None:
    seen: list[tuple[int, int]] = []

    async def request(worker: int, index: int) -> str:
        seen.append((worker, index))
        await asyncio.sleep(0)
        return "ok" if index % 4 else "http 500"

    result = await closed_loop(request, concurrency=3, duration_s=10.0, max_requests=20)
    assert result.completed == 20
    assert result.errors["http 500"] == 5
    assert len(result.latencies_ms) == 15
    assert {w for w, _ in seen} == {0, 1, 2}


async def test_closed_loop_stops_at_the_deadline() -> None:
    async def request(worker: int, index: int) -> str:
        await asyncio.sleep(0.01)
        return "ok"

    started = time.perf_counter()
    result = await closed_loop(request, concurrency=2, duration_s=0.2, max_requests=10**6)
    assert time.perf_counter() - started < 1.0
    assert 0 < result.completed < 100


async def test_sandbox_shim_delays_codat_calls_only() -> None:
    latency = 0.15
    app = create_delayed_sandbox(
        SandboxConfig(api_key=API_KEY, public_url="http://sandbox.test"), latency
    )
    auth = {"Authorization": "Basic " + base64.b64encode(API_KEY.encode()).decode()}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers=auth
    ) as client:
        started = time.perf_counter()
        created = await client.post("/companies", json={"name": "Bench Co"})
        assert created.status_code == 200
        assert time.perf_counter() - started >= latency

        started = time.perf_counter()
        calls = await client.get("/_sandbox/calls")
        assert time.perf_counter() - started < latency
        assert [c["route"] for c in calls.json()] == ["/companies"]


async def test_daemon_thread_returns_and_raises() -> None:
    assert await in_daemon_thread(lambda a, b: a + b, 2, 3) == 5

    def fail() -> None:
        raise ValueError("sdk said no")

    with pytest.raises(ValueError, match="sdk said no"):
        await in_daemon_thread(fail)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_import_body_is_what_the_importer_accepts(fmt: str) -> None:
    rows = import_rows("imp", accounts=12, per_customer=5)
    body, _ = encode(rows, fmt)
    plan = importer.check(io.BytesIO(body), fmt)  # type: ignore[arg-type]
    assert len(plan.accounts) == 12
    assert len(plan.customers) == 3


async def test_rss_monitor_reads_this_process() -> None:
    assert read_memory_kb(os.getpid())["VmRSS"] > 0
    monitor = RssMonitor(os.getpid(), interval=0.01)
    async with monitor.track("scenario") as peak:
        await asyncio.sleep(0.05)
    assert peak.samples >= 2
    assert monitor.peaks["scenario"].peak_mb > 1


def _results() -> dict[str, Any]:
    def latency(p50: float, p99: float) -> dict[str, float]:
        return {"n": 10, "mean": p50, "min": p50, "p50": p50, "p95": p99, "p99": p99, "max": p99}

    def clicks(p50: float, calls: int) -> dict[str, Any]:
        return {
            "wall_ms": latency(p50, p50),
            "samples_ms": [p50],
            "codat_calls": [calls],
            "sequential_round_trips": [calls],
            "service_cpu_ms_mean": 9.0,
        }

    def level(sandbox: tuple[float, float], ours: tuple[float, float]) -> dict[str, Any]:
        return {
            "sandbox": {"latency_ms": latency(*sandbox)},
            "ours": {
                "latency_ms": latency(*ours),
                "rps": 100.0,
                "requests": 500,
                "errors": {},
            },
            "codat_calls_per_click": 1.0,
            "cpu": {"service_ms_per_request": 3.0, "service_runqueue_wait_ms_per_request": 0.1},
            "overhead_ms": {
                "p50": ours[0] - sandbox[0],
                "p95": ours[1] - sandbox[1],
                "p99": ours[1] - sandbox[1],
            },
        }

    return {
        "run": {"date_utc": "2026-01-01T00:00:00Z", "git_commit": "abc1234", "duration_s": 90},
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "memory_gb": 24,
            "python": "3.11",
            "os": "Linux",
            "postgres": "15",
        },
        "settings": {
            "latency_ms": 50,
            "jitter_ms": 0,
            "customers_per_count": 5,
            "returning_customers": 50,
            "level_seconds": 6,
            "level_max_requests": 4000,
            "sdk_version": "13.0.0",
        },
        "first_connect": {
            "ours": {"1": clicks(165.0, 3), "10": clicks(166.0, 3)},
            "sdk_baseline": {"1": clicks(210.0, 4), "10": clicks(680.0, 13)},
        },
        "returning": {"1": level((52.0, 53.0), (55.0, 60.0)), "50": level((55, 90), (70, 120))},
        "peak_rss_mb": {"first_connect": 100.0},
    }


def test_targets_are_met_missed_or_not_measured() -> None:
    verdicts = {t.key: t.met for t in evaluate(_results())}
    assert verdicts["first_connect"] is True  # 166 <= 3 x 52 + 20
    assert verdicts["returning_p50"] is True  # 55 <= 52 + 5
    assert verdicts["returning_p99_overhead"] is None  # kept as a measured row, no limit
    assert verdicts["sdk_speedup"] is False  # 680 / 166 < 5
    assert verdicts["ops_page_p99"] is None
    assert verdicts["bulk_import"] is None
    assert verdicts["peak_rss"] is True

    slower = copy.deepcopy(_results())
    slower["first_connect"]["ours"]["10"]["wall_ms"]["p50"] = 177.0
    assert {t.key: t.met for t in evaluate(slower)}["first_connect"] is False


def test_report_says_it_is_generated_and_lists_every_target() -> None:
    results = _results()
    targets = evaluate(results)
    text = render_markdown(results, targets, "latency.png")
    assert "do not edit by hand" in text.lower()
    assert "abc1234" in text
    for target in targets:
        assert target.description in text
    assert "**MISSED**" in text
    assert "**not measured**" in text


def test_console_target_is_judged_on_the_slowest_page() -> None:
    def page(p95: float, errors: dict[str, int] | None = None) -> dict[str, Any]:
        summary = {"n": 200, "mean": p95 / 2, "min": 1.0, "p50": p95 / 2, "p95": p95}
        return {"latency_ms": {**summary, "p99": p95, "max": p95}, "errors": errors or {}}

    results = _results()
    assert {t.key: t.met for t in evaluate(results)}["console_p95"] is None
    results["console"] = {"events_seeded": 100, "pages": {"overview": page(40.0)}}
    results["console"]["pages"]["customer"] = page(99.0)
    [target] = [t for t in evaluate(results) if t.key == "console_p95"]
    assert target.met is True and target.measured == "99.0 ms (customer)"
    results["console"]["pages"]["audit log"] = page(12.0, {"http 500": 1})
    [target] = [t for t in evaluate(results) if t.key == "console_p95"]
    assert target.met is False and "1 failed request(s)" in target.detail
    text = render_markdown(results, evaluate(results), "latency.png")
    assert "## Operations console" in text and "| audit log | 200 |" in text


def test_provisioned_first_click_is_judged_on_one_round_trip() -> None:
    results = _results()
    assert {t.key: t.met for t in evaluate(results)}["provisioned_first_connect"] is None
    # The provisioned click has the shape of a first click, at one Codat call.
    ours = results["first_connect"]["ours"]
    results["first_connect"]["provisioned"] = {
        count: {**copy.deepcopy(ours[count]), "codat_calls": [1], "sequential_round_trips": [1]}
        for count in ("1", "10")
    }
    for count, p50 in (("1", 56.0), ("10", 57.0)):
        results["first_connect"]["provisioned"][count]["wall_ms"]["p50"] = p50
    [target] = [t for t in evaluate(results) if t.key == "provisioned_first_connect"]
    assert target.met is True and "Codat calls per click: 1" in target.detail  # 57 <= 52 + 5
    results["first_connect"]["provisioned"]["10"]["wall_ms"]["p50"] = 58.0
    assert {t.key: t.met for t in evaluate(results)}["provisioned_first_connect"] is False
    text = render_markdown(results, evaluate(results), "latency.png")
    assert "customers provisioned ahead of it" in text

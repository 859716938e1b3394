"""One bench run, start to finish: processes up, scenarios, results written, everything down."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.capacity import capacity
from bench.config import ROOT, BenchConfig, parse_args
from bench.console import console_pages
from bench.cpu import machine_busy_seconds
from bench.journeys import first_connect, profile_clicks, returning
from bench.machine import git_info, machine_info, postgres_version, utc_now
from bench.ops import OpsApiMissing, bulk_import, ops_status, require_ops_api
from bench.stack import BenchFailure, Stack, running_stack
from bench.targets import as_json, evaluate


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self, name: str) -> None:
        print(f"[{self.elapsed:6.1f}s] {name}", file=sys.stderr, flush=True)


def _settings(config: BenchConfig) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(config).items() if not isinstance(v, Path)}
    for private in ("pg_admin_dsn", "keep_logs", "write_docs"):
        settings.pop(private, None)
    settings["sdk_version"] = importlib.metadata.version("codat-bankfeeds")
    return settings


async def _machine_busy_percent(seconds: float) -> float:
    """How busy the cores are before we add anything, in percent of one core."""
    before = machine_busy_seconds()
    await asyncio.sleep(seconds)
    return round(100 * (machine_busy_seconds() - before) / seconds, 1)


async def click_scenarios(stack: Stack, results: dict[str, Any], clock: Clock) -> None:
    """The returning click beside the reference implementation, clicks per second per core,
    and where the click's CPU goes."""
    clock.phase("returning customers, the sandbox round trip and the reference click")
    results["returning"] = await returning(stack)
    clock.phase("clicks per second per core: one worker, then one per core")
    results["capacity"] = await capacity(stack)
    clock.phase("where the click's CPU goes (py-spy)")
    results["click_profile"] = await profile_clicks(stack)


async def collect(config: BenchConfig, log_dir: Path, clock: Clock) -> dict[str, Any]:
    results: dict[str, Any] = {
        "run": {"date_utc": utc_now(), **git_info()},
        "machine": machine_info(),
        "settings": _settings(config),
    }
    results["run"]["git_commit"] = results["run"].pop("commit")
    skipped: dict[str, str] = {}
    clock.phase(f"starting Postgres database, sandbox ({config.latency_ms} ms) and service")
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    busy_before = await _machine_busy_percent(1.0)
    if busy_before > 50:
        clock.phase(
            f"warning: the machine is already {busy_before:.0f}% busy (of one core) before the "
            "bench starts; other processes will compete with it and add noise"
        )
    async with running_stack(config, log_dir) as stack:
        cpu_at_start = stack.cpu.snapshot()
        results["machine"]["postgres"] = await postgres_version(stack.db_dsn)
        results["settings"]["sandbox_launcher"] = stack.sandbox_launcher
        clock.phase("first connect: ours and the SDK baseline")
        results["first_connect"] = await first_connect(stack)
        await click_scenarios(stack, results, clock)
        try:
            await require_ops_api(stack)
        except OpsApiMissing as exc:
            skipped["ops_status"] = skipped["console"] = skipped["bulk_import"] = str(exc)
            clock.phase(f"skipping ops scenarios: {exc}")
        else:
            clock.phase(f"ops status over {config.ops_customers:,} customers")
            results["ops_status"] = await ops_status(stack)
            clock.phase(f"console pages over {config.ops_customers:,} customers")
            results["console"] = await console_pages(stack)
            clock.phase(f"bulk import of {config.import_accounts:,} accounts")
            results["bulk_import"] = await bulk_import(stack)
        results["peak_rss_mb"] = {k: p.peak_mb for k, p in stack.rss.peaks.items()}
        results["run"]["background"] = {
            "loadavg_at_start": load_at_start,
            "machine_busy_percent_before_start": busy_before,
            "cpu_percent_of_one_core": stack.cpu.usage(cpu_at_start, stack.cpu.snapshot()),
        }
        clock.phase("stopping processes, dropping the database")
    if skipped:
        results["skipped"] = skipped
    results["run"]["duration_s"] = round(clock.elapsed, 1)
    return results


def publish(config: BenchConfig, results: dict[str, Any], quick: bool) -> None:
    from bench.chart import render_chart
    from bench.report import render_markdown, write_atomic, write_json

    targets = evaluate(results)
    results["targets"] = as_json(targets)
    name = "quick" if quick else "latest"
    chart = f"{'quick-' if quick else ''}latency.png"
    write_json(config.results_dir / f"{name}.json", results)
    render_chart(results, config.results_dir / chart)
    if config.write_docs:
        write_atomic(config.docs_path, render_markdown(results, targets, chart).encode())
    width = max(len(t.description) for t in targets)
    for target in targets:
        print(f"  {target.description:<{width}}  {target.measured:>16}  {target.verdict}")
    written = [config.results_dir / f"{name}.json", config.results_dir / chart]
    if config.write_docs:
        written.append(config.docs_path)
    print("wrote " + ", ".join(_shown(p) for p in written))


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


async def _run(config: BenchConfig, log_dir: Path, clock: Clock) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # clean up as on Ctrl-C
    try:
        return await collect(config, log_dir, clock)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    quick = not config.write_docs
    clock = Clock()
    log_dir = Path(tempfile.mkdtemp(prefix="bankfeeds-bench-"))
    try:
        results = asyncio.run(_run(config, log_dir, clock))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not config.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
        print("bench: interrupted; processes stopped, bench database dropped", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, BenchFailure | TimeoutError | OSError):
            traceback.print_exc()
        print(
            f"bench: failed: {type(exc).__name__}: {exc}\n"
            f"processes stopped, bench database dropped; their logs are in {log_dir}",
            file=sys.stderr,
        )
        return 1
    publish(config, results, quick)
    clock.phase("done")
    if config.keep_logs:
        print(f"process logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0

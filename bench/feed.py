"""The transaction feed at a bank's scale: ingest through `bankfeeds import-transactions` and the
ops API, then every transaction pushed to Codat by the service's push job, against the floor
Codat sets, and the SDK's one-account-after-another loop as the baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.baseline import in_daemon_thread
from bench.config import BenchConfig
from bench.cpu import scheduler_seconds
from bench.feed_baseline import POLL_SECONDS, SdkAccount, push_one_by_one
from bench.feed_data import floor_seconds, minimum_calls, transactions, write_csv
from bench.feed_seed import (
    ConnectedCompany,
    connect_companies,
    mirror_into_service,
    subscribe_to_writes,
)
from bench.feed_stack import FeedStack, running_feed_stack
from bench.processes import BenchFailure, Child
from bench.rss import RssMonitor
from bench.stats import summarize

API_WORKERS = 4  # the bank's concurrent ingest requests
PROGRESS_SECONDS = 0.5
CREATE_ROUTE = "bankTransactions"
POLL_PREFIX = "/push/"


def push_calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The sandbox's call log, read for the push: creates per account, and reads of a push or
    of the push history (polls)."""
    creates: Counter[str] = Counter()
    polls = other = 0
    for call in calls:
        path = call["path"]
        if call["method"] == "POST" and path.endswith("/" + CREATE_ROUTE):
            creates[path.split("/bankAccounts/")[0] + "/" + path.split("/")[-2]] += 1
        elif call["method"] == "GET" and (POLL_PREFIX in path or path.endswith("/push")):
            polls += 1
        else:
            other += 1
    return {"creates": sum(creates.values()), "polls": polls, "other": other,
            "accounts_called": len(creates)}  # fmt: skip


def throughput_series(
    samples: list[tuple[float, int]], window_s: float = 2.0
) -> list[tuple[float, float]]:
    """(seconds, transactions/s over the trailing window) from cumulative (seconds, pushed)."""
    series: list[tuple[float, float]] = []
    start = 0
    for t, pushed in samples:
        while samples[start][0] < t - window_s:
            start += 1
        t0, p0 = samples[start]
        if t > t0:
            series.append((round(t, 2), round((pushed - p0) / (t - t0), 1)))
    return series


async def _pushed(conn: asyncpg.Connection) -> int:
    value = await conn.fetchval(
        "select coalesce(sum(transaction_count), 0) from transaction_pushes "
        "where status = 'success'"
    )
    return int(value)


async def _ingest_cli(stack: FeedStack, path: Path, rows: int) -> dict[str, Any]:
    """The import command as its own process: wall time, its CPU and its peak RSS (rusage)."""
    started = time.perf_counter()
    child = Child(
        "import", [sys.executable, "-m", "app.cli", "import-transactions", str(path)], stack.env,
        stack.log_dir,
    )  # fmt: skip
    rss = RssMonitor(child.pid, interval=0.2)
    try:
        async with rss.track("import"):
            _, status, usage = await asyncio.to_thread(os.wait4, child.pid, 0)
    finally:
        if child.proc.returncode is None and child.proc.poll() is None:
            child.proc.kill()
    seconds = time.perf_counter() - started
    child.proc.returncode = os.waitstatus_to_exitcode(status)
    if child.proc.returncode != 0:
        raise BenchFailure(
            f"bankfeeds import-transactions exited {child.proc.returncode}:\n{child.tail()}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "transactions": rows,
        "seconds": round(seconds, 2),
        "transactions_per_s": round(rows / seconds),
        "cpu_ms_per_1000": round(cpu * 1000 / (rows / 1000), 1),
        "peak_rss_mb": round(max(usage.ru_maxrss / 1024, rss.peaks["import"].peak_mb), 1),
    }


async def _ingest_api(
    stack: FeedStack, accounts: list[tuple[str, str]], per_request: int, first: date, last: date
) -> dict[str, Any]:
    """One request of `per_request` transactions per account, `API_WORKERS` at a time."""
    queue = iter(accounts)
    latencies: list[float] = []
    rss = RssMonitor(stack.service.pid)

    async def worker() -> None:
        for customer_id, account_id in queue:
            items = [t.as_item() for t in transactions(f"api-{customer_id}-{account_id}",
                                                       per_request, first, last)]  # fmt: skip
            body = json.dumps({"transactions": items}, default=str).encode()
            sent = time.perf_counter()
            response = await stack.http.post(
                f"/ops/customers/{customer_id}/accounts/{account_id}/transactions",
                content=body,
                headers={**stack.ops_headers, "Content-Type": "application/json"},
            )
            latencies.append((time.perf_counter() - sent) * 1000)
            if response.status_code != 200 or response.json()["stored"] != per_request:
                raise BenchFailure(f"ingest answered {response.status_code}: {response.text[:300]}")

    cpu_before = stack.service_cpu_seconds()
    started = time.perf_counter()
    async with rss.track("api"), asyncio.TaskGroup() as group:
        for _ in range(min(API_WORKERS, len(accounts))):
            group.create_task(worker())
    seconds = time.perf_counter() - started
    cpu = stack.service_cpu_seconds() - cpu_before
    total = per_request * len(accounts)
    return {
        "transactions": total,
        "requests": len(accounts),
        "per_request": per_request,
        "seconds": round(seconds, 2),
        "transactions_per_s": round(total / seconds),
        "service_cpu_ms_per_1000": round(cpu * 1000 / (total / 1000), 1),
        "service_peak_rss_mb": rss.peaks["api"].peak_mb,
        "request_ms": summarize(latencies),
    }


async def _forget_api_rows(dsn: str) -> None:
    """The API's transactions were for measuring ingest; the push measures the CLI's million."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("delete from bank_transactions where id like 'api-%'")
        await conn.execute("update transaction_feeds set next_push_at = null")
        await conn.execute("VACUUM ANALYZE bank_transactions")
    finally:
        await conn.close()


async def _push(
    stack: FeedStack, total: int, per_account: dict[str, int], timeout_s: float
) -> dict[str, Any]:
    """The worker's push job, from pending to Success, against the floor."""
    config = stack.config
    await stack.reset_codat_log()
    conn = await asyncpg.connect(stack.db_dsn)
    samples: list[tuple[float, int]] = []
    web_before = stack.service_cpu_seconds()
    started = time.perf_counter()
    worker = stack.start_worker()
    try:
        rss = RssMonitor(worker.pid)
        async with rss.track("push"):
            while True:
                pushed = await _pushed(conn)
                elapsed = time.perf_counter() - started
                samples.append((round(elapsed, 2), pushed))
                if pushed >= total:
                    break
                if not worker.alive():
                    raise BenchFailure(f"the worker died:\n{worker.tail()}")
                if elapsed > timeout_s:
                    raise BenchFailure(f"{pushed:,} of {total:,} pushed after {elapsed:.0f}s")
                await asyncio.sleep(PROGRESS_SECONDS)
        seconds = time.perf_counter() - started
        worker_cpu = scheduler_seconds(worker.pid)[0]
        web_cpu = stack.service_cpu_seconds() - web_before
        inbox = {
            f"{r['event_type']} {r['status']}": int(r["n"])
            for r in await conn.fetch(
                "select event_type, status, count(*) as n from codat_events "
                "where event_type like 'bankTransactions.write.%' group by 1, 2"
            )
        }
    finally:
        worker.stop()
        await conn.close()
    calls = await stack.codat_calls()
    usage = push_calls(calls)
    minimum = minimum_calls(per_account)
    round_trip = config.latency_ms / 1000
    floor = floor_seconds(minimum, round_trip, config.feed_push_concurrency)
    cpu = worker_cpu + web_cpu
    return {
        "transactions": total,
        "accounts": len(per_account),
        "seconds": round(seconds, 2),
        "floor_seconds": round(floor, 2),
        "times_floor": round(seconds / floor, 2),
        "concurrency": config.feed_push_concurrency,
        "round_trip_ms": config.latency_ms,
        "transactions_per_s": round(total / seconds),
        "codat_creates": usage["creates"],
        "minimum_creates": minimum,
        "codat_polls": usage["polls"],
        "codat_other_calls": usage["other"],
        "write_webhooks": inbox,
        "service_cpu_ms_per_1000": round(cpu * 1000 / (total / 1000), 1),
        "worker_cpu_s": round(worker_cpu, 2),
        "web_cpu_s": round(web_cpu, 2),
        "worker_peak_rss_mb": rss.peaks["push"].peak_mb,
        "progress": samples,
        "throughput": throughput_series(samples),
        "floor_transactions_per_s": round(total / floor),
    }


async def _baseline(
    stack: FeedStack, companies: list[ConnectedCompany], per_account: int, first: date, last: date
) -> dict[str, Any]:
    accounts = [
        SdkAccount(c.company_id, c.connection_id, a, f"{c.customer_id}-{a}")
        for c in companies
        for a in c.account_ids
    ]
    await stack.reset_codat_log()
    done = await in_daemon_thread(
        push_one_by_one,
        stack.sandbox_url,
        stack.secrets.codat_api_key,
        accounts,
        per_account,
        first,
        last,
    )
    total = done.transactions
    return {
        "accounts": done.accounts,
        "transactions": total,
        "seconds": round(done.seconds, 2),
        "transactions_per_s": round(total / done.seconds) if done.seconds else None,
        "codat_creates": done.creates,
        "codat_polls": done.polls,
        "failed": done.failed,
        "create_ms": summarize(done.create_ms or []),
        "poll_seconds": POLL_SECONDS,
    }


async def feed_scenario(config: BenchConfig, log_dir: Path, phase: Any) -> dict[str, Any]:
    """Seed, ingest (API, then CLI), push, baseline; each measured on its own."""
    per_company = config.feed_accounts_per_customer
    ours = config.feed_accounts // per_company
    theirs = config.feed_baseline_accounts // per_company
    per_account = config.feed_transactions // config.feed_accounts
    async with running_feed_stack(config, log_dir) as stack:
        today = date.today()
        start, first = today - timedelta(days=3), today - timedelta(days=2)
        phase(f"feed: connecting {ours + theirs:,} companies in the sandbox")
        seeded = time.perf_counter()
        await subscribe_to_writes(stack)
        companies = await connect_companies(
            stack, [f"feed-{n:06d}" for n in range(ours)], per_company, start
        )
        sdk_companies = await connect_companies(
            stack, [f"sdk-{n:06d}" for n in range(theirs)], per_company, start
        )
        await mirror_into_service(stack.db_dsn, companies, start)
        seed_seconds = time.perf_counter() - seeded
        accounts = [(c.customer_id, a) for c in companies for a in c.account_ids]
        results: dict[str, Any] = {
            "accounts": len(accounts),
            "transactions": per_account * len(accounts),
            "seed_seconds": round(seed_seconds, 1),
            "settings": {
                "push_concurrency": config.feed_push_concurrency,
                "sandbox_push_delay_s": config.feed_push_delay_seconds,
                "api_workers": API_WORKERS,
            },
        }
        per_request = config.feed_api_per_request
        api_accounts = accounts[: config.feed_transactions // per_request]
        phase(f"feed: {per_request * len(api_accounts):,} transactions through the API")
        results["ingest_api"] = await _ingest_api(stack, api_accounts, per_request, first, today)
        await _forget_api_rows(stack.db_dsn)
        path = log_dir / "transactions.csv"
        rows = await asyncio.to_thread(write_csv, path, accounts, per_account, first, today)
        phase(f"feed: {rows:,} transactions through bankfeeds import-transactions")
        results["ingest_cli"] = await _ingest_cli(stack, path, rows)
        with contextlib.suppress(OSError):
            path.unlink()
        phase(f"feed: pushing {rows:,} transactions to Codat")
        counts = {f"{c}/{a}": per_account for c, a in accounts}
        results["push"] = await _push(stack, rows, counts, config.feed_push_timeout_seconds)
        phase(f"feed: SDK baseline on {theirs * per_company:,} accounts")
        results["sdk_baseline"] = await _baseline(stack, sdk_companies, per_account, first, today)
        ours_rate = results["push"]["transactions_per_s"]
        sdk_rate = results["sdk_baseline"]["transactions_per_s"]
        results["push_vs_sdk"] = round(ours_rate / sdk_rate, 1) if sdk_rate else None
    return results

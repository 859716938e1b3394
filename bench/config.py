"""What a bench run does: sizes, durations and the simulated Codat round trip."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCIES_MS = (20, 50, 150)


@dataclass(frozen=True)
class BenchConfig:
    latency_ms: int = 50
    jitter_ms: float = 0.0
    # first connect: customers per account count, ours and the SDK baseline alike
    account_counts: tuple[int, ...] = (1, 10, 50)
    customers_per_count: int = 5
    # returning customers: closed loop per concurrency level, bounded in time and count
    concurrency_levels: tuple[int, ...] = (1, 10, 50)
    returning_customers: int = 50
    level_seconds: float = 8.0
    level_max_requests: int = 4000
    warmup_requests_per_worker: int = 2
    # the service's and the reference's CPU with no click, taken off each click's
    idle_seconds: float = 5.0
    # where the click's CPU goes: py-spy over this many returning and first clicks
    profile_clicks: int = 600
    # clicks per second per core: each concurrency level of the sweep, this long
    capacity_seconds: float = 4.0
    profile_first_clicks: int = 30
    # ops status on a populated database
    ops_customers: int = 10_000
    ops_accounts_per_customer: int = 5
    ops_feed_share: float = 0.6
    ops_requests: int = 300
    ops_seconds: float = 15.0
    # the console's pages over the same database, with a webhook inbox of this size
    console_requests: int = 200
    console_seconds: float = 10.0
    console_events: int = 20_000
    # bulk import through the ops API
    import_accounts: int = 10_000
    import_accounts_per_customer: int = 5
    import_timeout_seconds: float = 120.0
    database: str = "bankfeeds_bench"
    pg_admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    results_dir: Path = ROOT / "bench" / "results"
    docs_path: Path = ROOT / "docs" / "performance.md"
    write_docs: bool = True
    keep_logs: bool = False

    def quick(self) -> BenchConfig:
        """A smaller run for trying the harness; its numbers are not comparable."""
        return replace(
            self,
            results_dir=Path(tempfile.gettempdir()) / "bankfeeds-bench-quick",
            customers_per_count=2,
            returning_customers=10,
            level_seconds=2.0,
            profile_clicks=150,
            capacity_seconds=1.5,
            profile_first_clicks=8,
            ops_customers=1_000,
            ops_requests=50,
            console_requests=30,
            console_events=2_000,
            import_accounts=1_000,
            write_docs=False,
        )


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the service against a latency-shaped Codat sandbox.",
    )
    parser.add_argument(
        "--latency",
        type=int,
        choices=LATENCIES_MS,
        default=50,
        help="simulated Codat round trip in ms (default 50)",
    )
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="extra uniform 0..J ms on each Codat call"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes to try the harness; results go to a temporary directory",
    )
    parser.add_argument("--database", default="bankfeeds_bench")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the sandbox's and service's logs"
    )
    args = parser.parse_args(argv)
    if args.jitter < 0:
        parser.error("--jitter must not be negative")
    config = BenchConfig(
        latency_ms=args.latency,
        jitter_ms=args.jitter,
        database=args.database,
        keep_logs=args.keep_logs,
    )
    return config.quick() if args.quick else config

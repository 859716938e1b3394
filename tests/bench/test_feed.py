"""The feed scenario's arithmetic: Codat's floor, the minimum calls, the call log read, the
throughput series, the targets and the generated transactions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bench.config import ROOT
from bench.feed import push_calls, throughput_series
from bench.feed_data import floor_seconds, minimum_calls, transactions
from bench.targets import feed_targets

COMPANY = "/companies/c1"
CREATE = COMPANY + "/connections/k1/push/bankAccounts/{}/bankTransactions"


def test_minimum_calls_are_ceil_n_over_1000_per_account() -> None:
    assert minimum_calls({"a": 100, "b": 1000, "c": 1001, "d": 2500, "e": 0}) == 1 + 1 + 2 + 3
    assert minimum_calls({f"acct-{n}": 100 for n in range(10_000)}) == 10_000


def test_the_floor_is_calls_times_round_trip_over_connections() -> None:
    assert floor_seconds(10_000, 0.05, 8) == pytest.approx(62.5)
    assert floor_seconds(3, 0.05, 1) == pytest.approx(0.15)
    with pytest.raises(ValueError):
        floor_seconds(1, 0.05, 0)


def test_the_call_log_counts_creates_per_account_and_reads_of_a_push_as_polls() -> None:
    calls = [
        {"method": "POST", "path": CREATE.format("acct-000")},
        {"method": "POST", "path": CREATE.format("acct-001")},
        {"method": "POST", "path": CREATE.format("acct-001")},
        {"method": "GET", "path": COMPANY + "/push/key-1"},
        {"method": "GET", "path": COMPANY + "/push"},
        {"method": "GET", "path": COMPANY + "/connections/k1"},
    ]
    assert push_calls(calls) == {"creates": 3, "polls": 2, "other": 1, "accounts_called": 2}


def test_throughput_is_over_a_trailing_window() -> None:
    samples = [(0.0, 0), (1.0, 100), (2.0, 300), (3.0, 300), (4.0, 700)]
    assert throughput_series(samples, window_s=2.0) == [
        (1.0, 100.0),
        (2.0, 150.0),
        (3.0, 100.0),
        (4.0, 200.0),
    ]


def test_generated_transactions_keep_quickbooks_rules_and_a_running_balance() -> None:
    first, last = date(2026, 12, 1), date(2026, 12, 3)
    made = list(transactions("cus-acct", 100, first, last))
    assert len({t.id for t in made}) == 100
    assert [t.date for t in made] == sorted(t.date for t in made)
    assert made[0].date == first and made[-1].date == last
    balance = Decimal("1250.75")
    for t in made:
        balance += t.amount
        assert t.balance == balance
        assert (t.amount > 0) == (t.transaction_type == "Credit")


def _feed(seconds: float, creates: int, polls: int, cpu: float) -> dict[str, Any]:
    push = {
        "transactions": 1_000_000, "accounts": 10_000, "seconds": seconds, "floor_seconds": 62.5,
        "times_floor": round(seconds / 62.5, 2), "concurrency": 8, "round_trip_ms": 50,
        "codat_creates": creates, "minimum_creates": 10_000, "codat_polls": polls,
        "codat_other_calls": 0, "service_cpu_ms_per_1000": cpu, "worker_cpu_s": 1.0,
        "web_cpu_s": 1.0,
    }  # fmt: skip
    cli = {"transactions": 1_000_000, "transactions_per_s": 30_000, "cpu_ms_per_1000": 30.0,
           "peak_rss_mb": 120.0}  # fmt: skip
    return {"feed": {"push": push, "ingest_cli": cli}}


def test_feed_targets_are_met_only_within_their_limits() -> None:
    met = {t.key: t.met for t in feed_targets(_feed(90.0, 10_000, 0, 9.5))}
    assert met == {
        "feed_cli_rate": True,
        "feed_cli_rss": True,
        "feed_push_floor": True,
        "feed_push_calls": True,
        "feed_push_cpu": True,
    }
    missed = {t.key: t.met for t in feed_targets(_feed(95.0, 10_001, 0, 10.5))}
    assert not missed["feed_push_floor"] and not missed["feed_push_calls"]
    assert not missed["feed_push_cpu"]
    assert {t.key: t.met for t in feed_targets(_feed(60.0, 10_000, 1, 1.0))}[
        "feed_push_calls"
    ] is False
    assert all(t.met is None for t in feed_targets({}))


def test_a_report_taking_an_earlier_feed_run_names_that_run(tmp_path: Any) -> None:
    import json

    from bench.config import parse_args
    from bench.report import feed_section

    earlier = json.loads((ROOT / "bench" / "results" / "feed.json").read_text())
    section = "\n".join(feed_section({"feed": earlier["feed"]}, "feed-push.png"))
    assert "feed-only run of" not in section
    taken = {"feed": earlier["feed"], "feed_run": earlier["run"]}
    section = "\n".join(feed_section(taken, "feed-push.png"))
    assert f"feed-only run of {earlier['run']['date_utc']}" in section
    assert earlier["run"]["git_commit"][:7] in section
    with pytest.raises(SystemExit):
        parse_args(["--feed-from", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "feed", "--feed-from", str(ROOT / "bench/results/feed.json")])

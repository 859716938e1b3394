"""`bench/results/latency.png`: latency by scenario, ours against the baselines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench.report import write_atomic
from bench.targets import (
    FIRST_CONNECT_ROUND_TRIPS,
    FIRST_CONNECT_SLACK_MS,
    OPS_PAGE_P99_MS,
    sandbox_round_trip_ms,
)

OURS, BASELINE, DIRECT = "#1f6feb", "#d1242f", "#8c959f"


def _bars(ax: Any, labels: list[str], series: list[tuple[str, list[float], str]]) -> None:
    width = 0.8 / len(series)
    for i, (name, values, colour) in enumerate(series):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name, color=colour)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("ms")
    ax.legend(fontsize=7, loc="upper left")


def render_chart(results: dict[str, Any], path: Path) -> None:
    panels = [k for k in ("first_connect", "returning", "ops_status") if results.get(k)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    settings = results["settings"]
    for ax, panel in zip(axes[0], panels, strict=True):
        data = results[panel]
        if panel == "first_connect":
            counts = list(data["ours"])
            _bars(
                ax,
                [f"{c} acct" for c in counts],
                [
                    ("ours p50", [data["ours"][c]["wall_ms"]["p50"] for c in counts], OURS),
                    (
                        "SDK baseline p50",
                        [data["sdk_baseline"][c]["wall_ms"]["p50"] for c in counts],
                        BASELINE,
                    ),
                ],
            )
            rtt = sandbox_round_trip_ms(results)
            if rtt is not None:
                ax.axhline(
                    FIRST_CONNECT_ROUND_TRIPS * rtt + FIRST_CONNECT_SLACK_MS,
                    color="black",
                    ls="--",
                    lw=0.8,
                    label="target: 3 round trips + 20 ms",
                )
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize=7, loc="upper left")
            ax.set_title("First connect (wall time per click)", fontsize=10)
        elif panel == "returning":
            levels = list(data)
            _bars(
                ax,
                [f"c={c}" for c in levels],
                [
                    (
                        "sandbox p50",
                        [data[c]["sandbox"]["latency_ms"]["p50"] for c in levels],
                        DIRECT,
                    ),
                    ("ours p50", [data[c]["ours"]["latency_ms"]["p50"] for c in levels], OURS),
                    (
                        "sandbox p99",
                        [data[c]["sandbox"]["latency_ms"]["p99"] for c in levels],
                        "#57606a",
                    ),
                    ("ours p99", [data[c]["ours"]["latency_ms"]["p99"] for c in levels], "#0a3069"),
                ],
            )
            ax.set_title("Returning customer vs the sandbox round trip", fontsize=10)
        else:
            names = {"bank_feeds_page": "bank-feeds page", "customer_bank_feed": "one customer"}
            _bars(
                ax,
                list(names.values()),
                [
                    ("p50", [data[k]["latency_ms"].get("p50", 0) for k in names], OURS),
                    ("p99", [data[k]["latency_ms"].get("p99", 0) for k in names], "#0a3069"),
                ],
            )
            ax.axhline(OPS_PAGE_P99_MS, color="black", ls="--", lw=0.8, label="page p99 target")
            ax.legend(fontsize=7, loc="upper right")
            ax.set_title(f"Ops status ({data['database']['customers']:,} customers)", fontsize=10)
    fig.suptitle(
        f"bankfeeds-connect, Codat round trip {settings['latency_ms']} ms, "
        f"{results['run']['date_utc']} ({results['run']['git_commit']})",
        fontsize=10,
    )
    _save_png(fig, path)


def render_feed_chart(results: dict[str, Any], path: Path) -> None:
    """`feed-push.png`: transactions pushed per second over time, beside Codat's floor."""
    push = (results.get("feed") or {}).get("push")
    if not push or not push.get("throughput"):
        return
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    xs = [t for t, _ in push["throughput"]]
    ax.plot(xs, [r for _, r in push["throughput"]], color=OURS, lw=1.2, label="ours (2 s window)")
    floor_rate = push["floor_transactions_per_s"]
    ax.axhline(
        floor_rate,
        color="black",
        ls="--",
        lw=0.8,
        label=f"floor: {push['concurrency']} connections x {push['round_trip_ms']} ms",
    )
    ax.axvline(push["floor_seconds"], color=DIRECT, ls=":", lw=0.8, label="floor time")
    ax.axvline(push["floor_seconds"] * 1.5, color=BASELINE, ls=":", lw=0.8, label="1.5x floor")
    sdk = (results.get("feed") or {}).get("sdk_baseline") or {}
    if sdk.get("transactions_per_s"):
        ax.axhline(sdk["transactions_per_s"], color=BASELINE, lw=0.8, label="SDK loop (mean)")
    ax.set_xlabel("seconds since the push job started")
    ax.set_ylabel("transactions pushed (Success) per second")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(
        f"Push of {push['transactions']:,} transactions, {push['accounts']:,} accounts: "
        f"{push['seconds']:.0f} s against a floor of {push['floor_seconds']:.0f} s",
        fontsize=10,
    )
    _save_png(fig, path)


def _save_png(fig: Any, path: Path) -> None:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())

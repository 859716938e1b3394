"""Percentiles and summaries of latency samples, in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, mean, min, p50, p95, p99, max, rounded to 0.01 ms."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), 2),
        "min": round(min(values), 2),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


@dataclass(frozen=True)
class Interval:
    start: float
    end: float


def sequential_depth(intervals: Sequence[Interval]) -> int:
    """The longest chain of calls each starting after the previous ended.

    For intervals this equals the largest set of pairwise non-overlapping ones, which the
    earliest-end-first greedy finds: the number of round trips a caller waited for in turn.
    """
    depth = 0
    last_end = -math.inf
    for interval in sorted(intervals, key=lambda i: i.end):
        if interval.start >= last_end:
            depth += 1
            last_end = interval.end
    return depth


def calls_in_turn(ends: Sequence[float], round_trip: float) -> int:
    """Sequential calls from a log of end times, each call lasting at least `round_trip`.

    [end - round_trip, end] lies inside each call, and calls made one after the other
    never overlap, so the chain of those spans counts the round trips waited for in turn.
    """
    return sequential_depth([Interval(end - round_trip, end) for end in ends])

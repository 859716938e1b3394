"""CPU time: ours per process, and how busy the machine was with everything else."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def scheduler_seconds(pid: int) -> tuple[float, float]:
    """(on a CPU, runnable but waiting for one) summed over the process's threads, to the ns.

    Waiting time is the direct measure of contention: how long the process was ready to run
    while the cores were busy with something else.
    """
    running = waiting = 0
    try:
        tasks = list(os.scandir(f"/proc/{pid}/task"))
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            on_cpu, on_queue, _ = Path(task.path, "schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        running += int(on_cpu)
        waiting += int(on_queue)
    return running / 1e9, waiting / 1e9


def descendants(pid: int) -> list[int]:
    """The process's children, their children, and so on (uvicorn's workers)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(os.scandir(f"/proc/{parent}/task"))
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in Path(task.path, "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            todo.extend(children)
    return found


def tree_scheduler_seconds(pid: int) -> tuple[float, float]:
    """`scheduler_seconds` of the process and all its descendants, summed."""
    running = waiting = 0.0
    for each in (pid, *descendants(pid)):
        on_cpu, on_queue = scheduler_seconds(each)
        running += on_cpu
        waiting += on_queue
    return running, waiting


def postgres_cpu_seconds(database: str) -> float:
    """The Postgres backends serving `database` (their title names it), in clock ticks.

    A backend that exits takes its time with it; the bench's pools keep theirs open.
    """
    marker = f" {database} ".encode()
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if marker not in Path(entry.path, "cmdline").read_bytes():
                continue
            if Path(entry.path, "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        total += process_cpu_seconds(int(entry.name))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle, since boot."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    service: float
    service_waiting: float
    sandbox: float
    harness: float
    postgres: float
    machine: float


class CpuMeter:
    """The service is its process tree: with `--workers N`, the workers are its children."""

    def __init__(self, service_pid: int, sandbox_pid: int, database: str) -> None:
        self.service_pid = service_pid
        self.sandbox_pid = sandbox_pid
        self.database = database
        # What the server spends with no request at all (its background jobs' polling), per
        # second of wall time; set by `measure_idle`, subtracted by `net_ms_per_request`.
        self.idle_ms_per_second: float | None = None

    async def measure_idle(self, seconds: float) -> float:
        """The server's CPU per second while nobody calls it."""
        before = self.snapshot()
        await asyncio.sleep(seconds)
        after = self.snapshot()
        self.idle_ms_per_second = round(
            1000 * (after.service - before.service) / max(after.at - before.at, 1e-9), 3
        )
        return self.idle_ms_per_second

    def snapshot(self) -> CpuSnapshot:
        service, service_waiting = tree_scheduler_seconds(self.service_pid)
        return CpuSnapshot(
            at=time.monotonic(),
            service=service,
            service_waiting=service_waiting,
            sandbox=scheduler_seconds(self.sandbox_pid)[0],
            harness=time.process_time(),
            postgres=postgres_cpu_seconds(self.database),
            machine=machine_busy_seconds(),
        )

    @staticmethod
    def usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        """Each side's share of one core over the interval, in percent; `other` is the rest."""
        wall = max(after.at - before.at, 1e-9)
        shares = {
            name: max(0.0, 100 * (getattr(after, name) - getattr(before, name)) / wall)
            for name in ("service", "service_waiting", "sandbox", "harness", "postgres", "machine")
        }
        ours = sum(shares[n] for n in ("service", "sandbox", "harness", "postgres"))
        shares["other"] = max(0.0, shares["machine"] - ours)
        return {name: round(value, 1) for name, value in shares.items()}


def net_ms_per_request(
    spent_seconds: float, wall_seconds: float, requests: int, idle_ms_per_second: float
) -> float | None:
    """CPU per request less what the server would have spent idle meanwhile; None without a
    request. Never below zero: idle work may pause while requests are served."""
    if requests <= 0:
        return None
    net_ms = spent_seconds * 1000 - idle_ms_per_second * wall_seconds
    return round(max(0.0, net_ms) / requests, 2)

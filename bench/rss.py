"""Peak resident memory of the service process, per scenario."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.05


def read_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM from /proc/<pid>/status, in kB; empty once the process is gone."""
    found: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0])
    return found


def reset_high_water_mark(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class RssPeak:
    peak_kb: int = 0
    samples: int = 0
    hwm_reset: bool = False

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)


class RssMonitor:
    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks: dict[str, RssPeak] = {}

    @contextlib.asynccontextmanager
    async def track(self, scenario: str) -> AsyncIterator[RssPeak]:
        """Sample VmRSS every `interval` while the block runs; VmHWM catches spikes between."""
        peak = RssPeak(hwm_reset=reset_high_water_mark(self.pid))

        def sample() -> None:
            memory = read_memory_kb(self.pid)
            peak.peak_kb = max(peak.peak_kb, memory.get("VmRSS", 0))
            if peak.hwm_reset:
                peak.peak_kb = max(peak.peak_kb, memory.get("VmHWM", 0))
            peak.samples += 1

        async def sampler() -> None:
            while True:
                sample()
                await asyncio.sleep(self.interval)

        task = asyncio.create_task(sampler())
        try:
            yield peak
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sample()
            previous = self.peaks.get(scenario)
            if previous is None or peak.peak_kb > previous.peak_kb:
                self.peaks[scenario] = peak

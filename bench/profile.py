"""Where the service's CPU goes: py-spy samples the service process while clicks run, and
the samples are summed by layer (the package on top of each stack) and by our functions."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

SAMPLES_PER_SECOND = 250
TOP_FUNCTIONS = 12
# The package a frame's file belongs to, by the first path part that names one.
LAYERS = {
    "app": "our code",
    "sqlalchemy": "SQLAlchemy",
    "asyncpg": "asyncpg",
    "httpx": "httpx",
    "httpcore": "httpx",
    "h11": "HTTP parsing (h11)",
    "anyio": "anyio",
    "starlette": "Starlette / FastAPI",
    "fastapi": "Starlette / FastAPI",
    "uvicorn": "uvicorn",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "jwt": "PyJWT",
    "cryptography": "PyJWT",
    "logging": "logging",
    "asyncio": "asyncio",
    "json": "json",
    "prometheus_client": "metrics",
}


def pyspy() -> str | None:
    """The py-spy next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def sampling(pid: int, output: Path) -> AsyncIterator[None]:
    """py-spy records the process (and its children) while the block runs."""
    binary = pyspy()
    if binary is None:
        raise FileNotFoundError("py-spy is not installed (uv sync --group bench)")
    log = output.with_suffix(".log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
        "--rate", str(SAMPLES_PER_SECOND), "--function", "--output", str(output),
        stdout=log, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await asyncio.sleep(1.0)  # py-spy attaches before the first click
        if proc.returncode is not None:
            raise RuntimeError(f"py-spy exited with {proc.returncode}: see {log.name}")
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # it writes the file, then exits
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def parse_raw(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: `frame;frame;...;frame COUNT`, outermost first."""
    stacks = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        stacks.append((frames.split(";"), int(count)))
    return stacks


def _file(frame: str) -> str:
    """`function (path/to/file.py:12)` -> `path/to/file.py`."""
    inside = frame.rpartition(" (")[2].rstrip(")")
    return inside.rsplit(":", 1)[0]


# A thread parked on a lock is not on a CPU, though py-spy may sample it.
IDLE_FILES = ("threading.py", "queue.py")
# uvloop's loop is C: its time (polling, socket calls, callbacks) shows in the frame that
# started it.
EVENT_LOOP = "event loop (uvloop) and socket I/O"


# The process's entry point is under every sample: it says nothing.
ENTRY_POINT = "app.cli."


def idle(frame: str) -> bool:
    return _file(frame) in IDLE_FILES


def layer(frame: str) -> str:
    """The package the frame's file belongs to (py-spy names files from their package)."""
    if frame.startswith("Runner.run (asyncio/runners.py"):
        return EVENT_LOOP
    parts = Path(_file(frame)).parts
    return LAYERS.get(parts[0], "other (Python, C)") if parts else "other (Python, C)"


def our_function(frame: str) -> str | None:
    """`app.module.function` for a frame in our code, else None."""
    path = Path(_file(frame))
    if not path.parts or path.parts[0] != "app":
        return None
    return ".".join(path.with_suffix("").parts) + "." + frame.rpartition(" (")[0]


def summarize_samples(stacks: list[tuple[list[str], int]], clicks: int) -> dict[str, Any]:
    """Samples by layer (the frame on top: where the CPU was) and by our functions (anywhere
    in the stack: what they cost with everything they call), as shares of all samples."""
    stacks = [(frames, count) for frames, count in stacks if frames and not idle(frames[-1])]
    total = sum(count for _, count in stacks)
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for frames, count in stacks:
        python_frames = [f for f in frames if " (" in f]
        if not python_frames:
            continue
        by_layer[layer(python_frames[-1])] += count
        for name in {n for f in python_frames if (n := our_function(f))}:
            if not name.startswith(ENTRY_POINT):
                by_function[name] += count

    def share(value: int) -> float:
        return round(100 * value / total, 1) if total else 0.0

    return {
        "samples": total,
        "clicks": clicks,
        "samples_per_second": SAMPLES_PER_SECOND,
        "layers": {name: share(n) for name, n in by_layer.most_common()},
        "our_functions": {name: share(n) for name, n in by_function.most_common(TOP_FUNCTIONS)},
    }


def read_profile(path: Path, clicks: int) -> dict[str, Any]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return summarize_samples(parse_raw(lines), clicks)

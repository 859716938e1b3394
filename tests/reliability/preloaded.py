"""`bankfeeds worker` processes forked from one that has already imported the app, so a crash
trial costs a fork, not a fresh interpreter's imports (seconds on a busy machine).

    python -m tests.reliability.preloaded      # reads commands on stdin, one a line:
    start <stage or -> <log path>  -> the child's pid; it runs `bankfeeds worker`, armed at the
                                      stage (BANKFEEDS_KILL_AT), its output in the log
    wait <pid> <seconds>           -> how it ended (-9: SIGKILL), or "running"
    stop <pid>                     -> SIGTERM, then how it ended

Each child is the real command in a process of its own: its own event loop, connections and
settings read from the environment after the fork; only the imports are shared.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app import kill_points

STOP_SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[2]


def _start(stage: str, log_path: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        if stage == "-":
            os.environ.pop(kill_points.ENV, None)
        else:
            os.environ[kill_points.ENV] = stage
        importlib.reload(kill_points)  # armed (or not) from this process's environment
        from app.cli import main

        code = main(["worker"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _ended(pid: int, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return str(os.waitstatus_to_exitcode(status))
        if time.monotonic() >= deadline:
            return "running"
        time.sleep(0.02)


def _stop(pid: int) -> str:
    os.kill(pid, signal.SIGTERM)
    ended = _ended(pid, STOP_SECONDS)
    if ended == "running":
        os.kill(pid, signal.SIGKILL)
        ended = _ended(pid, STOP_SECONDS)
    return ended


def serve() -> None:
    import app.cli  # noqa: F401  the imports every child shares

    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "start":
            answer = str(_start(args[0].replace("+", " "), args[1]))
        elif command == "wait":
            answer = _ended(int(args[0]), float(args[1]))
        elif command == "stop":
            answer = _stop(int(args[0]))
        else:
            answer = f"unknown command {command!r}"
        print(answer, flush=True)


class Workers:
    """The test's side: start workers, see how they ended, stop them."""

    def __init__(self, proc: subprocess.Popen[str], workdir: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.started = 0
        self.running: set[int] = set()

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def start(self, stage: str | None = None) -> int:
        log_path = self.workdir / f"worker-{self.started}.log"
        pid = int(self._ask(f"start {(stage or '-').replace(' ', '+')} {log_path}"))
        self.started += 1
        self.running.add(pid)
        return pid

    def ended(self, pid: int, seconds: float) -> int | None:
        """The exit code (-9: SIGKILL) once it ends within `seconds`; None if still running."""
        answer = self._ask(f"wait {pid} {seconds}")
        if answer == "running":
            return None
        self.running.discard(pid)
        return int(answer)

    def stop(self, pid: int) -> int:
        self.running.discard(pid)
        return int(self._ask(f"stop {pid}"))

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.workdir.glob("worker-*.log"))


@contextmanager
def preloaded_workers(workdir: Path, env: dict[str, str]) -> Iterator[Workers]:
    """The forking parent, with the environment every worker shares; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.preloaded"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(workdir / "preloaded.log").open("ab"),
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=workdir,
        text=True,
    )
    workers = Workers(proc, workdir)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield workers
    finally:
        for pid in list(workers.running):
            workers.stop(pid)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    serve()

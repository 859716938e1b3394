"""Run the service (or the sandbox) as a real process on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy in {timeout}s")


def service_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "APP_ENV"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "CONNECT_TOKEN_SECRET": CONNECT_SECRET,
            "OPS_API_TOKEN": OPS_TOKEN,
            "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "APP_ENV": "development",
            "SANDBOX_DISCONNECT_DELAY_SECONDS": "1",
            "CONNECT_CLICKS_PER_MINUTE": "10000",
        }
    )
    env.update(extra)
    return env


@contextmanager
def _spawn(
    args: list[str],
    workdir: Path,
    port: int,
    name: str,
    health_path: str,
    env: dict[str, str] | None = None,
) -> Iterator[Process]:
    """Start `python -m app.cli ARGS` on `port`, wait until healthy, stop it on exit."""
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process = Process(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_healthy(process.url + health_path, proc)
        yield process
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def run_service(
    database_url: str,
    workdir: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    **extra_env: str,
) -> Iterator[Process]:
    """`bankfeeds serve --migrate` in its own process (and `workers` worker processes: one
    unless a test is about more); stopped on exit."""
    port = port or free_port()
    with _spawn(
        ["serve", "--migrate", "--port", str(port), "--workers", str(workers)],
        workdir,
        port,
        "service",
        "/healthz",
        service_env(database_url, port, **extra_env),
    ) as process:
        yield process


SANDBOX_KEY = "replica-test-codat-key-0123456789"


@contextmanager
def run_sandbox_process(workdir: Path, *, port: int | None = None) -> Iterator[Process]:
    """`bankfeeds sandbox` in its own process, shared by several service processes."""
    port = port or free_port()
    args = ["sandbox", "--port", str(port), "--api-key", SANDBOX_KEY]
    with _spawn(args, workdir, port, "sandbox", "/_sandbox/calls") as process:
        yield process


def against_sandbox(sandbox: Process) -> dict[str, str]:
    """Environment that points a service at a sandbox process as if it were Codat."""
    return {
        "CODAT_API_KEY": SANDBOX_KEY,
        "CODAT_BASE_URL": sandbox.url,
        "CODAT_LINK_HOSTS": "127.0.0.1",
        "RECONCILER_ENABLED": "false",
    }


def sandbox_headers() -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(SANDBOX_KEY.encode()).decode()}

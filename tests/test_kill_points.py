"""Kill points: armed by the environment, they SIGKILL the process; unarmed, they do nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from app import kill_points

PASS_BY = "from app import kill_points as k; k.reached({stage!r}); print('alive')"
# A loopback "Codat" that reads the whole request, says so, and answers a second later; the
# client's call carries the in-flight point's extensions.
IN_FLIGHT = """
import asyncio, httpx
from app import kill_points as k

async def codat(reader, writer):
    head = await reader.readuntil(b"\\r\\n\\r\\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
    await reader.readexactly(length)
    print("codat has the whole request", flush=True)
    await asyncio.sleep(1)
    writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n{}")
    await writer.drain()

async def main():
    server = await asyncio.start_server(codat, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"http://127.0.0.1:{port}/push", content=b"x" * 5000,
            extensions=k.in_flight("push in flight"),
        )
    print("answered", answer.status_code, flush=True)

asyncio.run(main())
"""


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unarmed_points_do_nothing() -> None:
    for stage in kill_points.STAGES:
        kill_points.reached(stage)  # this process is not armed: still here
        assert kill_points.in_flight(stage) == {}


def test_the_stages_are_named_once() -> None:
    assert len(set(kill_points.STAGES)) == len(kill_points.STAGES) == 13
    assert kill_points.PUSH_STAGES[0] == "push recording"


@pytest.mark.parametrize("stage", ["company created", "push answered"])
def test_the_armed_point_kills_the_process_and_the_others_pass(stage: str) -> None:
    other = next(s for s in kill_points.STAGES if s != stage)
    armed = run(PASS_BY.format(stage=stage), BANKFEEDS_KILL_AT=stage)
    passed = run(PASS_BY.format(stage=stage), BANKFEEDS_KILL_AT=other)
    assert armed.returncode == -signal.SIGKILL and "alive" not in armed.stdout
    assert passed.returncode == 0 and passed.stdout.strip() == "alive"


def test_an_armed_in_flight_point_kills_once_the_request_is_sent_before_the_answer() -> None:
    armed = run(IN_FLIGHT, BANKFEEDS_KILL_AT="push in flight")
    unarmed = run(IN_FLIGHT, BANKFEEDS_KILL_AT="push answered")
    assert armed.returncode == -signal.SIGKILL, armed.stderr
    assert armed.stdout.splitlines() == ["codat has the whole request"]
    assert unarmed.returncode == 0, unarmed.stderr
    assert unarmed.stdout.splitlines() == ["codat has the whole request", "answered 200"]


@pytest.mark.parametrize("stage", ["", "companies created", "push sent"])
def test_an_unknown_stage_is_refused_when_armed(stage: str) -> None:
    done = run(PASS_BY.format(stage="company created"), BANKFEEDS_KILL_AT=stage)
    if stage:
        assert done.returncode == 1 and "is not a stage" in done.stderr
    else:
        assert done.returncode == 0  # empty: unarmed

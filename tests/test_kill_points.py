"""Kill points: armed by the environment, they SIGKILL the process; unarmed, they do nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from app import kill_points

PASS_BY = "from app import kill_points as k; k.reached('company created'); print('alive')"


def run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PASS_BY],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unarmed_points_do_nothing() -> None:
    for stage in kill_points.CLICK_STAGES:
        kill_points.reached(stage)  # this process is not armed: still here


def test_the_armed_point_kills_the_process_and_the_others_pass() -> None:
    armed = run(BANKFEEDS_KILL_AT="company created")
    other = run(BANKFEEDS_KILL_AT="company stored")
    assert armed.returncode == -signal.SIGKILL and "alive" not in armed.stdout
    assert other.returncode == 0 and other.stdout.strip() == "alive"


@pytest.mark.parametrize("stage", ["", "companies created"])
def test_an_unknown_stage_is_refused_when_armed(stage: str) -> None:
    done = run(BANKFEEDS_KILL_AT=stage)
    if stage:
        assert done.returncode == 1 and "is not a stage" in done.stderr
    else:
        assert done.returncode == 0  # empty: unarmed

"""`bankfeeds sandbox` flags for bank transaction writes: their delay and injected TimedOuts."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from app.sandbox import SandboxConfig
from app.sandbox.cli import add_arguments, config_from
from app.sandbox.faults import FaultConfig


def _config(*argv: str) -> SandboxConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from(parser.parse_args(list(argv)))


def test_write_flags_land_in_the_config() -> None:
    config = _config("--push-delay", "2.5", "--push-timeout-rate", "0.25")

    assert config.push_delay == timedelta(seconds=2.5)
    assert config.faults.push_timeout_rate == 0.25


def test_writes_settle_after_a_second_by_default_and_never_time_out() -> None:
    config = _config()

    assert config.push_delay == timedelta(seconds=1)
    assert config.faults.push_timeout_rate == 0.0


@pytest.mark.parametrize("rate", [-0.1, 1.5, "often"])
def test_a_push_timeout_rate_must_be_a_probability(rate: object) -> None:
    with pytest.raises(ValueError, match="push_timeout_rate"):
        FaultConfig.from_json({"push_timeout_rate": rate})


def test_a_negative_push_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="push_delay"):
        _config("--push-delay", "-1").validate()

"""Fixtures for the reliability proofs: each test records its figures, the session renders
`docs/reliability.md` from them."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.hostile import Tally
from tests.reliability.report import Result, Session
from tests.reliability.report import main as render_report

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
HERE = Path(__file__).parent

Record = Callable[..., None]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Record]:
    """`record(proof, figures, variant=..., seconds=...)`: written with the test's outcome when
    it ends; `seconds` defaults to the test's own duration."""
    started = time.monotonic()
    results: list[Result] = []
    node = request.node
    test = node.originalname if isinstance(node, pytest.Function) else node.name
    param = (
        node.callspec.id if isinstance(node, pytest.Function) and hasattr(node, "callspec") else ""
    )

    def add(
        proof: str,
        figures: dict[str, Any],
        variant: str | None = None,
        seconds: float | None = None,
    ) -> None:
        label = variant or param or "result"
        key = f"{proof}-{test}-{label}".replace("/", "_").replace(" ", "_")
        result = Result(key=key, proof=proof, variant=label, figures=figures, test=test)
        result.seconds = -1.0 if seconds is None else seconds
        results.append(result)

    yield add
    if not results:
        return
    reports = node.stash.get(_REPORTS, {})
    call = reports.get("call")
    outcome = "passed" if call is not None and call.passed else "failed"
    if call is not None and call.skipped:
        outcome = "skipped"
    for result in results:
        result.outcome = outcome
        if result.seconds < 0:
            result.seconds = round(time.monotonic() - started, 2)
        result.finished_at = _now()
        result.write()


@pytest.fixture
def tally(record: Record) -> Iterator[Tally]:
    """A fuzz test's own counts; recorded when it ends if the test set `proof` and `figures`."""
    counts = Tally()
    yield counts
    if counts.examples and counts.proof and counts.figures is not None:
        record(counts.proof, counts.figures(counts), variant=counts.variant, seconds=counts.seconds)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_RUN = {"started": time.monotonic(), "seconds": 0.0}  # this session, this directory
_OUTCOMES: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count this directory's outcomes and time (the hook sees only its own tests)."""
    _RUN["seconds"] += report.duration
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _OUTCOMES[report.outcome] = _OUTCOMES.get(report.outcome, 0) + 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Note how the run went and render the page, if any reliability test ran."""
    if not _OUTCOMES.get("passed", 0) + _OUTCOMES.get("failed", 0):
        return
    markexpr = session.config.getoption("markexpr") or ""
    if not markexpr:
        kind = "all"
    else:
        kind = "fast" if "not slow" in markexpr else "slow" if "slow" in markexpr else "other"
    Session(
        kind=kind,
        command=" ".join(["pytest", *session.config.invocation_params.args]),
        outcomes=dict(sorted(_OUTCOMES.items())),
        seconds=round(_RUN["seconds"], 1),
        session_seconds=round(time.monotonic() - _RUN["started"], 1),
        finished_at=_now(),
    ).write()
    render_report([])

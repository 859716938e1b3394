"""Fixtures for the reliability proofs: each test records its figures with its run's commit and
its own time; a full run starts from none. `make reliability-report` renders the page."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.hostile import Tally
from tests.reliability.report import Result, Run, clear_results

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
        run = _THIS_RUN[0] if _THIS_RUN else None
        result = Result(
            key=key,
            proof=proof,
            variant=label,
            figures=figures,
            test=test,
            run=run.id if run else "",
            commit=run.commit if run else "",
        )
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
_DESELECTED: list[pytest.Item] = []
_THIS_RUN: list[Run] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _DESELECTED.extend(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note the run; a full one (every reliability proof selected) starts from no results."""
    mine = [i for i in session.items if Path(i.path).is_relative_to(HERE)]
    if not mine:
        return
    files = {Path(i.path).name for i in mine}
    full = files == {p.name for p in HERE.glob("test_*.py")} and not any(
        Path(i.path).is_relative_to(HERE) for i in _DESELECTED
    )
    if full:
        clear_results()
    run = Run.begin(full=full, command=" ".join(["pytest", *session.config.invocation_params.args]))
    run.write()
    _THIS_RUN.append(run)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count this directory's outcomes and time (the hook sees only its own tests)."""
    _RUN["seconds"] += report.duration
    counted = report.when == "call" or (not report.passed and report.when == "setup")
    if counted or (report.when == "teardown" and report.failed):
        _OUTCOMES[report.outcome] = _OUTCOMES.get(report.outcome, 0) + 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Note how the run went. The page is written by `make reliability-report`, never here."""
    if not _THIS_RUN:
        return
    run = _THIS_RUN[0]
    run.outcomes = dict(sorted(_OUTCOMES.items()))
    run.seconds = round(_RUN["seconds"], 1)
    run.session_seconds = round(time.monotonic() - _RUN["started"], 1)
    run.finished_at = _now()
    run.write()

"""The reliability page: written only from a whole, green run of its own results, with the
commit and times, claims filled from the figures; its shape checked without its numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.reliability.report import (
    PROOFS,
    Refused,
    Result,
    Run,
    check_run,
    check_shape,
    render,
)

FIGURES = {
    "customers": 100,
    "faults asked for": "15% 429",
    "customers ending on a 302": 100,
    "302 to another customer's link": 0,
    "companies created (Codat's call log)": 100,
    "connections created (Codat's call log)": 100,
    "trials (one SIGKILL each, then a restart)": 24,
    "orphans in Codat": 0,
    "abandoned the Link page": 300,
    "background requests": 10,
    "background share": 250,
    "429 for quota": 0,
    "SIGKILL trials (each restart armed at the next stage)": 30,
    "transactions ingested": 12900,
    "transactions written in Codat": 12900,
    "duplicates in Codat": 0,
    "lost (never written)": 0,
    "out of order accounts": 0,
    "accounts": 16,
    "accounts with two pushes open at once in Codat": 0,
    "sum in Codat": "8502196.44",
    "sum ingested": "8502196.44",
    "transactions sent by the bank": 50000,
    "days on the movable clock": 2,
    "transactions written in QuickBooks": 50000,
    "written twice": 0,
    "never written": 0,
    "accounts written out of order": 0,
    "accounts whose balance is not the last transaction's": 0,
    "Codat down (simulated minutes)": 60,
    "backlog when Codat came back": 6871,
    "drained in (simulated minutes)": 62,
    "background Codat requests that day": 354,
    "background share of the day's quota": 500,
    "QuickBooks rules broken": 0,
    "writes to it until then": 1,
    "Codat's status for it when flagged": "connected",
    "writes to it in the next simulated hours": 0,
}


def a_run(**changes: object) -> Run:
    run = Run(
        "run-1", True, "pytest -q tests/reliability", "0123456789ab", "2026-01-01 00:00:00 UTC"
    )
    run.outcomes, run.finished_at = {"passed": 70}, "2026-01-01 00:10:00 UTC"
    return replace(run, **changes)  # type: ignore[arg-type]


def results(run: Run) -> list[Result]:
    return [
        Result(
            key=f"{key}-t",
            proof=key,
            variant="sqlite",
            figures=FIGURES,
            outcome="passed",
            seconds=1.0,
            finished_at="2026-01-01 00:05:00 UTC",
            test=f"test_{key}",
            run=run.id,
            commit=run.commit,
        )
        for key, _, _ in PROOFS
    ]


def test_a_whole_green_run_is_written_with_its_commit_times_and_measured_claims() -> None:
    run = a_run()
    page = render(results(run), check_run(run, results(run)))
    assert "| `0123456789ab` | `pytest -q tests/reliability` | 70 passed |" in page
    assert (
        "| finished | 2026-01-01 00:05:00 UTC |" in page and "| commit | `0123456789ab` |" in page
    )
    assert "100 customers connect while Codat answers 15% 429: 100 end on a 302" in page
    assert check_shape(page, page) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"full": False}, "partial"),
        ({"finished_at": ""}, "did not finish"),
        ({"outcomes": {"passed": 69, "failed": 1}}, "not green"),
    ],
)
def test_a_partial_unfinished_or_red_run_is_refused(
    changes: dict[str, object], reason: str
) -> None:
    run = a_run(**changes)
    with pytest.raises(Refused, match=reason):
        check_run(run, results(run))


def test_results_from_another_run_or_of_a_failed_test_are_refused() -> None:
    run = a_run()
    stale = results(run)
    stale[0].run = "an-older-run"
    with pytest.raises(Refused, match="another run"):
        check_run(run, stale)
    failed = results(run)
    failed[1].outcome = "failed"
    with pytest.raises(Refused, match="did not pass"):
        check_run(run, failed)
    with pytest.raises(Refused, match="no run"):
        check_run(None, [])


def test_a_proof_without_results_or_a_claim_without_its_figure_is_refused() -> None:
    run = a_run()
    with pytest.raises(Refused, match="no results"):
        render(results(run)[1:], run)
    missing = results(run)
    for result in missing:
        result.figures = {k: v for k, v in FIGURES.items() if k != "customers"}
    with pytest.raises(Refused, match="'customers'"):
        render(missing, run)


def test_the_shape_check_ignores_numbers_but_not_rows_sections_or_the_commit() -> None:
    run = a_run()
    page = render(results(run), run)
    other_numbers = page.replace("| 100 |", "| 99 |").replace("0123456789ab", "fedcba987654")
    assert check_shape(other_numbers, page) == []
    assert check_shape(page, None) == []  # a fresh clone: no results, the page's own shape
    assert any(
        "not measured" in p for p in check_shape(page.replace("| customers |", "| x |"), page)
    )
    assert any("missing section" in p for p in check_shape(page.replace("## 1.", "## one."), None))
    assert "no commit in the summary table" in check_shape(
        page.replace("`0123456789ab`", "-"), None
    )

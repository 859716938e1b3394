"""Render `docs/reliability.md` from the figures the reliability tests wrote to `var/reliability/`.

    python -m tests.reliability.report           # `make reliability-report`: write the page
    python -m tests.reliability.report --check   # CI: the committed page has the right shape

The page is written only from a whole, green run of `tests/reliability` (which starts by
clearing the results), each result with its commit and time; tests never write it. Each
section's claim names its numbers from the figures the tests measured.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "var" / "reliability"
DOC = ROOT / "docs" / "reliability.md"

# (key, heading, what the test proves): the page's sections, in this order.
PROOFS: list[tuple[str, str, str]] = [
    (
        "sandbox",
        "0. The sandbox fails like Codat",
        "Injected 429 (with Retry-After and X-Rate-Limit-*), 5xx, held and dropped connections, "
        "lost responses, latency, the per-company concurrency limit, the daily quota and "
        "idempotency replay/409/422, each checked against the sandbox in process and as a "
        "uvicorn process.",
    ),
    (
        "storm",
        "1. Fault storm",
        "{customers} customers connect while Codat answers {faults asked for}: "
        "{customers ending on a 302} end on a 302, {302 to another customer's link} to "
        "another customer's link; Codat's call log shows {companies created (Codat's call log)} "
        "companies and {connections created (Codat's call log)} connections created.",
    ),
    (
        "crash",
        "2. Crash at every stage",
        "The service process SIGKILLs itself at each named stage of the click (a kill point "
        "armed in that process), {trials (one SIGKILL each, then a restart)} times in all, is "
        "restarted, and every customer clicks again: Codat's call log shows "
        "{companies created (Codat's call log)} companies and "
        "{connections created (Codat's call log)} connections created, with "
        "{orphans in Codat} orphans.",
    ),
    (
        "concurrency",
        "3. Concurrency and replicas",
        "Many simultaneous clicks by one customer, on one process and on two processes sharing "
        "Postgres: one of everything in Codat, and every click's Link page loads.",
    ),
    (
        "hostile",
        "4. Hostile input",
        "Fuzzed connect tokens, webhook deliveries and ops requests: no redirect, no state "
        "change, no 5xx; oversized bodies are refused before they are read whole.",
    ),
    (
        "leaks",
        "5. No leaks",
        "No secret, one-time password or Link URL in any log line; error pages show nothing of "
        "another customer; no redirect to a host outside CODAT_LINK_HOSTS.",
    ),
    (
        "outage",
        "6. Codat down for a long time",
        "While Codat answers 503 the service stays up, reads answer from the database, the "
        "reconciler backs off without a busy loop, and it recovers by itself.",
    ),
    (
        "quota",
        "7. A day on Codat's daily quota",
        "{customers} customers click Connect in one simulated day on a tight daily quota, "
        "{abandoned the Link page} abandon the Link page, webhooks do not arrive: the "
        "reconciler made {background requests} requests against a share of {background share} "
        "(counted in the database), and {429 for quota} clicks got a 429 for quota.",
    ),
    (
        "timeouts",
        "8. Codat slower than the client's timeout",
        "Over real sockets, Codat answers later than the service's read timeout: a click ends "
        "on the try-again page and a background job logs a timeout and backs off, each before "
        "the late answer could arrive.",
    ),
    (
        "feed storm",
        "9. The transaction feed through a fault storm",
        "{accounts} accounts send {transactions sent by the bank} transactions over "
        "{days on the movable clock} days while Codat answers {faults asked for}; operations "
        "decide each TimedOut push from QuickBooks. Codat's ledger shows "
        "{transactions written in QuickBooks} written, {written twice} twice, {never written} "
        "never, {accounts written out of order} accounts out of order and "
        "{accounts whose balance is not the last transaction's} with a balance other than "
        "their last transaction's.",
    ),
    (
        "feed crash",
        "10. The transaction feed: a crash anywhere in a push",
        "A `bankfeeds worker` SIGKILLs itself at each stage of a push (before the push is "
        "stored, after it before the call, with the request sent and its answer not read, "
        "after Codat answered before its key was stored, while Codat's Success is applied), "
        "{SIGKILL trials (each restart armed at the next stage)} times, each restart armed at "
        "the next stage, then one runs unarmed: of {transactions ingested} transactions Codat "
        "wrote {transactions written in Codat}, with {duplicates in Codat} duplicates, "
        "{lost (never written)} lost and {out of order accounts} accounts out of order.",
    ),
    (
        "feed replicas",
        "11. The transaction feed on replicas",
        "The service and two `bankfeeds worker` processes push {accounts} accounts' "
        "{transactions ingested} transactions on one Postgres: "
        "{accounts with two pushes open at once in Codat} accounts ever had two pushes open at "
        "once in Codat, the sum in Codat ({sum in Codat}) is the sum ingested ({sum ingested}), "
        "with {duplicates in Codat} duplicates.",
    ),
    (
        "feed outage",
        "12. The transaction feed while Codat is down for an hour",
        "Codat is down for {Codat down (simulated minutes)} simulated minutes while "
        "transactions keep arriving; the backlog of {backlog when Codat came back} drains "
        "oldest first in {drained in (simulated minutes)} simulated minutes, with "
        "{background Codat requests that day} background requests that day against a share "
        "of {background share of the day's quota}, and {QuickBooks rules broken} QuickBooks "
        "rules broken.",
    ),
    (
        "feed disconnect",
        "13. An account disconnected in QuickBooks",
        "The customer disconnects an account in QuickBooks: it is flagged after "
        "{writes to it until then} refused write, while Codat still says it is "
        "{Codat's status for it when flagged}; {writes to it in the next simulated hours} "
        "writes follow in the next simulated hours, its transactions wait, and they flow once "
        "it is connected again.",
    ),
]


@dataclass
class Result:
    """One test's figures, as written to `var/reliability/<key>.json`."""

    key: str
    proof: str
    variant: str
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"
    seconds: float = 0.0
    finished_at: str = ""
    test: str = ""
    run: str = ""  # the run it came from (`Run.id`)
    commit: str = ""

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.key}.json"
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return path


@dataclass
class Run:
    """The last pytest run that included reliability tests, as `var/reliability/_run.json`."""

    id: str
    full: bool  # every proof in tests/reliability was selected (and the results cleared first)
    command: str
    commit: str
    started_at: str
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # the reliability tests' own time
    session_seconds: float = 0.0  # the whole pytest run's
    finished_at: str = ""  # empty while it runs, or if it never finished

    @classmethod
    def begin(cls, *, full: bool, command: str) -> Run:
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return cls(uuid.uuid4().hex[:12], full, command, current_commit(), started)

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / RUN_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


RUN_FILE = "_run.json"


def current_commit() -> str:
    """The commit under test, `+` when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+" if dirty else "")


def clear_results(directory: Path = RESULTS_DIR) -> None:
    for path in directory.glob("*.json"):
        path.unlink()


def load_run(directory: Path = RESULTS_DIR) -> Run | None:
    path = directory / RUN_FILE
    return Run(**json.loads(path.read_text())) if path.exists() else None


def load_results(directory: Path = RESULTS_DIR) -> list[Result]:
    return [
        Result(**json.loads(path.read_text()))
        for path in sorted(directory.glob("*.json"))
        if not path.name.startswith("_")
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.0f}"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "none"
    elif isinstance(value, list):
        text = ", ".join(_cell(v) for v in value) or "none"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as table rows: a breakdown by name (not by HTTP status) gets a row per part."""
    rows: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict) and value and not all(k.isdigit() for k in value):
            rows[name] = ""
            rows.update({f"- {k}": v for k, v in value.items()})
        else:
            rows[name] = value
    return rows


def _table(results: list[Result]) -> list[str]:
    rows = [_rows(r.figures) for r in results]
    names: list[str] = []
    for figures in rows:
        names += [n for n in figures if n not in names]
    lines = [
        "| | " + " | ".join(_cell(r.variant) for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in names:
        cells = [_cell(figures[name]) if name in figures else "" for figures in rows]
        lines.append(f"| {_cell(name)} | " + " | ".join(cells) + " |")
    lines.append("| outcome | " + " | ".join(r.outcome for r in results) + " |")
    lines.append("| test time (s) | " + " | ".join(f"{r.seconds:.2f}" for r in results) + " |")
    lines.append("| finished | " + " | ".join(r.finished_at for r in results) + " |")
    lines.append("| commit | " + " | ".join(f"`{r.commit}`" for r in results) + " |")
    return lines


def _summary(run: Run) -> list[str]:
    outcomes = ", ".join(f"{v} {k}" for k, v in run.outcomes.items())
    return [
        "| commit | command | reliability tests | their time (s) | whole run (s) | started "
        "| finished |",
        "|---|---|---|---|---|---|---|",
        f"| `{run.commit}` | `{run.command}` | {outcomes} | {run.seconds:.0f} "
        f"| {run.session_seconds:.0f} | {run.started_at} | {run.finished_at} |",
    ]


_FIGURE = re.compile(r"\{([^{}]+)\}")


def _claim(template: str, results: list[Result]) -> str:
    """The claim with each `{figure}` as measured; several variants show as `a / b`."""

    def figure(match: re.Match[str]) -> str:
        name = match.group(1)
        values = [_cell(r.figures[name]) for r in results if name in r.figures]
        if not values:
            raise Refused(f"the claim names {name!r}, which no test measured")
        return " / ".join(dict.fromkeys(values))

    return _FIGURE.sub(figure, template)


class Refused(Exception):
    """The page cannot be written from these results."""


def render(results: list[Result], run: Run) -> str:
    lines = [
        "# Reliability and security, measured",
        "",
        "Generated by `make reliability-report` (`python -m tests.reliability.report`) from the "
        "figures the tests in `tests/reliability/` wrote to `var/reliability/*.json` in one "
        "whole, green run, which began by clearing them. Do not edit by hand. Each claim's "
        "numbers are the measured ones (several variants: `a / b`, in the order of the table).",
        "",
        *_summary(run),
        "",
    ]
    by_proof: dict[str, list[Result]] = {}
    for result in results:
        by_proof.setdefault(result.proof, []).append(result)
    for key, heading, claim in PROOFS:
        found = sorted(by_proof.pop(key, []), key=lambda r: (r.test, r.variant))
        if not found:
            raise Refused(f"no results for {heading!r}")
        lines += [f"## {heading}", "", _claim(claim, found), ""]
        for test in sorted({r.test for r in found}):
            group = [r for r in found if r.test == test]
            lines += [f"`{test}`", "", *_table(group), ""]
    for key, extra in sorted(by_proof.items()):
        lines += [f"## {key}", "", *_table(extra), ""]
    lines += ["", *kept_section()]
    return "\n".join(lines).rstrip() + "\n"


KEPT_START = "<!-- hand-written: kept when this page is generated -->"
KEPT_END = "<!-- end of the hand-written part -->"


def kept_section(doc: Path = DOC) -> list[str]:
    """The hand-written part of the page, carried over from the page as it is."""
    if not doc.exists():
        return []
    text = doc.read_text()
    if KEPT_START not in text or KEPT_END not in text:
        return []
    start, end = text.index(KEPT_START), text.index(KEPT_END) + len(KEPT_END)
    return text[start:end].splitlines()


def check_run(run: Run | None, results: list[Result]) -> Run:
    """The run the page may be written from: whole, finished, green, and all of its own."""
    if run is None:
        raise Refused("no run recorded: run `make reliability-report`")
    if not run.full:
        raise Refused(f"the last run was partial ({run.command}): run `make reliability-report`")
    if not run.finished_at:
        raise Refused("the last run did not finish")
    if set(run.outcomes) - {"passed"}:
        raise Refused(f"the last run was not green: {run.outcomes}")
    strangers = [r.key for r in results if r.run != run.id]
    if strangers:
        raise Refused(f"results from another run: {', '.join(strangers[:5])}")
    failed = [r.key for r in results if r.outcome != "passed"]
    if failed:
        raise Refused(f"results of tests that did not pass: {', '.join(failed[:5])}")
    return run


def shape(page: str) -> list[str]:
    """What a page says, without its numbers: headings, tests, table columns and row names."""
    kept = page.split(KEPT_START)[0]
    found: list[str] = []
    for line in kept.splitlines():
        if line.startswith("#") or (line.startswith("`") and line.endswith("`")):
            found.append(line)
        elif line.startswith("| |"):
            found.append(line)  # a table's columns: its variants
        elif line.startswith("| ") and not line.startswith(("| `", "| - ")):
            found.append(line.split(" | ")[0])  # a row's name (breakdowns vary with the run)
    return found


def check_shape(page: str, fresh: str | None) -> list[str]:
    """Problems with the committed page: sections missing, no commit or times, or (when there
    are results from a whole run) rows or columns that differ from what a run records now."""
    problems = [f"missing section {h!r}" for _, h, _ in PROOFS if f"## {h}" not in page]
    if not re.search(r"^\| `[0-9a-f]{7,40}\+?` \|", page, re.MULTILINE):
        problems.append("no commit in the summary table")
    if not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page):
        problems.append("no timestamp")
    if fresh is not None:
        committed, measured = shape(page), shape(fresh)
        problems += [f"not measured any more: {line}" for line in committed if line not in measured]
        problems += [
            f"measured, not on the page: {line}" for line in measured if line not in committed
        ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.report")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the committed page's shape (against a whole run's results, if any)",
    )
    args = parser.parse_args(argv)
    results, run = load_results(), load_run()
    if args.check:
        if not DOC.exists():
            print(f"{DOC.relative_to(ROOT)} is missing", file=sys.stderr)
            return 1
        try:
            fresh = render(results, check_run(run, results))
        except Refused:
            fresh = None  # no whole run here (a fresh clone): the page's own shape only
        problems = check_shape(DOC.read_text(), fresh)
        for problem in problems:
            print(problem, file=sys.stderr)
        compared = "against this run" if fresh is not None else "on its own"
        print(f"{DOC.relative_to(ROOT)}: shape checked {compared}", file=sys.stderr)
        return 1 if problems else 0
    try:
        page = render(results, check_run(run, results))
    except Refused as exc:
        print(f"not writing {DOC.relative_to(ROOT)}: {exc}", file=sys.stderr)
        return 1
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(page)
    print(f"wrote {DOC.relative_to(ROOT)} from {len(results)} result(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

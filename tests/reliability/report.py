"""Render `docs/reliability.md` from the figures the reliability tests wrote to `var/reliability/`.

    python -m tests.reliability.report

The test session runs this by itself after any reliability test; nothing in the page is typed by
hand except the one-line claims below.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
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
        "100 customers connect while Codat answers 429/503 to 30% of calls and holds 5% until "
        "they time out (plus lost responses): every customer ends on a 302 to their own link, "
        "with no duplicate and no half-written row.",
    ),
    (
        "crash",
        "2. Crash at every stage",
        "The service process SIGKILLs itself at each named stage of the click (a kill point "
        "armed in that process), is restarted, and every customer clicks again: exactly one "
        "company, one connection and each account once, no orphan in Codat.",
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
        "1,000 customers click Connect in one simulated day on a tight daily quota, 30% abandon "
        "the Link page, webhooks do not arrive: the reconciler's requests stay within their 25% "
        "share (counted in the database), no click gets a 429 for quota, and every abandoned "
        "customer reconnects.",
    ),
    (
        "timeouts",
        "8. Codat slower than the client's timeout",
        "Over real sockets, Codat answers later than the service's read timeout: a click ends "
        "on the try-again page and a background job logs a timeout and backs off, each before "
        "the late answer could arrive.",
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

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.key}.json"
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return path


@dataclass
class Session:
    """How the last fast or slow run went, as written to `var/reliability/_<kind>.json`."""

    kind: str  # "all" (`make test`), "fast" (`make test-fast`), "slow" (`make test-reliability`)
    command: str
    outcomes: dict[str, int]
    seconds: float  # the reliability tests' own time
    session_seconds: float  # the whole pytest run's
    finished_at: str

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"_{self.kind}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def load_results(directory: Path = RESULTS_DIR) -> list[Result]:
    return [
        Result(**json.loads(path.read_text()))
        for path in sorted(directory.glob("*.json"))
        if not path.name.startswith("_")
    ]


def load_sessions(directory: Path = RESULTS_DIR) -> list[Session]:
    return [Session(**json.loads(p.read_text())) for p in sorted(directory.glob("_*.json"))]


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
    return lines


def _summary(sessions: list[Session]) -> list[str]:
    lines = [
        "| last run | command | reliability tests | their time (s) | whole run (s) | finished |",
        "|---|---|---|---|---|---|",
    ]
    for run in sessions:
        outcomes = ", ".join(f"{v} {k}" for k, v in run.outcomes.items())
        lines.append(
            f"| {run.kind} | `{run.command}` | {outcomes} | {run.seconds:.0f} "
            f"| {run.session_seconds:.0f} | {run.finished_at} |"
        )
    return lines


def render(results: list[Result], sessions: list[Session] | None = None) -> str:
    lines = [
        "# Reliability and security, measured",
        "",
        "Generated by `python -m tests.reliability.report` from the figures the tests in "
        "`tests/reliability/` wrote to `var/reliability/*.json` on their last run. Do not edit "
        "by hand: `make test` (every proof; what CI runs), `make test-fast` (without the slow "
        "ones) and `make test-reliability` (only the slow ones) write this page again.",
        "",
        *_summary(sessions or []),
        "",
    ]
    by_proof: dict[str, list[Result]] = {}
    for result in results:
        by_proof.setdefault(result.proof, []).append(result)
    for key, heading, claim in PROOFS:
        lines += [f"## {heading}", "", claim, ""]
        found = by_proof.pop(key, [])
        if not found:
            lines += ["_No results yet._", ""]
            continue
        for test in sorted({r.test for r in found}):
            group = [r for r in found if r.test == test]
            lines += [f"`{test}`", "", *_table(group), ""]
    for key, extra in sorted(by_proof.items()):
        lines += [f"## {key}", "", *_table(extra), ""]
    lines += ["", *kept_section()]
    return "\n".join(lines).rstrip() + "\n"


KEPT_START = "<!-- hand-written: kept when this page is generated -->"
KEPT_END = "<!-- end of the hand-written part -->"


def kept_section() -> list[str]:
    """The hand-written part of the page, carried over from the page as it is."""
    if not DOC.exists():
        return []
    text = DOC.read_text()
    if KEPT_START not in text or KEPT_END not in text:
        return []
    start, end = text.index(KEPT_START), text.index(KEPT_END) + len(KEPT_END)
    return text[start:end].splitlines()


def main(argv: list[str] | None = None) -> int:
    results = load_results()
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(results, load_sessions()))
    print(f"wrote {DOC.relative_to(ROOT)} from {len(results)} result(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

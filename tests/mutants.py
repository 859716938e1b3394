"""The mutant suite: each guarantee broken on purpose, and the tests that claim it must notice.

    python -m tests.mutants            # `make test-mutants`: every mutant
    python -m tests.mutants NAME ...   # only these

Each mutant is a small patch (exact text, found exactly once, or the suite fails loudly: code
that moved must move its mutant too). It is applied to a copy of the tree, and only the tests
claiming the guarantee run there (`PYTHONPATH` puts the copy first, service processes
included). A mutant is killed when those tests fail; the suite fails unless all are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("app", "tests", "migrations", "pyproject.toml", "alembic.ini")
SQLITE_ONLY = "not postgres"  # the logic under each mutant does not depend on the database


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    select: str = SQLITE_ONLY


CONNECT = "app/connect/service.py"
WRITES = "app/bank_feeds/writes.py"
TOKENS = "app/connect/tokens.py"
TOKEN_TESTS = ("tests/connect/test_tokens.py",)
FLOW = "tests/connect/test_connect_flow.py"
FIDELITY = "tests/connect/test_codat_fidelity.py"
RECEIVER = "tests/webhooks/test_receiver.py"
PUSH = "tests/transactions/test_push.py"

MUTANTS = (
    Mutant(
        "company adoption after a lost answer",
        CONNECT,
        "        if feed.company_requested_at is not None:\n",
        "        if False:\n",
        (f"{FLOW}::test_a_company_created_under_a_forgotten_key_is_adopted",),
    ),
    Mutant(
        "company adoption after a 5xx",
        WRITES,
        "            found = await codat.find_companies_by_tag(*tag)\n",
        "            found = []\n",
        (f"{FIDELITY}::test_a_kept_5xx_is_read_back_and_only_the_missing_is_redone",),
    ),
    Mutant(
        "connection adoption after a lost answer",
        CONNECT,
        "            adoptable = writes.adoptable(await self.codat.list_connections(company_id))\n",
        "            adoptable = []\n",
        (f"{FLOW}::test_a_connection_created_under_a_forgotten_key_is_adopted",),
    ),
    Mutant(
        "connection adoption after a 5xx",
        WRITES,
        "            found = adoptable(await codat.list_connections(company_id))\n",
        "            found = []\n",
        (f"{FIDELITY}::test_a_kept_5xx_is_read_back_and_only_the_missing_is_redone",),
    ),
    Mutant(
        "Idempotency-Key reused for an unanswered company create",
        CONNECT,
        "feed.company_request_key = feed.company_request_key or new_idempotency_key()",
        "feed.company_request_key = new_idempotency_key()",
        (f"{FIDELITY}::test_a_request_still_in_progress_is_waited_on_then_try_again_in_a_moment",),
    ),
    Mutant(
        "Idempotency-Key reused for an unanswered connection create",
        CONNECT,
        "feed.connection_request_key = feed.connection_request_key or new_idempotency_key()",
        "feed.connection_request_key = new_idempotency_key()",
        (f"{FIDELITY}::test_a_request_still_in_progress_is_waited_on_then_try_again_in_a_moment",),
    ),
    Mutant(
        "Idempotency-Key renewed after a kept 5xx",
        WRITES,
        "        key = await _fresh(key if not round_ else None, keep_key)\n"
        "        try:\n"
        "            return await codat.create_company(",
        "        key = await _fresh(key, keep_key)\n"
        "        try:\n"
        "            return await codat.create_company(",
        (f"{FIDELITY}::test_a_kept_5xx_that_did_nothing_is_sent_again_under_a_new_key",),
    ),
    Mutant(
        "Idempotency-Key renewed after a kept 5xx (connection)",
        WRITES,
        "        key = await _fresh(key if not round_ else None, keep_key)\n"
        "        try:\n"
        "            return await codat.create_connection(",
        "        key = await _fresh(key, keep_key)\n"
        "        try:\n"
        "            return await codat.create_connection(",
        (f"{FIDELITY}::test_a_kept_5xx_that_did_nothing_is_sent_again_under_a_new_key",),
    ),
    Mutant(
        "the click's lease",
        "app/bank_feeds/repository.py",
        "                BankFeed.locked_until < now,\n",
        "                BankFeed.locked_until.is_not(None),\n",
        (f"{FLOW}::test_concurrent_clicks_create_one_of_everything",),
    ),
    Mutant(
        "the commit before the answer",
        "app/customers/service.py",
        "            out = await _customer_out(session, customer_id)\n"
        "            await session.commit()\n",
        "            out = await _customer_out(session, customer_id)\n"
        "            __import__('asyncio').get_running_loop().create_task(session.commit())\n",
        ("tests/test_commit_before_answer.py",),
    ),
    Mutant(
        "only US and CA businesses connect",
        "app/customers/rules.py",
        'CONNECTABLE_COUNTRIES = frozenset({"US", "CA"})',
        'CONNECTABLE_COUNTRIES = frozenset({"US", "CA", "GB"})',
        (
            f"{FLOW}::test_refusals_write_nothing_to_codat",
            "tests/customers/test_customers.py::"
            "test_any_real_country_is_stored_but_only_us_and_ca_can_connect",
        ),
    ),
    Mutant(
        "the Link-host allow-list",
        CONNECT,
        '            or (parts.hostname or "").lower() not in self.allowed_link_hosts\n',
        "            or False\n",
        (f"{FLOW}::test_link_to_a_foreign_host_is_never_followed",),
    ),
    Mutant(
        "a Link URL (its one-time password) is never stored",
        "app/codat/webhooks.py",
        'SCRUBBED_KEYS = frozenset({"linkUrl", "redirect"})',
        'SCRUBBED_KEYS = frozenset({"redirect"})',
        (f"{RECEIVER}::test_link_urls_and_secrets_never_reach_the_inbox_or_the_ops_api",),
    ),
    Mutant(
        "log redaction",
        "app/logs.py",
        "    def filter(self, record: logging.LogRecord) -> bool:\n        message",
        "    def filter(self, record: logging.LogRecord) -> bool:\n"
        "        return True\n"
        "        message",
        ("tests/test_logs.py",),
    ),
    Mutant(
        "redaction of tracebacks",
        "app/logs.py",
        "            record.exc_text = self.redact(_TRACEBACKS.formatException(record.exc_info))",
        "            record.exc_text = _TRACEBACKS.formatException(record.exc_info)",
        ("tests/test_logs.py",),
    ),
    Mutant(
        "token audience",
        TOKENS,
        "            audience=AUDIENCE,\n",
        "            audience=None,\n",
        TOKEN_TESTS,
    ),
    Mutant(
        "token subject",
        TOKENS,
        "    if not isinstance(sub, str) or not sub or len(sub) > 64:",
        "    if not isinstance(sub, str):",
        TOKEN_TESTS,
    ),
    Mutant(
        "token expiry",
        TOKENS,
        "    if expires_at <= current - CLOCK_SKEW:",
        "    if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "token issued in the future",
        TOKENS,
        "    if issued_at > current + CLOCK_SKEW:",
        "    if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "token lifetime",
        TOKENS,
        "    if expires_at - issued_at > MAX_LIFETIME or expires_at <= issued_at:",
        "    if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "token language",
        TOKENS,
        '    if lang is not None and lang not in ("en", "fr"):',
        "    if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "token jti",
        TOKENS,
        "    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 128):",
        "    if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "token algorithm",
        TOKENS,
        '        if header.get("alg") != ALGORITHM:',
        "        if False:",
        TOKEN_TESTS,
    ),
    Mutant(
        "a token is spent once",
        CONNECT,
        "            if row.spent_at is not None:",
        "            if False:",
        (f"{FLOW}::test_reused_jti_is_refused",),
    ),
    Mutant(
        "webhook signature",
        "app/codat/webhooks.py",
        "        Webhook(key).verify(text, standard, json_parse=False)\n",
        "        pass\n",
        (RECEIVER,),
    ),
    Mutant(
        "webhook timestamp",
        "app/codat/webhooks.py",
        "        Webhook(key).verify(text, standard, json_parse=False)\n",
        "        type('Any time', (Webhook,), {'_Webhook__verify_timestamp': lambda self, t: "
        "__import__('datetime').datetime.fromtimestamp(float(t), "
        "__import__('datetime').UTC)})(key).verify(text, standard, json_parse=False)\n",
        (f"{RECEIVER}::test_old_or_future_timestamp_is_401",),
    ),
    Mutant(
        "webhook de-duplication",
        "app/webhooks/inbox.py",
        '            "webhook_id": webhook_id,\n',
        '            "webhook_id": f"{webhook_id}-{now.timestamp()}",\n',
        (
            f"{RECEIVER}::test_accepted_then_handled_and_a_replay_is_acknowledged_once",
            f"{RECEIVER}::test_replay_with_a_newer_body_has_no_second_effect",
        ),
    ),
    Mutant(
        "transactions pushed in chronological order",
        "app/transactions/rules.py",
        "    return sorted(transactions, key=lambda t: (t.push_date, t.seq))",
        "    return sorted(transactions, key=lambda t: (t.push_date, t.seq), reverse=True)",
        (f"{PUSH}::test_oldest_first_stable_within_a_day_and_exact_decimals",),
    ),
    Mutant(
        "at most 1,000 transactions a push",
        "app/transactions/push.py",
        "                elif len(batch) < MAX_TRANSACTIONS_PER_PUSH:",
        "                elif True:",
        (f"{PUSH}::test_at_most_1000_per_push_and_one_push_at_a_time",),
    ),
    Mutant(
        "a push is sent exactly once (its key kept)",
        "app/transactions/push.py",
        "                    idempotency_key=push.idempotency_key,\n",
        "                    idempotency_key=str(uuid.uuid4()),\n",
        (f"{PUSH}::test_a_lost_answer_is_resumed_with_the_same_key_and_written_once",),
    ),
    Mutant(
        "late transactions are held, never sent",
        "app/transactions/push.py",
        "                hold = window.hold_reason(row.push_date)\n",
        "                hold = None\n",
        (f"{PUSH}::test_late_transactions_are_held_with_the_reason_never_sent",),
    ),
    Mutant(
        "a write naming no account is not taken while another push may own it",
        "app/transactions/push.py",
        "                    if named or (named is None and not others):\n",
        "                    if named or named is None:\n",
        (
            f"{PUSH}::test_a_write_in_the_history_naming_no_account_is_not_taken_while_another"
            "_may_own_it",
        ),
    ),
    Mutant(
        "a TimedOut push sent again by operations no longer holds its account",
        "app/transactions/repository.py",
        "            TransactionPush.retried_at.is_(None),  # not one operations sent again\n",
        "",
        (
            "tests/transactions/test_operations.py::test_a_timed_out_push_retried_by_operations"
            "_no_longer_holds_the_account",
        ),
    ),
    Mutant(
        "the reconciler's quota share",
        "app/bank_feeds/quota.py",
        "        return int(self.limit * share)\n",
        "        return int(self.limit)\n",
        ("tests/bank_feeds/test_reconciler_quota.py",),
    ),
)


def _copy_tree(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        elif source.exists():
            shutil.copy2(source, into / name)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(
            f"mutant {mutant.name!r}: its text is in {mutant.path} {found} times, not once; "
            "the code moved: move the mutant with it"
        )
    path.write_text(text.replace(mutant.old, mutant.new))


def run(mutant: Mutant) -> tuple[bool, float, str]:
    """(killed, seconds, the tests' last lines)."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        apply(mutant, tree)
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        command += ["-p", "no:randomly", "-m", "not slow", "-k", mutant.select, *mutant.tests]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        seconds = time.monotonic() - started
    tail = "\n".join(done.stdout.strip().splitlines()[-3:])
    if done.returncode not in (0, 1):  # collection errors, no tests: the mutant cannot be judged
        raise SystemExit(f"mutant {mutant.name!r}: pytest exited {done.returncode}\n{done.stdout}")
    return done.returncode == 1, seconds, tail


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    unknown = set(argv) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"no such mutant: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp:  # every patch applies before any test runs
        _copy_tree(Path(tmp))
        for mutant in chosen:
            apply(mutant, Path(tmp))
            _copy_tree_file(Path(tmp), mutant.path)
    started, survivors = time.monotonic(), []
    for n, mutant in enumerate(chosen, 1):
        killed, seconds, tail = run(mutant)
        verdict = "killed" if killed else "SURVIVED"
        print(f"[{n}/{len(chosen)}] {verdict}: {mutant.name} ({seconds:.0f} s)", flush=True)
        if not killed:
            survivors.append(mutant.name)
            print(f"    {' '.join(mutant.tests)} passed with it:\n{tail}", flush=True)
    killed_count = len(chosen) - len(survivors)
    print(
        f"{killed_count} of {len(chosen)} mutants killed in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return 0 if not survivors else 1


def _copy_tree_file(tree: Path, path: str) -> None:
    """Put the original file back, so the next mutant of the same file is checked alone."""
    shutil.copy2(ROOT / path, tree / path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

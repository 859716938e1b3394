"""`bankfeeds sandbox` (and `python -m app.sandbox`): the Codat sandbox as its own server.

Every flag falls back to a CODAT_SANDBOX_* environment variable, then to `SandboxConfig`'s own
default: one set of defaults, whichever way the sandbox is started.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import timedelta
from typing import Any

from app.sandbox.config import SandboxConfig
from app.sandbox.faults import FaultConfig

DEFAULT_PORT = 8100
DEFAULT_API_KEY = "sandbox-api-key"


def _env(name: str) -> str | None:
    return os.environ.get(f"CODAT_SANDBOX_{name}") or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=_env("API_KEY") or DEFAULT_API_KEY)
    parser.add_argument("--public-url", default=_env("PUBLIC_URL"))
    parser.add_argument("--webhook-url", default=_env("WEBHOOK_URL"))
    parser.add_argument("--webhook-secret", default=_env("WEBHOOK_SECRET"))
    parser.add_argument("--return-url", default=_env("RETURN_URL"))
    parser.add_argument(
        "--push-delay",
        type=float,
        default=_env("PUSH_DELAY_SECONDS"),
        help="seconds a bank transaction write stays Pending before it settles",
    )
    parser.add_argument(
        "--disconnect-delay",
        type=float,
        default=_env("DISCONNECT_DELAY_SECONDS"),
        help="seconds until a disconnected account shows as disconnected (Codat: 10 days)",
    )
    _add_fault_arguments(parser)


def _add_fault_arguments(sandbox: argparse.ArgumentParser) -> None:
    """Codat's failure modes; each lands in the `FaultConfig` field of its `dest`."""
    faults = sandbox.add_argument_group("faults (Codat's failure modes; none unless asked for)")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added to each API call")
    faults.add_argument("--jitter-ms", type=float, default=0.0, help="plus 0 to this, at random")
    faults.add_argument(
        "--error-rate", type=_status_rate, action="append", default=[], metavar="STATUS=P",
        dest="status_rates", help="answer STATUS (429, 503, ...) with probability P; repeatable",
    )  # fmt: skip
    faults.add_argument("--timeout-rate", type=float, default=0.0, help="held, never answered")
    faults.add_argument("--timeout-seconds", type=float, default=30.0, help="how long held")
    faults.add_argument(
        "--still-running-seconds",
        type=float,
        default=1.0,
        help="Codat works on after a timeout; its retry gets 409 meanwhile",
    )
    faults.add_argument(
        "--push-timeout-rate",
        type=float,
        default=0.0,
        help="bank transaction writes that end TimedOut (they still land, unless lost)",
    )
    faults.add_argument(
        "--push-timeout-lost-rate",
        type=float,
        default=0.0,
        help="of the writes that end TimedOut, those that never land",
    )
    faults.add_argument("--drop-rate", type=float, default=0.0, help="closed, nothing done")
    faults.add_argument(
        "--lost-response-rate", type=float, default=0.0, help="done, then closed unanswered"
    )
    faults.add_argument(
        "--fault-method", action="append", default=[], metavar="METHOD", dest="methods"
    )
    faults.add_argument(
        "--fault-route", action="append", default=[], metavar="PATTERN", dest="routes",
        help="route template or path glob the faults apply to; repeatable (default: all)",
    )  # fmt: skip
    faults.add_argument(
        "--concurrency-limit", type=int, default=10, help="per company; Codat's is 10"
    )
    faults.add_argument(
        "--daily-quota",
        type=int,
        default=None,
        help="then 429 until 00:00 UTC; default Codat's 1000 x (1 + connected companies)",
    )
    faults.add_argument(
        "--retry-after", type=int, default=1, dest="retry_after_seconds", help="seconds, on a 429"
    )
    faults.add_argument("--fault-seed", type=int, default=None, dest="seed")


def _status_rate(text: str) -> tuple[int, float]:
    status, _, rate = text.partition("=")
    try:
        return int(status), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not STATUS=PROBABILITY") from None


def config_from(args: argparse.Namespace) -> SandboxConfig:
    """ValueError when the faults asked for cannot be."""
    chosen = {f.name: getattr(args, f.name) for f in dataclasses.fields(FaultConfig)}
    faults = FaultConfig(**{**chosen, "status_rates": dict(chosen["status_rates"])})
    optional: dict[str, Any] = {}
    if args.push_delay is not None:
        optional["push_delay"] = timedelta(seconds=float(args.push_delay))
    if args.disconnect_delay is not None:
        optional["disconnect_delay"] = timedelta(seconds=float(args.disconnect_delay))
    return SandboxConfig(
        api_key=args.api_key,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        callout_title_en=_env("CALLOUT_TITLE_EN"),
        callout_body_en=_env("CALLOUT_BODY_EN"),
        callout_title_fr=_env("CALLOUT_TITLE_FR"),
        callout_body_fr=_env("CALLOUT_BODY_FR"),
        return_url=args.return_url,
        faults=faults,
        **optional,
    )


def run(args: argparse.Namespace) -> int:
    from app.sandbox.server import run_sandbox

    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"bankfeeds sandbox: {exc}", file=sys.stderr)
        return 2
    print(f"Codat sandbox on {config.base_url} (API key: as given with --api-key)", file=sys.stderr)
    run_sandbox(args.host, args.port, config)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sandbox", help="run the Codat sandbox as its own server")
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None, prog: str = "python -m app.sandbox") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))

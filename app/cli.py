"""The `bankfeeds` command: serve, migrate, sandbox, mint-token, import, doctor, worker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from app.doctor import register as register_doctor
from app.ops.cli import register_import
from app.settings import ConfigurationError, load_settings
from app.webhooks.cli import register as register_worker

Command = Callable[[argparse.Namespace], int]


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = load_settings()
    settings.check_production()
    if args.migrate:
        from app.migrate import upgrade

        upgrade(settings.database_url)
    if settings.sandbox_mode and settings.ops_api_token is not None:
        print(
            f"Sandbox mode: ops API token is {settings.ops_api_token.get_secret_value()}",
            file=sys.stderr,
        )
        print(f"Demo host app: {settings.public_base_url}/", file=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.migrate import downgrade, upgrade

    settings = load_settings()
    if args.revision == "base" or args.down:
        downgrade(settings.database_url, args.revision)
    else:
        upgrade(settings.database_url, args.revision)
    print(f"Database migrated to {args.revision}.")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from app.sandbox import SandboxConfig
    from app.sandbox.faults import FaultConfig
    from app.sandbox.server import run_sandbox

    public_url = args.public_url or f"http://{args.host}:{args.port}"
    try:
        faults = FaultConfig(
            status_rates=dict(args.error_rate),
            timeout_rate=args.timeout_rate,
            timeout_seconds=args.timeout_seconds,
            drop_rate=args.drop_rate,
            lost_response_rate=args.lost_response_rate,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            methods=tuple(args.fault_method),
            routes=tuple(args.fault_route),
            concurrency_limit=args.concurrency_limit,
            daily_quota=args.daily_quota,
            retry_after_seconds=args.retry_after,
            seed=args.fault_seed,
        )
    except ValueError as exc:
        print(f"bankfeeds sandbox: {exc}", file=sys.stderr)
        return 2
    config = SandboxConfig(
        api_key=args.api_key,
        public_url=public_url,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        disconnect_delay=timedelta(seconds=args.disconnect_delay),
        faults=faults,
    )
    print(f"Codat sandbox on {public_url} (API key: as given with --api-key)", file=sys.stderr)
    run_sandbox(args.host, args.port, config)
    return 0


def cmd_mint_token(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from app.connect.tokens import connect_url, mint_connect_token

    settings = load_settings()
    assert settings.connect_token_secret is not None
    token = mint_connect_token(
        settings.connect_token_secret.get_secret_value(),
        args.customer_id,
        lang=args.lang,
        lifetime=timedelta(seconds=args.lifetime),
        single_use=not args.reusable,
    )
    print(connect_url(settings.public_base_url, token))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bankfeeds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--down", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(func=cmd_migrate)

    sandbox = sub.add_parser("sandbox", help="run the Codat sandbox as its own server")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8100)
    sandbox.add_argument("--api-key", default="sandbox-api-key")
    sandbox.add_argument("--public-url", default=None)
    sandbox.add_argument("--webhook-url", default=None)
    sandbox.add_argument("--webhook-secret", default=None)
    sandbox.add_argument("--disconnect-delay", type=float, default=20.0)
    _add_fault_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox)

    mint = sub.add_parser("mint-token", help="print a connect URL for a customer")
    mint.add_argument("customer_id")
    mint.add_argument("--lang", choices=["en", "fr"], default=None)
    mint.add_argument("--lifetime", type=int, default=600, help="seconds, at most 900")
    mint.add_argument("--reusable", action="store_true", help="no jti: usable more than once")
    mint.set_defaults(func=cmd_mint_token)

    for register in _extra_commands():
        register(sub)
    return parser


def _add_fault_arguments(sandbox: argparse.ArgumentParser) -> None:
    """Codat's failure modes for `bankfeeds sandbox` (app.sandbox.faults.FaultConfig)."""
    faults = sandbox.add_argument_group("faults (Codat's failure modes; none unless asked for)")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added to each API call")
    faults.add_argument("--jitter-ms", type=float, default=0.0, help="plus 0 to this, at random")
    faults.add_argument(
        "--error-rate", type=_status_rate, action="append", default=[], metavar="STATUS=P",
        help="answer STATUS (429, 500, 503, ...) with probability P; repeatable",
    )  # fmt: skip
    faults.add_argument("--timeout-rate", type=float, default=0.0, help="held, never answered")
    faults.add_argument("--timeout-seconds", type=float, default=30.0, help="how long held")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="closed, nothing done")
    faults.add_argument(
        "--lost-response-rate", type=float, default=0.0, help="done, then closed unanswered"
    )
    faults.add_argument("--fault-method", action="append", default=[], metavar="METHOD")
    faults.add_argument(
        "--fault-route", action="append", default=[], metavar="PATTERN",
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
    faults.add_argument("--retry-after", type=int, default=1, help="seconds, on a fault 429")
    faults.add_argument("--fault-seed", type=int, default=None)


def _status_rate(text: str) -> tuple[int, float]:
    status, _, rate = text.partition("=")
    try:
        return int(status), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not STATUS=PROBABILITY") from None


def _extra_commands() -> list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
]:
    """Commands that live with their domain package."""
    return [
        register_worker,
        register_import,
        register_doctor,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"bankfeeds: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `bankfeeds` command: serve, migrate, sandbox, mint-token, import,
import-transactions, doctor, worker, codat."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from app.codat_setup import register as register_codat
from app.customers.cli import register_import
from app.doctor import register as register_doctor
from app.settings import ConfigurationError, Settings, load_settings
from app.transactions.cli import register as register_import_transactions
from app.worker import register as register_worker

Command = Callable[[argparse.Namespace], int]


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = load_settings()
    settings.check()
    workers = serve_workers(settings, args.workers)
    if args.migrate:
        from app.migrate import upgrade

        upgrade(settings.database_url)
    if settings.sandbox_mode and settings.ops_token_from_dev_file:
        # Only a token made for this machine is shown; one from the environment never is.
        assert settings.ops_api_token is not None
        print(
            f"Sandbox mode: ops API token is {settings.ops_api_token.get_secret_value()}"
            " (from var/dev-secrets.json)",
            file=sys.stderr,
        )
    if settings.sandbox_mode:
        print(f"Demo host app: {settings.public_base_url}/", file=sys.stderr)
    options = {
        "host": args.host,
        "port": args.port,
        # The app reads X-Forwarded-* itself, only from FORWARDED_ALLOW_IPS (app/main.py).
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        # Each worker process builds the app from the same environment.
        uvicorn.run("app.main:app_factory", factory=True, workers=workers, **options)
    return 0


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def serve_workers(settings: Settings, requested: int | None) -> int:
    """How many processes serve HTTP: `--workers`, else one per core. The built-in sandbox
    lives in one process's memory (a worker each would be a Codat each), and SQLite takes one
    writer at a time: with either, one process, and more are refused."""
    single = settings.sandbox_mode or settings.is_sqlite
    if requested is None:
        return 1 if single else cpu_cores()
    if requested < 1:
        raise ConfigurationError("--workers must be at least 1")
    if requested > 1 and settings.sandbox_mode:
        raise ConfigurationError(
            "--workers above 1 needs CODAT_API_KEY: the built-in Codat sandbox lives in one process"
        )
    if requested > 1 and settings.is_sqlite:
        raise ConfigurationError("--workers above 1 needs Postgres (DATABASE_URL)")
    return requested


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
    from app.sandbox.cli import main as sandbox_main  # the sandbox is imported only to run it

    return sandbox_main(args.extra, prog="bankfeeds sandbox")


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
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes serving HTTP (default: one per core; 1 with SQLite or the sandbox)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--down", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(func=cmd_migrate)

    # Its options are the sandbox's own (`app.sandbox.cli`): `bankfeeds sandbox --help`.
    sandbox = sub.add_parser(
        "sandbox", help="run the Codat sandbox as its own server", add_help=False
    )
    sandbox.set_defaults(func=cmd_sandbox, takes_extra=True)

    mint = sub.add_parser("mint-token", help="print a connect URL for a customer")
    mint.add_argument("customer_id")
    mint.add_argument("--lang", choices=["en", "fr"], default=None)
    mint.add_argument("--lifetime", type=int, default=600, help="seconds, at most 900")
    mint.add_argument(
        "--reusable",
        action="store_true",
        help="no jti: usable more than once, only with CONNECT_REUSABLE_TOKENS=true (weaker)",
    )
    mint.set_defaults(func=cmd_mint_token)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
]:
    """Commands that live with their domain package."""
    return [
        register_worker,
        register_import,
        register_import_transactions,
        register_doctor,
        register_codat,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"bankfeeds: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

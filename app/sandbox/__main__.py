"""`python -m app.sandbox --port 8001`: the Codat sandbox on its own.

Settings come from flags, falling back to CODAT_SANDBOX_* environment variables.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

from app.sandbox.config import SandboxConfig
from app.sandbox.server import run_sandbox


def _env(name: str) -> str | None:
    return os.environ.get(f"CODAT_SANDBOX_{name}") or None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=_env("API_KEY") or "sandbox-api-key")
    parser.add_argument("--public-url", default=_env("PUBLIC_URL"))
    parser.add_argument("--webhook-url", default=_env("WEBHOOK_URL"))
    parser.add_argument("--webhook-secret", default=_env("WEBHOOK_SECRET"))
    parser.add_argument("--return-url", default=_env("RETURN_URL"))
    parser.add_argument(
        "--disconnect-delay",
        type=float,
        default=float(_env("DISCONNECT_DELAY_SECONDS") or 5),
        help="seconds until a disconnected account shows as disconnected (Codat: 10 days)",
    )
    args = parser.parse_args(argv)
    config = SandboxConfig(
        api_key=args.api_key,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        callout_title_en=_env("CALLOUT_TITLE_EN"),
        callout_body_en=_env("CALLOUT_BODY_EN"),
        callout_title_fr=_env("CALLOUT_TITLE_FR"),
        callout_body_fr=_env("CALLOUT_BODY_FR"),
        disconnect_delay=timedelta(seconds=args.disconnect_delay),
        return_url=args.return_url,
    )
    run_sandbox(args.host, args.port, config)


if __name__ == "__main__":
    main()

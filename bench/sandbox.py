"""`python -m bench.sandbox`: the Codat sandbox behind a simulated network, as a fallback.

The bench starts `bankfeeds sandbox --latency-ms ...`. A build whose sandbox has no latency
setting gets this instead: `create_sandbox_app` (left untouched) wrapped in an ASGI middleware
that sleeps a configured round trip, fixed plus optional jitter, before each Codat API call.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import timedelta

from starlette.types import ASGIApp, Receive, Scope, Send

from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.app import ADMIN_PREFIX, PAGE_PREFIXES, route_path


class NetworkDelay:
    """Delays Codat API calls (not the Link page, QuickBooks pages or admin routes)."""

    def __init__(
        self, app: ASGIApp, latency_s: float, jitter_s: float = 0.0, seed: int | None = None
    ) -> None:
        self.app = app
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self._random = random.Random(seed)

    def delay(self) -> float:
        return self.latency_s + (self._random.uniform(0, self.jitter_s) if self.jitter_s else 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if not path.startswith(PAGE_PREFIXES) and not path.startswith(ADMIN_PREFIX):
            await asyncio.sleep(self.delay())
        await self.app(scope, receive, send)


def create_delayed_sandbox(
    config: SandboxConfig, latency_s: float, jitter_s: float = 0.0, seed: int | None = None
) -> NetworkDelay:
    return NetworkDelay(create_sandbox_app(config), latency_s, jitter_s, seed)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--public-url", default=None)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int, default=None)
    args = parser.parse_args(argv)
    config = SandboxConfig(
        api_key=args.api_key,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        disconnect_delay=timedelta(seconds=20),
    )
    app = create_delayed_sandbox(
        config, args.latency_ms / 1000, args.jitter_ms / 1000, args.fault_seed
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""`bankfeeds codat ...`: set this service up at Codat from the command line.

`bankfeeds codat setup-webhooks --url PUBLIC_BASE_URL/webhooks/codat` creates (or replaces) the
webhook consumer that sends this service the events it handles. Only the signing secret stays a
Portal step: Codat's API never shows it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

from app.codat.client import Transport, retry_budget
from app.codat.errors import CodatError
from app.services import open_codat
from app.settings import Settings, load_settings
from app.webhooks.subscription import NEEDED_EVENT_TYPES, RECEIVER_PATH, same_url, set_up

CODAT_BUDGET_SECONDS = 30.0
PORTAL_STEP = (
    "One step stays in the Codat Portal: Monitor > Webhooks, open the endpoint {url}, copy its "
    "Signing secret (whsec_...) into CODAT_WEBHOOK_SECRET, then restart the service."
)


def check_url(url: str) -> str | None:
    """Why Codat should not be pointed at `url`, or None."""
    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an absolute URL"
    if parts.scheme != "https" and not local:
        return f"{url} is not https: Codat's deliveries carry your customers' data"
    if not parts.path.rstrip("/").endswith(RECEIVER_PATH) or parts.query or parts.fragment:
        return f"{url} is not this service's receiver: it ends in {RECEIVER_PATH}"
    return None


async def setup_webhooks(
    settings: Settings,
    url: str,
    *,
    codat_transport: Transport | None = None,
    print_line: Callable[[str], None] = print,
) -> int:
    """Create or replace the consumer for `url`; 0 when Codat holds the right one."""
    if settings.sandbox_mode:
        print_line(
            "bankfeeds codat setup-webhooks needs CODAT_API_KEY: in sandbox mode the built-in "
            f"sandbox already sends its webhooks to {settings.public_base_url}{RECEIVER_PATH}."
        )
        return 2
    problem = check_url(url)
    if problem is not None:
        print_line(f"bankfeeds: --url: {problem}.")
        return 2
    expected = settings.public_base_url + RECEIVER_PATH
    if not same_url(url, expected):
        print_line(f"Note: {url} is not PUBLIC_BASE_URL{RECEIVER_PATH} ({expected}).")
    try:
        async with open_codat(settings, transport=codat_transport) as codat:
            with retry_budget(CODAT_BUDGET_SECONDS):
                result = await set_up(codat, url)
    except CodatError as exc:
        print_line(f"Codat did not set up the webhook consumer: {exc}")
        return 1
    consumer = result.consumer
    if result.created:
        print_line(f"Created Codat webhook consumer {consumer.id} for {consumer.url}.")
    else:
        print_line(f"Codat webhook consumer {consumer.id} for {consumer.url} is already right.")
    print_line(f"It receives: {', '.join(NEEDED_EVENT_TYPES)}.")
    for old in result.deleted:
        print_line(f"Deleted consumer {old.id}, which it replaces.")
    step = PORTAL_STEP.format(url=consumer.url)
    if result.created:
        print_line(step)
    else:
        print_line("If CODAT_WEBHOOK_SECRET is not yet that endpoint's secret: " + step)
    return 0


def cmd_setup_webhooks(args: argparse.Namespace) -> int:
    settings = load_settings()
    url = args.url or settings.public_base_url + RECEIVER_PATH
    return asyncio.run(setup_webhooks(settings, url))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    codat = sub.add_parser("codat", help="set this service up at Codat")
    commands = codat.add_subparsers(dest="codat_command", required=True)
    webhooks = commands.add_parser(
        "setup-webhooks",
        help="create or replace the Codat webhook consumer for this service (idempotent)",
    )
    webhooks.add_argument(
        "--url",
        default=None,
        help=f"where Codat delivers (default: PUBLIC_BASE_URL{RECEIVER_PATH})",
    )
    webhooks.set_defaults(func=cmd_setup_webhooks)

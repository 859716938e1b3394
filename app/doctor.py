"""`bankfeeds doctor`: is this deployment ready to connect customers to QBO Bank Feeds?"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.codat.client import CodatClient, Transport, retry_budget
from app.codat.errors import CodatError, CodatNotFound, CodatUnauthorized
from app.codat.models import PLATFORM_KEY_QBO_BANK_FEEDS
from app.services import build_sandbox, open_codat
from app.settings import AppEnv, Settings, is_placeholder, load_settings
from app.webhooks.subscription import NEEDED_EVENT_TYPES, RECEIVER_PATH, read_subscription

CALLOUT_TITLE_MAX = 50
CALLOUT_BODY_MAX = 150
CODAT_BUDGET_SECONDS = 10.0
DATABASE_TIMEOUT_SECONDS = 10.0
CONSUMER = "Codat webhook consumer"
BANK_TRANSACTIONS = "Codat data type 'bankTransactions'"
UNUSABLE_STATES = ("notsupported", "notimplemented", "deprecated")  # Codat's, lower-cased
_MARKUP = re.compile(r"<|>|&[#a-zA-Z0-9]+;|\]\(|\*\*|__")
_NEW_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
SECRETS = (
    ("connect_token_secret", f"set it to a random value of 32+ characters ({_NEW_SECRET})"),
    ("ops_api_token", f"set it to a random value of 32+ characters ({_NEW_SECRET})"),
    (
        "codat_webhook_secret",
        "copy the signing secret (whsec_...) of your webhook endpoint from the Codat Portal "
        "(Monitor > Webhooks)",
    ),
)
PORTAL_REMINDERS = (
    "Settings > Data types: Bank accounts and Bank transactions are enabled.",
    "Settings > Link: the Link UI is customised (logo uploaded; the callout, if you use one).",
    "Intuit has approved your institution name for QuickBooks' bank list (Codat requests it).",
    "Settings > Integrations > Bank feeds > QuickBooks Online Bank Feeds: set up and Enabled.",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        if self.ok:
            return f"✓ {self.name}: {self.detail}"
        return f"✗ {self.name}: {self.detail}. Fix: {self.fix}"


async def run_checks(
    settings: Settings, *, codat_transport: Transport | None = None
) -> list[Check]:
    """Every check, in the order they print. Never includes a secret's value."""
    checks = [_secret(settings, name, fix) for name, fix in SECRETS]
    checks.append(_public_base_url(settings))
    checks += [_callout(settings, lang) for lang in ("en", "fr")]
    checks.append(await _database(settings))
    checks += await _codat(settings, codat_transport)
    return checks


def report(checks: list[Check], print_line: Callable[[str], None]) -> int:
    for check in checks:
        print_line(check.line())
    print_line("")
    print_line(
        "Portal-only prerequisites (no API can check these; confirm them in the Codat Portal):"
    )
    for reminder in PORTAL_REMINDERS:
        print_line(f"  • {reminder}")
    failed = [c for c in checks if not c.ok]
    print_line("")
    print_line(f"{len(failed)} check(s) failed." if failed else "All checks passed.")
    return 1 if failed else 0


# --- settings -----------------------------------------------------------------------------


def _secret(settings: Settings, name: str, fix: str) -> Check:
    env = name.upper()
    value = getattr(settings, name)
    if value is None or not value.get_secret_value().strip():
        return Check(env, False, "not set", fix)
    secret = value.get_secret_value()
    if is_placeholder(secret):
        return Check(env, False, "still a placeholder (or shorter than 16 characters)", fix)
    if name == "codat_webhook_secret" and not re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret):
        return Check(env, False, "not a whsec_<base64> signing secret", fix)
    return Check(env, True, "set")


def _public_base_url(settings: Settings) -> Check:
    name, url = "PUBLIC_BASE_URL", settings.public_base_url
    fix = "set it to the https URL customers and Codat reach this service on"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(name, False, f"{url!r} is not an absolute http(s) URL", fix)
    if "public_base_url" not in settings.model_fields_set and not settings.sandbox_mode:
        return Check(name, False, f"not set (the default {url} is only for the sandbox)", fix)
    if settings.app_env is AppEnv.production and parts.scheme != "https":
        return Check(name, False, f"{url} is not https", fix)
    return Check(name, True, url)


def _callout(settings: Settings, lang: str) -> Check:
    name = f"Link callout ({lang})"
    env = f"LINK_CALLOUT_TITLE_{lang.upper()} / LINK_CALLOUT_BODY_{lang.upper()}"
    title = getattr(settings, f"link_callout_title_{lang}") or ""
    body = getattr(settings, f"link_callout_body_{lang}") or ""
    if not title and not body:
        return Check(name, True, "not set (optional)")
    problem = None
    if not title or not body:
        problem = "has a body but no title" if body else "has a title but no body"
    elif len(title) > CALLOUT_TITLE_MAX:
        problem = f"title is {len(title)} characters, at most {CALLOUT_TITLE_MAX} allowed"
    elif len(body) > CALLOUT_BODY_MAX:
        problem = f"body is {len(body)} characters, at most {CALLOUT_BODY_MAX} allowed"
    elif _MARKUP.search(title) or _MARKUP.search(body):
        problem = "must be plain text, without HTML or Markdown"
    elif "\n" in title or "\r" in title:
        problem = "title must be a single line"
    if problem:
        return Check(name, False, problem, f"correct {env} (plain text, title and body together)")
    return Check(
        name, True, f"title {len(title)}/{CALLOUT_TITLE_MAX}, body {len(body)}/{CALLOUT_BODY_MAX}"
    )


# --- database -----------------------------------------------------------------------------


async def _database(settings: Settings) -> Check:
    from sqlalchemy.engine import make_url

    from app.db import create_engine
    from app.migrate import current_revision, head_revision

    name = "Database"
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    migrate = "run `bankfeeds migrate` (or `bankfeeds serve --migrate`)"
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not await asyncio.to_thread(Path(url.database or "").exists):
            return Check(name, False, f"{shown}: the file does not exist", migrate)
    engine = create_engine(settings.database_url)
    try:
        revision = await asyncio.wait_for(current_revision(engine), DATABASE_TIMEOUT_SECONDS)
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0][:200]
        return Check(
            name,
            False,
            f"cannot reach {shown} ({type(exc).__name__}: {reason})",
            "check DATABASE_URL and that the database server is running and reachable",
        )
    finally:
        await engine.dispose()
    head = head_revision()
    if revision is None:
        return Check(name, False, f"{shown} is reachable but has no tables", migrate)
    if revision != head:
        return Check(name, False, f"{shown} is at revision {revision}, head is {head}", migrate)
    return Check(name, True, f"{shown} reachable, migrated to head ({head})")


# --- Codat --------------------------------------------------------------------------------


async def _codat(settings: Settings, transport: Transport | None) -> list[Check]:
    where = "the built-in sandbox" if settings.sandbox_mode else settings.codat_base_url
    key_name = "Codat API key" + (
        " (sandbox mode: no CODAT_API_KEY)" if settings.sandbox_mode else ""
    )
    integration_name = f"Codat integration {PLATFORM_KEY_QBO_BANK_FEEDS!r}"
    key_fix = "set CODAT_API_KEY to a key from the Codat Portal (Developers > API keys)"
    try:
        # In sandbox mode, a sandbox of this process's own, sending no webhooks: the doctor
        # changes nothing. ValueError if the settings could not exist at Codat.
        sandbox = (
            build_sandbox(settings, webhooks=False)
            if settings.sandbox_mode and transport is None
            else None
        )
        async with open_codat(settings, sandbox=sandbox, transport=transport) as codat:
            with retry_budget(CODAT_BUDGET_SECONDS):
                key = await _codat_key(codat, key_name, where, key_fix)
                if not key.ok:
                    first = "fix the API key first"
                    return [
                        key,
                        Check(integration_name, False, "not checked", first),
                        Check(BANK_TRANSACTIONS, False, "not checked", first),
                        Check(CONSUMER, False, "not checked", first),
                    ]
                return [
                    key,
                    await _integration(codat, integration_name),
                    await _bank_transactions(codat),
                    await _webhook_consumer(codat, settings.public_base_url + RECEIVER_PATH),
                ]
    except ValueError as exc:
        fix = "correct the settings it names"
        return [Check(key_name, False, f"the sandbox cannot start: {exc}", fix)]


async def _codat_key(codat: CodatClient, name: str, where: str, fix: str) -> Check:
    try:
        await codat.list_companies(page_size=1)
    except CodatUnauthorized:
        return Check(name, False, f"{where} refused the key, given as {codat.key_form} (401)", fix)
    except CodatError as exc:
        detail = f"{where} answered {exc.status}" if exc.status else f"cannot reach {where}"
        return Check(
            name,
            False,
            f"{detail} ({type(exc).__name__})",
            "check CODAT_BASE_URL, "
            "the network path to Codat, and status.codat.io; then run doctor again",
        )
    return Check(name, True, f"{where} accepts it (given as {codat.key_form})")


async def _integration(codat: CodatClient, name: str) -> Check:
    enable = (
        "in the Codat Portal, Settings > Integrations > Bank feeds > "
        "QuickBooks Online Bank Feeds > Set up, switch it to Enabled"
    )
    try:
        integration = await codat.get_integration(PLATFORM_KEY_QBO_BANK_FEEDS)
    except CodatNotFound:
        return Check(
            name,
            False,
            "not available to this Codat account",
            "ask your Codat account manager for QuickBooks Online Bank Feeds, then " + enable,
        )
    except CodatError as exc:
        return Check(name, False, f"could not be read ({type(exc).__name__} {exc.status})", enable)
    if not integration.enabled:
        return Check(name, False, f"{integration.name} is not enabled", enable)
    return Check(name, True, f"{integration.name} is enabled")


async def _bank_transactions(codat: CodatClient) -> Check:
    """The transaction feed writes `bankTransactions`: the data type must be enabled. Codat's
    data type settings say so; where they cannot be read, the integration's own features."""
    fix = "in the Codat Portal, Settings > Data types, enable Bank transactions (and Bank accounts)"
    try:
        found = await codat.get_sync_settings()
    except CodatNotFound:
        found = None
    except CodatError as exc:
        return Check(
            BANK_TRANSACTIONS, False, f"could not be read ({type(exc).__name__} {exc.status})", fix
        )
    if found is not None:
        if any(s.data_type == "bankTransactions" for s in found.settings):
            return Check(BANK_TRANSACTIONS, True, "enabled in the data type settings")
        return Check(BANK_TRANSACTIONS, False, "not in the data type settings", fix)
    try:
        integration = await codat.get_integration(PLATFORM_KEY_QBO_BANK_FEEDS)
    except CodatError as exc:
        return Check(
            BANK_TRANSACTIONS, False, f"could not be read ({type(exc).__name__} {exc.status})", fix
        )
    feature = integration.feature("bankTransactions")
    if feature is None:
        return Check(
            BANK_TRANSACTIONS, True, "not restricted by the integration (confirm in the Portal)"
        )
    writes = [f for f in feature.supported_features if (f.feature_type or "").lower() == "post"]
    if not writes or all((f.feature_state or "").lower() in UNUSABLE_STATES for f in writes):
        state = writes[0].feature_state if writes else "not offered"
        return Check(BANK_TRANSACTIONS, False, f"writes are {state} for the integration", fix)
    return Check(BANK_TRANSACTIONS, True, f"writes are {writes[0].feature_state}")


async def _webhook_consumer(codat: CodatClient, url: str) -> Check:
    setup = "run `bankfeeds codat setup-webhooks`, then copy its signing secret as it says"
    try:
        subscription = await read_subscription(codat, url)
    except CodatError as exc:
        return Check(
            CONSUMER,
            False,
            f"the consumers could not be read ({type(exc).__name__} {exc.status})",
            "check that the API key may manage webhooks, then " + setup,
        )
    best = subscription.best()
    if best is None:
        return Check(CONSUMER, False, f"none sends events to {url}", setup)
    if best.disabled:
        return Check(CONSUMER, False, f"{url}: consumer {best.id} is disabled", setup)
    if best.company_tags:
        tags = ", ".join(best.company_tags)
        return Check(CONSUMER, False, f"{url}: consumer {best.id} only sends {tags}", setup)
    missing = subscription.missing(best)
    if missing:
        return Check(CONSUMER, False, f"{url} does not receive {', '.join(missing)}", setup)
    return Check(CONSUMER, True, f"{url} receives all {len(NEEDED_EVENT_TYPES)} event types")


# --- the command --------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.sandbox_mode:
        print("Sandbox mode: no CODAT_API_KEY, so Codat checks run against the built-in sandbox.")
    return report(asyncio.run(run_checks(settings)), print)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check settings, database and Codat; exits non-zero on any failure",
    )
    parser.set_defaults(func=cmd_doctor)

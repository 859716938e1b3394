"""The service's Prometheus metrics, and one function to record each fact.

Every metric lives in `REGISTRY` (not prometheus-client's global one, so nothing else leaks into
the scrape). Code elsewhere records through the functions below, never through the metric
objects, so the label values stay a small fixed set. `docs/operations.md` lists every metric
with its meaning and the alerts built on them. Gauges that need the database are set when the
endpoint is scraped (`app/observability.py`), never by a timer.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
PREFIX = "bankfeeds"
# Codat answers in tens to hundreds of milliseconds; its slow writes take seconds.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- the customer's click ----------------------------------------------------------------

CLICKS = Counter(
    f"{PREFIX}_connect_clicks",
    "Clicks on the Connect button, by outcome: `redirected` to Codat's Link page, or the page "
    "the customer saw instead (token_invalid, customer_unknown, codat_unavailable, ...).",
    ["outcome"],
    registry=REGISTRY,
)

# --- Codat's API ---------------------------------------------------------------------------

CODAT_REQUESTS = Counter(
    f"{PREFIX}_codat_requests",
    "HTTP requests to Codat (each retry counts), by Codat operationId and status: the HTTP "
    "status, or `timeout` / `connection_error` when Codat did not answer.",
    ["operation", "status"],
    registry=REGISTRY,
)
CODAT_LATENCY = Histogram(
    f"{PREFIX}_codat_request_duration_seconds",
    "Time from sending a request to Codat to its answer (or the failure), by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
CODAT_RETRIES = Counter(
    f"{PREFIX}_codat_retries",
    "Requests to Codat sent again after a transient failure, by operation and reason.",
    ["operation", "reason"],
    registry=REGISTRY,
)
CODAT_RATE_LIMITED = Counter(
    f"{PREFIX}_codat_rate_limited",
    "429 answers from Codat (daily quota or concurrency limit), by operation.",
    ["operation"],
    registry=REGISTRY,
)
CODAT_QUOTA_REMAINING = Gauge(
    f"{PREFIX}_codat_quota_remaining",
    "Codat requests left in today's quota, from the last X-Rate-Limit-Remaining header or "
    "client.rateLimit webhook this process saw.",
    registry=REGISTRY,
)
CODAT_QUOTA_LIMIT = Gauge(
    f"{PREFIX}_codat_quota_limit",
    "Codat's daily request quota, from the last X-Rate-Limit-Limit header or client.rateLimit "
    "webhook this process saw.",
    registry=REGISTRY,
)
CODAT_PAUSED = Gauge(
    f"{PREFIX}_codat_rate_limit_paused",
    "1 while background Codat calls are paused for Codat's rate limit (shared by every "
    "process, read from the database at scrape time), else 0.",
    registry=REGISTRY,
)

# --- Codat's webhooks --------------------------------------------------------------------

WEBHOOK_DELIVERIES = Counter(
    f"{PREFIX}_webhook_deliveries",
    "Deliveries to POST /webhooks/codat, by event type (`other` for types the service does not "
    "handle, `unknown` when refused before it could be read) and outcome: accepted, duplicate, "
    "or refused (bad_signature, malformed, not_configured).",
    ["event_type", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    f"{PREFIX}_webhook_events",
    "Attempts at handling stored webhook events, by event type and outcome: handled, ignored, "
    "unmatched, retry (failed, will be tried again) or failed (for good).",
    ["event_type", "outcome"],
    registry=REGISTRY,
)
INBOX_EVENTS = Gauge(
    f"{PREFIX}_webhook_inbox_events",
    "Events in the webhook inbox by status (read from the database at scrape time).",
    ["status"],
    registry=REGISTRY,
)
INBOX_OLDEST_PENDING_AGE = Gauge(
    f"{PREFIX}_webhook_inbox_oldest_pending_age_seconds",
    "Age of the oldest event still waiting to be handled; 0 when none waits (scrape time).",
    registry=REGISTRY,
)
WEBHOOK_LAST_RECEIVED = Gauge(
    f"{PREFIX}_webhook_last_received_timestamp_seconds",
    "Unix time of the newest webhook stored in the inbox; 0 before the first (scrape time).",
    registry=REGISTRY,
)

# --- the reconciler -----------------------------------------------------------------------

RECONCILER_CYCLES = Counter(
    f"{PREFIX}_reconciler_cycles",
    "Reconciler rounds, by outcome: ok, paused (Codat's rate limit or a back-off), "
    "out_of_budget (its per-minute request budget is spent) or error (the round itself failed).",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILER_FEEDS = Counter(
    f"{PREFIX}_reconciler_feeds",
    "Bank feeds the reconciler read from Codat, by result: refreshed, failed, busy.",
    ["result"],
    registry=REGISTRY,
)
PROVISIONED_CUSTOMERS = Counter(
    f"{PREFIX}_provisioned_customers",
    "Customers provisioned ahead of their click (PROVISION_AHEAD), by result: provisioned, "
    "failed, busy (a click or another process held the customer).",
    ["result"],
    registry=REGISTRY,
)
RECONCILER_LAST_CYCLE = Gauge(
    f"{PREFIX}_reconciler_last_cycle_timestamp_seconds",
    "Unix time this process's reconciler last finished a round.",
    registry=REGISTRY,
)

# --- transactions pushed to Codat (the transaction feed records these) --------------------

TRANSACTION_PUSHES = Counter(
    f"{PREFIX}_transaction_pushes",
    "Pushes of bank transactions to Codat, by state (the push operation's status as we last "
    "saw it: Pending, Success, Failed, TimedOut).",
    ["state"],
    registry=REGISTRY,
)
TRANSACTIONS = Counter(
    f"{PREFIX}_transactions",
    "Bank transactions moved to a state (queued, pushed, written, rejected).",
    ["state"],
    registry=REGISTRY,
)
TRANSACTIONS_STORED = Gauge(
    f"{PREFIX}_transactions_stored",
    "Bank transactions held by the service, by state (read from the database at scrape time).",
    ["state"],
    registry=REGISTRY,
)
TRANSACTIONS_OLDEST_PENDING_AGE = Gauge(
    f"{PREFIX}_transactions_oldest_pending_age_seconds",
    "Age of the oldest transaction not yet written to QuickBooks; 0 when none (scrape time).",
    registry=REGISTRY,
)


DATABASE_READ = Gauge(
    f"{PREFIX}_metrics_database_read_ok",
    "1 when this scrape read the database gauges above, 0 when the database did not answer "
    "(they then keep the values of the last scrape that could read them).",
    registry=REGISTRY,
)


# --- recording ----------------------------------------------------------------------------


def click(outcome: str) -> None:
    CLICKS.labels(outcome).inc()


def codat_answer(operation: str, status: str, seconds: float) -> None:
    CODAT_REQUESTS.labels(operation, status).inc()
    CODAT_LATENCY.labels(operation).observe(seconds)
    if status == "429":
        CODAT_RATE_LIMITED.labels(operation).inc()


def codat_retry(operation: str, reason: str) -> None:
    CODAT_RETRIES.labels(operation, reason).inc()


def codat_quota(remaining: int | None, limit: int | None) -> None:
    if remaining is not None:
        CODAT_QUOTA_REMAINING.set(remaining)
    if limit is not None:
        CODAT_QUOTA_LIMIT.set(limit)


def webhook_delivery(event_type: str, outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(event_type, outcome).inc()


def webhook_event(event_type: str, outcome: str) -> None:
    WEBHOOK_EVENTS.labels(event_type, outcome).inc()


def reconciler_cycle(outcome: str, refreshed: int, failed: int, busy: int) -> None:
    RECONCILER_CYCLES.labels(outcome).inc()
    for result, count in (("refreshed", refreshed), ("failed", failed), ("busy", busy)):
        if count:
            RECONCILER_FEEDS.labels(result).inc(count)
    RECONCILER_LAST_CYCLE.set(time.time())


def provisioned(result: str, count: int) -> None:
    if count:
        PROVISIONED_CUSTOMERS.labels(result).inc(count)


def transaction_push(state: str) -> None:
    """A push operation reached `state` (call once per push and state)."""
    TRANSACTION_PUSHES.labels(state).inc()


def transactions(state: str, count: int = 1) -> None:
    """`count` transactions moved to `state`."""
    TRANSACTIONS.labels(state).inc(count)

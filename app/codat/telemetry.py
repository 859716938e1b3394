"""What the client reports of each Codat request: one log line and the metrics.

Each request is named by Codat's operationId (`get-connection`), found from its method and
path, so ids never become metric labels. The log line carries Codat's `correlationId` whenever
Codat gives one (its error bodies do), the operation, the status and the time taken.
"""

from __future__ import annotations

import logging
import re

import httpx

from app import metrics
from app.codat.errors import CodatError, CodatTimeout

log = logging.getLogger("app.codat")

_ID = "[^/]+"
_COMPANY = f"/companies/{_ID}"
_CONNECTION = f"{_COMPANY}/connections/{_ID}"
_ACCOUNTS = f"{_CONNECTION}/connectionInfo/bankFeedAccounts"
# (method, path pattern, Codat's operationId); the contract test checks each against the spec.
OPERATIONS = tuple(
    (method, re.compile(f"^{pattern}$"), name)
    for method, pattern, name in (
        ("POST", "/companies", "create-company"),
        ("GET", "/companies", "list-companies"),
        ("GET", _COMPANY, "get-company"),
        ("DELETE", _COMPANY, "delete-company"),
        ("POST", f"{_COMPANY}/connections", "create-connection"),
        ("GET", f"{_COMPANY}/connections", "list-connections"),
        ("GET", _CONNECTION, "get-connection"),
        ("PATCH", _CONNECTION, "unlink-connection"),
        ("DELETE", _CONNECTION, "delete-connection"),
        ("POST", _ACCOUNTS, "create-source-account"),
        ("GET", _ACCOUNTS, "list-source-accounts"),
        ("POST", f"{_ACCOUNTS}/batch", "create-batch-source-account"),
        ("PATCH", f"{_ACCOUNTS}/{_ID}", "update-source-account"),
        ("DELETE", f"{_ACCOUNTS}/credentials", "delete-bank-feed-credentials"),
        ("DELETE", f"{_ACCOUNTS}/{_ID}", "delete-source-account"),
        (
            "POST",
            f"{_CONNECTION}/push/bankAccounts/{_ID}/bankTransactions",
            "create-bank-transactions",
        ),
        ("GET", f"{_COMPANY}/push/{_ID}", "get-create-operation"),
        ("GET", f"{_COMPANY}/push", "list-create-operations"),
        ("GET", f"/integrations/{_ID}", "get-integration"),
        ("GET", "/profile/syncSettings", "get-profile-syncSettings"),
        ("GET", "/webhooks", "list-webhook-consumers"),
        ("POST", "/webhooks", "create-webhook-consumer"),
        ("DELETE", f"/webhooks/{_ID}", "delete-webhook-consumer"),
    )
)


def operation_of(method: str, path: str) -> str:
    """Codat's operationId for a request; `other` for one not in the table."""
    for known_method, pattern, name in OPERATIONS:
        if method == known_method and pattern.match(path):
            return name
    return "other"


def answered(
    method: str,
    path: str,
    response: httpx.Response,
    seconds: float,
    error: CodatError | None,
) -> None:
    """Codat answered (any status; `error` is what a 4xx or 5xx made of the answer)."""
    operation = operation_of(method, path)
    correlation_id = error.correlation_id if error else None
    status = response.status_code
    metrics.codat_answer(operation, str(status), seconds)
    metrics.codat_quota(
        _int_header(response, "x-rate-limit-remaining"), _int_header(response, "x-rate-limit-limit")
    )
    where = f" (correlationId {correlation_id})" if correlation_id else ""
    log.info(
        "codat %s %s -> %s in %.0f ms%s",
        method,
        path,
        status,
        seconds * 1000,
        where,
        extra={
            "codat_operation": operation,
            "codat_status": status,
            "duration_ms": round(seconds * 1000, 1),
            "codat_correlation_id": correlation_id,
        },
    )


def unanswered(method: str, path: str, error: Exception, seconds: float) -> None:
    """Codat did not answer: a timeout or a connection failure."""
    operation = operation_of(method, path)
    status = "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"
    metrics.codat_answer(operation, status, seconds)
    log.info(
        "codat %s %s -> %s after %.0f ms",
        method,
        path,
        status,
        seconds * 1000,
        extra={
            "codat_operation": operation,
            "codat_status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )


def retrying(method: str, path: str, error: CodatError, attempt: int, wait: float) -> None:
    if error.status is not None:
        reason = str(error.status)
    else:
        reason = "timeout" if isinstance(error, CodatTimeout) else "connection_error"
    metrics.codat_retry(operation_of(method, path), reason)
    log.warning(
        "codat %s %s: %s; retry %d in %.2fs", method, path, type(error).__name__, attempt, wait
    )


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

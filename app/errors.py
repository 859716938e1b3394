"""The ops API's failures, each with its HTTP status; Codat's errors are turned into them."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator

from app.codat.client import retry_budget
from app.codat.errors import CodatError

log = logging.getLogger("app.ops")

DEFAULT_RETRY_AFTER = 5


class OpsError(Exception):
    status_code = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class NotFound(OpsError):
    status_code = 404


class Conflict(OpsError):
    status_code = 409


class CodatRefused(OpsError):
    status_code = 502


class CodatUnavailable(OpsError):
    status_code = 503


@contextlib.contextmanager
def talking_to_codat(
    budget: float, doing: str, outcome: str = "nothing was changed"
) -> Iterator[None]:
    """Codat calls inside share one retry budget; a failure becomes an `OpsError`."""
    try:
        with retry_budget(budget):
            yield
    except CodatError as exc:
        log.warning("ops: %s failed: %s", doing, exc)
        where = f" (Codat correlation id {exc.correlation_id})" if exc.correlation_id else ""
        if exc.transient:
            wait = math.ceil(exc.retry_after) if exc.retry_after else DEFAULT_RETRY_AFTER
            raise CodatUnavailable(
                f"Codat did not answer while {doing}{where}; {outcome}. Try again.",
                headers={"Retry-After": str(max(1, wait))},
            ) from exc
        said = exc.body.get("error") if isinstance(exc.body, dict) else None
        reason = f": {str(said)[:300]}" if said else ""
        raise CodatRefused(
            f"Codat refused {doing} with status {exc.status}{reason}{where}; {outcome}."
        ) from exc

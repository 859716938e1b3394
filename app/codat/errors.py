"""One error tree for everything Codat can answer, each carrying Codat's correlation id."""

from __future__ import annotations


class CodatError(Exception):
    """Base of every Codat failure. `transient` errors may succeed if tried again later."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        correlation_id: str | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.correlation_id = correlation_id
        self.body = body
        self.retry_after = retry_after

    @property
    def reason(self) -> str | None:
        """Codat's own words for the failure (the `error` of its answer), if it gave any."""
        said = self.body.get("error") if isinstance(self.body, dict) else None
        return str(said)[:300] if said else None

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.correlation_id:
            parts.append(f"correlationId={self.correlation_id}")
        return " ".join(parts)


class CodatConnectionError(CodatError):
    transient = True


class CodatTimeout(CodatError):
    transient = True


class CodatAPIError(CodatError):
    """Codat answered with an error status and (usually) an `ErrorMessage` body."""


class CodatBadRequest(CodatAPIError):
    pass


class CodatUnauthorized(CodatAPIError):
    pass


class CodatPaymentRequired(CodatAPIError):
    pass


class CodatForbidden(CodatAPIError):
    pass


class CodatNotFound(CodatAPIError):
    pass


class CodatRequestTimeout(CodatAPIError):
    transient = True


class CodatConflict(CodatAPIError):
    """A real conflict: what was asked contradicts what Codat holds (never "still running")."""


class CodatStillProcessing(CodatAPIError):
    """409 to a retry: Codat is still working on the first request with this Idempotency-Key.

    Not a conflict and not a failure: the same request, same key, gets the answer once done.
    """

    transient = True


class CodatUnprocessable(CodatAPIError):
    pass


class CodatRateLimited(CodatAPIError):
    transient = True


class CodatServerError(CodatAPIError):
    transient = True


class CodatWriteUnconfirmed(CodatServerError):
    """A 5xx (or 408) to a POST or PATCH. Codat keeps that answer under the Idempotency-Key for
    90 minutes, so retrying with the same key cannot help: read the state back and redo only
    what is missing, under a new key. The write may or may not have happened."""


class CodatUnexpectedResponse(CodatError):
    """A success whose body lacks what the client needs (or is not JSON at all). Asking again
    at once would get the same answer: not transient."""


_BY_STATUS: dict[int, type[CodatAPIError]] = {
    400: CodatBadRequest,
    401: CodatUnauthorized,
    402: CodatPaymentRequired,
    403: CodatForbidden,
    404: CodatNotFound,
    408: CodatRequestTimeout,
    409: CodatConflict,
    422: CodatUnprocessable,
    429: CodatRateLimited,
}


IN_PROGRESS_MARKERS = ("still being processed", "in progress", "idempotency-key")


def is_still_processing(body: object) -> bool:
    """Whether a 409's `ErrorMessage` says the first request with this key is still running.

    Codat's batch "already exists" 409 is a list of per-account results; a real conflict names
    the resource. Only the idempotency answer speaks of the request still being processed.
    """
    if not isinstance(body, dict):
        return False
    error = str(body.get("error") or "").lower()
    return any(marker in error for marker in IN_PROGRESS_MARKERS)


def error_for_status(status: int) -> type[CodatAPIError]:
    if status >= 500:
        return CodatServerError
    return _BY_STATUS.get(status, CodatAPIError)

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
    pass


class CodatUnprocessable(CodatAPIError):
    pass


class CodatRateLimited(CodatAPIError):
    transient = True


class CodatServerError(CodatAPIError):
    transient = True


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


def error_for_status(status: int) -> type[CodatAPIError]:
    if status >= 500:
        return CodatServerError
    return _BY_STATUS.get(status, CodatAPIError)

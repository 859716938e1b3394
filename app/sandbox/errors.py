"""Codat's `ErrorMessage` body, and the exception the sandbox raises to send one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class FieldError:
    item_id: str
    message: str
    validator: str


class CodatError(Exception):
    """An error Codat would answer with `ErrorMessage`: raised anywhere, rendered once."""

    def __init__(
        self, status_code: int, message: str, field_errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field_errors = field_errors or []


def not_found(what: str, identifier: str) -> CodatError:
    return CodatError(404, f"{what} with id {identifier} was not found.")


def error_message(
    status_code: int, message: str, field_errors: list[FieldError] | None = None
) -> dict[str, object]:
    validation = None
    if field_errors:
        validation = {
            "errors": [
                {"itemId": e.item_id, "message": e.message, "validatorName": e.validator}
                for e in field_errors
            ],
            "warnings": [],
        }
    return {
        "statusCode": status_code,
        "service": "PublicApi",
        "error": message,
        "correlationId": str(uuid.uuid4()),
        "validation": validation,
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
    }


def error_response(
    status_code: int, message: str, field_errors: list[FieldError] | None = None
) -> JSONResponse:
    return JSONResponse(error_message(status_code, message, field_errors), status_code=status_code)

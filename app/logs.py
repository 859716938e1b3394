"""Logging that can never print a secret, a one-time password or a link URL: one line per
record, as text or (LOG_FORMAT=json) as a JSON object, with the request id when there is one."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import IO, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app import request_ids
from app.codat.client import authorization_header
from app.settings import SANDBOX_API_KEY, Settings

LogFormat = Literal["text", "json"]
HANDLER_NAME = "bankfeeds"
_TRACEBACKS = logging.Formatter()

_LINK = re.compile(r"(otp=)[^&\s\"']+|(/start\?)[^\s\"']+", re.IGNORECASE)


def redaction_list(settings: Settings) -> list[str]:
    """Every value no log line or stored error may show: the secrets, the sandbox's key, and
    the Codat key as its Authorization header carries it (base64), however it was given."""
    values = [SANDBOX_API_KEY, *settings.secret_values()]
    if settings.codat_api_key is not None:
        header, _ = authorization_header(settings.codat_api_key.get_secret_value())
        values.append(header.removeprefix("Basic "))
    return values


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return _LINK.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # The whole traceback, chained causes included, as text, redacted: both formats
            # print `exc_text` when `exc_info` is gone.
            record.exc_text = self.redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    """Stamps each line written while a request is served with its id (`app.request_ids`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_ids.current.get()
        if request_id is not None:
            record.request_id = request_id
        return True


def log_handler(
    redactor: RedactingFilter, log_format: LogFormat = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing one line per record, as text or as a JSON object, always redacted."""
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp="time",
        )
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            defaults={"request_id": "-"},
        )
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(redactor)
    handler.set_name(HANDLER_NAME)
    return handler


def configure_logging(
    redactor: RedactingFilter, log_format: LogFormat = "text", level: int = logging.INFO
) -> None:
    """Install the redacting filter on the root handlers (and any added later by uvicorn); the
    service's own handler, when root has none but ours, writes in `log_format`."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if len(ours) == len(root.handlers):
        for handler in ours:
            root.removeHandler(handler)
        root.addHandler(log_handler(redactor, log_format))
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our client logs each Codat call
    # Its debug lines carry SQL parameters, and endpoint signing secrets are among them.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "app"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(old)
        logger.addFilter(redactor)
        for existing in logger.handlers:
            for old in [f for f in existing.filters if isinstance(f, RedactingFilter)]:
                existing.removeFilter(old)
            existing.addFilter(redactor)

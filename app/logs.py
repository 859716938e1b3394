"""Logging that can never print a secret, a one-time password or a link URL."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from app.codat.client import authorization_header
from app.settings import SANDBOX_API_KEY, Settings

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
            exc = record.exc_info[1]
            text = self.redact(str(exc))
            if text != str(exc):
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} ({type(exc).__name__}: {text})"
        return True


def configure_logging(redactor: RedactingFilter, level: int = logging.INFO) -> None:
    """Install the redacting filter on the root handlers (and any added later by uvicorn)."""
    root = logging.getLogger()
    if not root.handlers:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
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

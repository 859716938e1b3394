"""One running sandbox: its clock, state, call log and webhook emitter."""

from __future__ import annotations

import asyncio
import base64
import hmac
from datetime import datetime

from fastapi import Request

from app.sandbox.bank_feeds import BankFeeds
from app.sandbox.config import SandboxConfig
from app.sandbox.state import ApiCall, SandboxClock
from app.sandbox.store import SandboxStore
from app.sandbox.webhook_consumers import WebhookConsumers
from app.sandbox.webhooks import WebhookEmitter
from app.sandbox.wire import Json
from app.sandbox.writes import BankTransactionWrites


class Sandbox:
    """Everything one sandbox holds; tests reach it as `app.state.sandbox`."""

    def __init__(self, config: SandboxConfig) -> None:
        config.validate()
        self.config = config
        self.clock = SandboxClock()
        self.webhooks = WebhookEmitter(config, self.clock)
        self.webhook_consumers = WebhookConsumers.configured(config.webhook_url)
        self.store = SandboxStore(self.clock, config.base_url, self._emit)
        self.bank_feeds = BankFeeds(self.store, config.disconnect_delay, self._settle_at)
        self.writes = BankTransactionWrites(
            self.store, config.push_delay, self._emit, self._settle_at
        )
        self.calls: list[ApiCall] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: datetime | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._authorization = base64.b64encode(config.api_key.encode()).decode()

    def _emit(self, event_type: str, ordering_key: str, payload: Json) -> None:
        """Send an event to the webhook URL if a consumer there subscribes to its type."""
        if self.webhook_consumers.wants(self.config.webhook_url, event_type):
            self.webhooks.emit(event_type, ordering_key, payload)

    def reset_calls(self) -> None:
        self.calls.clear()

    def settle(self, *, all_writes: bool = False) -> None:
        """Catch up with the clock: apply disconnections and settle writes whose time has come.

        `all_writes` settles every Pending write now, whatever its delay (a test's knob).
        """
        due = [self.bank_feeds.settle(), self.writes.settle(everything=all_writes)]
        next_due = min((d for d in due if d is not None), default=None)
        if next_due is not None:
            self._settle_at(next_due)

    def authorized(self, header: str | None) -> bool:
        scheme, _, credentials = (header or "").strip().partition(" ")
        return scheme.lower() == "basic" and hmac.compare_digest(
            credentials.strip().encode(), self._authorization.encode()
        )

    def _settle_at(self, due: datetime) -> None:
        # One timer, for the earliest disconnection or write, on top of the lazy catch-up on each
        # request, so webhooks fire even when nobody calls; settle() sets the next one.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer_loop is loop and self._timer_due is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()

        def fire() -> None:
            self._timer = self._timer_due = self._timer_loop = None
            self.settle()

        delay = max((due - self.clock.now()).total_seconds(), 0.0) + 0.01
        self._timer = loop.call_later(delay, fire)
        self._timer_due, self._timer_loop = due, loop

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_due = self._timer_loop = None
        await self.webhooks.aclose()


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox

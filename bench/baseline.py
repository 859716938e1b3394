"""The baseline: the first-connect journey as Codat's setup guide writes it, with Codat's SDK.

Create the company, create the `hcws` connection, create each source account with its own
POST (v2 body), then read the connection for its Link URL. Synchronous, as the SDK is; the
harness runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from codat_bankfeeds import CodatBankFeeds
from codat_bankfeeds.models import shared
from codat_bankfeeds.models.shared.routinginfo import RoutingInfo
from codat_bankfeeds.models.shared.sourceaccountv2prototype import SourceAccountV2Prototype
from codat_bankfeeds.utils.retries import RetryConfig

PLATFORM_KEY = "hcws"
T = TypeVar("T")


@dataclass(frozen=True)
class JourneyResult:
    link_url: str
    elapsed_ms: float


def _prototype(fields: dict[str, Any]) -> SourceAccountV2Prototype:
    routing = fields["routingInfo"]
    return SourceAccountV2Prototype(
        id=fields["id"],
        account_name=fields["accountName"],
        account_type=fields["accountType"],
        account_number=fields["accountNumber"],
        routing_info=RoutingInfo(bank_code=routing["bankCode"], type=routing["type"]),
        currency=fields["currency"],
        balance=fields["balance"],
    )


class SdkJourney:
    """One SDK client for the whole run, as an application would hold it."""

    def __init__(self, base_url: str, api_key: str) -> None:
        auth = "Basic " + base64.b64encode(api_key.encode()).decode()
        # No retries: none happen on the happy path, and a bench must fail rather than retry
        # for the SDK's default hour when the sandbox is gone.
        self.sdk = CodatBankFeeds(
            security=shared.Security(auth_header=auth),
            server_url=base_url,
            retry_config=RetryConfig("none"),
        )

    def run(self, company_name: str, accounts: list[dict[str, Any]]) -> JourneyResult:
        prototypes = [_prototype(a) for a in accounts]  # the host app's data, ready before
        started = time.perf_counter()
        company = self.sdk.companies.create(
            request={"name": company_name, "description": "Bank feeds (SDK baseline)"}
        )
        connection = self.sdk.connections.create(
            request={"company_id": company.id, "request_body": {"platform_key": PLATFORM_KEY}}
        )
        for prototype in prototypes:
            self.sdk.source_accounts.create(
                request={
                    "company_id": company.id,
                    "connection_id": connection.id,
                    "request_body": prototype,
                }
            )
        linked = self.sdk.connections.get(
            request={"company_id": company.id, "connection_id": connection.id}
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not linked.link_url:
            raise RuntimeError("the SDK journey ended without a Link URL")
        return JourneyResult(linked.link_url, elapsed_ms)

    async def run_async(self, company_name: str, accounts: list[dict[str, Any]]) -> JourneyResult:
        return await in_daemon_thread(self.run, company_name, accounts)

    def close(self) -> None:
        self.sdk.__exit__(None, None, None)


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Like `asyncio.to_thread`, but an interrupted run never waits for the thread at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="sdk-baseline", daemon=True).start()
    return await future

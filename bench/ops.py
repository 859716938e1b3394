"""Operations staff: status pages over a populated database, and the bulk import."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from typing import Any

from bench.load import closed_loop
from bench.seed import account_fields, count_rows, seed_ops_population
from bench.stack import BenchFailure, Stack
from bench.stats import summarize

IMPORT_FORMATS = ("json", "csv")


class OpsApiMissing(RuntimeError):
    """The ops API is not mounted in this build; its scenarios are reported as not measured."""


async def require_ops_api(stack: Stack) -> None:
    response = await stack.http.get(
        "/ops/bank-feeds", params={"limit": 1}, headers=stack.ops_headers
    )
    if response.status_code == 404:
        raise OpsApiMissing("GET /ops/bank-feeds answers 404: the ops routes are not mounted")
    response.raise_for_status()


async def ops_status(stack: Stack) -> dict[str, Any]:
    """Walk `GET /ops/bank-feeds?limit=100` page by page, and read single customers."""
    config = stack.config
    started = time.perf_counter()
    population = await seed_ops_population(
        stack.db_dsn,
        config.ops_customers,
        config.ops_accounts_per_customer,
        config.ops_feed_share,
    )
    seed_seconds = time.perf_counter() - started
    rows = await count_rows(stack.db_dsn)
    headers = stack.ops_headers
    cursor: list[str | None] = [None]
    first_page_total: list[int] = []

    async def page(_worker: int, _index: int) -> str:
        params: dict[str, Any] = {"limit": 100}
        if cursor[0]:
            params["cursor"] = cursor[0]
        response = await stack.http.get("/ops/bank-feeds", params=params, headers=headers)
        if response.status_code != 200:
            return f"http {response.status_code}"
        body = response.json()
        if len(body["items"]) != 100 and body["next_cursor"] is not None:
            return "short page"
        if cursor[0] is None:
            first_page_total.append(body["summary"]["total_customers"])
        cursor[0] = body["next_cursor"]  # from the last page, start over
        return "ok"

    rng = random.Random(11)
    picks = [rng.choice(population.customer_ids) for _ in range(config.ops_requests)]

    async def customer(_worker: int, index: int) -> str:
        path = f"/ops/customers/{picks[index % len(picks)]}/bank-feed"
        response = await stack.http.get(path, headers=headers)
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    async with stack.rss.track("ops_status"):
        await closed_loop(page, 1, duration_s=5.0, max_requests=5)  # warm-up
        cursor[0] = None
        pages, pages_cpu = await stack.measure(page, 1, config.ops_seconds, config.ops_requests)
        await closed_loop(customer, 1, duration_s=5.0, max_requests=5)
        customers, customers_cpu = await stack.measure(
            customer, 1, config.ops_seconds, config.ops_requests
        )
    stack.check_alive()
    return {
        "database": rows,
        "customers_with_bank_feed": len(population.with_feed),
        "seed_seconds": round(seed_seconds, 2),
        "page_total_customers": first_page_total[-1] if first_page_total else None,
        "bank_feeds_page": {
            "latency_ms": summarize(pages.latencies_ms),
            "errors": dict(pages.errors),
            "cpu": pages_cpu,
        },
        "customer_bank_feed": {
            "latency_ms": summarize(customers.latencies_ms),
            "errors": dict(customers.errors),
            "cpu": customers_cpu,
        },
    }


def import_rows(prefix: str, accounts: int, per_customer: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(accounts):
        customer = n // per_customer
        fields = account_fields(n % per_customer)
        rows.append(
            {
                "customer_id": f"{prefix}-{customer:06d}",
                "name": f"Imported business {customer}",
                "country": "US" if customer % 4 else "CA",
                "locale": "en" if customer % 5 else "fr",
                "account_id": fields["id"],
                "accountName": fields["accountName"],
                "accountType": fields["accountType"],
                "accountNumber": fields["accountNumber"],
                "currency": fields["currency"],
                "balance": str(fields["balance"]),
                "routingInfo.bankCode": fields["routingInfo"]["bankCode"],
                "routingInfo.type": fields["routingInfo"]["type"],
            }
        )
    return rows


def encode(rows: list[dict[str, Any]], fmt: str) -> tuple[bytes, str]:
    if fmt == "json":
        return json.dumps(rows).encode(), "application/json"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(), "text/csv"


async def bulk_import(stack: Stack) -> dict[str, Any]:
    """`POST /ops/customers:import` of new customers' accounts, once as JSON and once as CSV."""
    config = stack.config
    results: dict[str, Any] = {}
    async with stack.rss.track("bulk_import"):
        for fmt in IMPORT_FORMATS:
            rows = import_rows(
                f"imp-{fmt}", config.import_accounts, config.import_accounts_per_customer
            )
            body, content_type = encode(rows, fmt)
            started = time.perf_counter()
            response = await stack.http.post(
                "/ops/customers:import",
                content=body,
                headers={**stack.ops_headers, "Content-Type": content_type},
                timeout=config.import_timeout_seconds,
            )
            seconds = time.perf_counter() - started
            if response.status_code != 200:
                raise BenchFailure(
                    f"import ({fmt}) answered {response.status_code}: {response.text[:500]}"
                )
            answer = response.json()
            created = answer["accounts"]["created"]
            if created != config.import_accounts:
                raise BenchFailure(
                    f"import ({fmt}) created {created} accounts, not {config.import_accounts}"
                )
            results[fmt] = {
                "seconds": round(seconds, 3),
                "accounts": created,
                "customers": answer["customers"]["created"],
                "body_bytes": len(body),
                "accounts_per_second": round(created / seconds, 1),
            }
    stack.check_alive()
    return results

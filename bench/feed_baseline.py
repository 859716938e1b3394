"""The push baseline: the loop Codat's bank-feeds guide writes with its SDK (`codat-bankfeeds`).

One account after another: create the account's bank transactions (up to 1,000 per call), then
read the push operation until it is no longer Pending, before the next account. Synchronous,
as the SDK is; the harness runs it in a worker thread.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import date

from codat_bankfeeds import CodatBankFeeds
from codat_bankfeeds.models import shared
from codat_bankfeeds.utils.retries import RetryConfig

from bench.feed_data import MAX_PER_PUSH, Transaction, transactions

POLL_SECONDS = 0.25  # between reads of a Pending push operation


@dataclass(frozen=True)
class SdkAccount:
    company_id: str
    connection_id: str
    account_id: str
    prefix: str


@dataclass
class SdkPushResult:
    accounts: int = 0
    transactions: int = 0
    creates: int = 0
    polls: int = 0
    failed: int = 0
    seconds: float = 0.0
    create_ms: list[float] | None = None


def _bank_transaction(t: Transaction) -> shared.BankTransactions:
    return shared.BankTransactions(
        id=t.id,
        date=t.date.isoformat(),
        description=t.description,
        amount=t.amount,
        balance=t.balance,
        transactionType=shared.BankTransactionType(t.transaction_type),
    )


def push_one_by_one(
    base_url: str,
    api_key: str,
    accounts: list[SdkAccount],
    per_account: int,
    first: date,
    last: date,
) -> SdkPushResult:
    auth = "Basic " + base64.b64encode(api_key.encode()).decode()
    sdk = CodatBankFeeds(
        security=shared.Security(auth_header=auth),
        server_url=base_url,
        retry_config=RetryConfig("none"),
    )
    result = SdkPushResult(create_ms=[])
    started = time.perf_counter()
    try:
        for account in accounts:
            items = [_bank_transaction(t) for t in transactions(account.prefix, per_account,
                                                                 first, last)]  # fmt: skip
            for start in range(0, len(items), MAX_PER_PUSH):
                chunk = items[start : start + MAX_PER_PUSH]
                sent = time.perf_counter()
                created = sdk.transactions.create(
                    request={
                        "company_id": account.company_id,
                        "connection_id": account.connection_id,
                        "account_id": account.account_id,
                        "create_bank_transactions": {
                            "account_id": account.account_id,
                            "transactions": chunk,
                        },
                    }
                )
                result.create_ms.append((time.perf_counter() - sent) * 1000)  # type: ignore[union-attr]
                result.creates += 1
                status = created.status
                while status == shared.PushOperationStatus.PENDING:
                    time.sleep(POLL_SECONDS)
                    operation = sdk.transactions.get_create_operation(
                        request={
                            "company_id": account.company_id,
                            "push_operation_key": created.push_operation_key,
                        }
                    )
                    result.polls += 1
                    status = operation.status
                if status != shared.PushOperationStatus.SUCCESS:
                    result.failed += 1
                result.transactions += len(chunk)
            result.accounts += 1
    finally:
        result.seconds = time.perf_counter() - started
        sdk.__exit__(None, None, None)
    return result

"""Codat's JSON shapes for the sandbox's state: companies, connections, source accounts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from app.sandbox.state import (
    BankTransaction,
    Company,
    Connection,
    PushOperation,
    PushStatus,
    SourceAccount,
)

Json = dict[str, object]


def format_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_date(day: date) -> str:
    return day.isoformat()


def json_number(amount: Decimal) -> int | float:
    """A JSON number for a money amount; integral amounts stay integers."""
    if amount == amount.to_integral_value():
        return int(amount)
    return float(amount)


def company_json(company: Company, base_url: str, connections: list[Json]) -> Json:
    return {
        "id": company.id,
        "name": company.name,
        "description": company.description,
        "redirect": f"{base_url}/link/company/{company.id}",
        "lastSync": None,
        "created": format_datetime(company.created),
        "createdByUserName": None,
        "products": [],
        "tags": dict(company.tags),
        "referenceSubsidiaryCompanies": [],
        "dataConnections": connections,
    }


def company_details_json(company: Company, base_url: str) -> Json:
    """Codat's `companyDetails`: the payload of `company.*` webhooks."""
    details = company_json(company, base_url, [])
    del details["dataConnections"]
    return details


def company_reference_json(company: Company, base_url: str) -> Json:
    return {
        "id": company.id,
        "name": company.name,
        "description": company.description,
        "links": {"portal": f"{base_url}/companies/{company.id}"},
        "tags": dict(company.tags),
    }


def connection_json(connection: Connection, link_url: str) -> Json:
    # Connection is `additionalProperties: false` in the spec: nothing beyond these keys.
    return {
        "id": connection.id,
        "integrationId": connection.integration.integration_id,
        "integrationKey": connection.integration.key,
        "sourceId": connection.integration.source_id,
        "sourceType": connection.integration.source_type,
        "platformName": connection.integration.name,
        "linkUrl": link_url,
        "status": connection.status.value,
        "lastSync": None,
        "created": format_datetime(connection.created),
        "dataConnectionErrors": None,
        "connectionInfo": None,
    }


def _source_account_fields(account: SourceAccount) -> Json:
    """The fields v1 and v2 source accounts share."""
    return {
        "id": account.id,
        "accountName": account.account_name,
        "accountType": account.account_type,
        "accountNumber": account.account_number,
        "sortCode": account.sort_code,
        "currency": account.currency,
        "balance": json_number(account.balance),
        "modifiedDate": format_datetime(account.modified_date),
        "status": account.status.value,
    }


def source_account_v2_json(account: SourceAccount) -> Json:
    body = _source_account_fields(account)
    start = account.feed_start_date
    body["feedStartDate"] = format_date(start) if start else None
    if account.routing_info is not None:
        body["routingInfo"] = dict(account.routing_info)
    body["accountInfo"] = _account_info_json(account.account_info)
    return body


def _account_info_json(info: dict[str, object] | None) -> Json | None:
    if info is None:
        return None
    available = info.get("availableBalance")
    if isinstance(available, Decimal):
        return {**info, "availableBalance": json_number(available)}
    return dict(info)


def source_account_v1_json(account: SourceAccount) -> Json:
    """The v1 `SourceAccount` shape, which Update source account answers with."""
    body = _source_account_fields(account)
    start = account.feed_start_date
    # v1 types feedStartDate as a DateTime where v2 has a Date.
    body["feedStartDate"] = f"{format_date(start)}T00:00:00Z" if start else None
    return body


def push_operation_json(push: PushOperation) -> Json:
    """Codat's `PushOperation` for a create-bank-transactions write (no `data`, since 2024)."""
    body: Json = {
        "changes": None,
        "dataType": "bankTransactions",
        "companyId": push.company_id,
        "pushOperationKey": push.key,
        "dataConnectionKey": push.connection_id,
        "requestedOnUtc": format_datetime(push.requested),
        "timeoutInMinutes": push.timeout_minutes,
        "status": push.status.value,
        "errorMessage": push.error_message,
        "validation": {
            "errors": [
                {"itemId": e.item_id, "message": e.message, "validatorName": e.validator}
                for e in push.errors
            ],
            "warnings": [],
        },
        "statusCode": push.status_code,
    }
    if push.completed is not None:  # the spec does not allow null; Codat leaves it out
        body["completedOnUtc"] = format_datetime(push.completed)
    if push.status is PushStatus.SUCCESS:
        body["changes"] = [
            {
                "type": "Created",
                "recordRef": {"id": push.account_id, "dataType": "bankTransactions"},
                "attachmentId": None,
            }
        ]
    return body


def write_webhook_payload(push: PushOperation, reference_company: Json) -> Json:
    """`DataTypeWriteWebhook`'s payload for a settled write."""
    return {
        "id": push.key,
        "type": "Create",
        "referenceCompany": reference_company,
        "connectionId": push.connection_id,
        "requestedOnDate": format_datetime(push.requested),
        "completedOnDate": format_datetime(push.completed or push.requested),
        "status": push.status.value,
        "record": {"id": push.account_id} if push.status is PushStatus.SUCCESS else None,
        "attachmentId": None,
    }


def _exact(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def bank_transaction_json(transaction: BankTransaction) -> Json:
    """A transaction as the sandbox holds it, amounts as exact decimal strings."""
    moment = transaction.date
    return {
        "id": transaction.id,
        "date": moment.isoformat() if moment else None,
        "description": transaction.description,
        "amount": _exact(transaction.amount),
        "balance": _exact(transaction.balance),
        "transactionType": transaction.transaction_type,
        "counterparty": transaction.counterparty,
        "reference": transaction.reference,
    }


def ledger_json(company_id: str, connection_id: str, account: SourceAccount) -> Json:
    """The sandbox's ledger of one account (admin API, not Codat's)."""
    return {
        "companyId": company_id,
        "connectionId": connection_id,
        "accountId": account.id,
        "status": account.status.value,
        "balance": str(account.balance),
        "mostOpenWrites": account.most_open_writes,
        "received": [
            {
                "id": transaction_id,
                "received": entry.received,
                "writtenBy": entry.written_by,
                "transaction": bank_transaction_json(entry.transaction),
            }
            for transaction_id, entry in account.ledger.items()
        ],
        "written": [
            {
                **bank_transaction_json(w.transaction),
                "pushOperationKey": w.push_key,
                "writtenAt": format_datetime(w.written_at),
            }
            for w in account.written
        ],
    }

"""Codat's create-bank-transactions endpoint and its push operations (get one, list them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.sandbox.bank_transactions import create_bank_transactions
from app.sandbox.emulator import sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.faults import FaultInjector
from app.sandbox.paging import MAX_QUERY_LENGTH, paged
from app.sandbox.state import PushOperation
from app.sandbox.validation import parse_json
from app.sandbox.wire import format_datetime, push_operation_json

router = APIRouter()

COMPANY = "/companies/{companyId}"
CREATE = COMPANY + "/connections/{connectionId}/push/bankAccounts/{accountId}/bankTransactions"
MAX_TIMEOUT_MINUTES = 2**31 - 1
PUSH_ORDER: Mapping[str, Callable[[PushOperation], str]] = {
    "requestedOnUtc": lambda p: f"{p.requested.isoformat()}{p.number:09d}",
    "completedOnUtc": lambda p: p.completed.isoformat() if p.completed else "",
    "status": lambda p: p.status.value,
}
# The fields a push history `query` can test, with Codat's `=`, `!=`, `>`, `<`, `>=`, `<=`.
QUERY_FIELDS: Mapping[str, Callable[[PushOperation], str]] = {
    "pushOperationKey": lambda p: p.key,
    "dataConnectionKey": lambda p: p.connection_id,
    "dataType": lambda p: "bankTransactions",
    "status": lambda p: p.status.value,
    "requestedOnUtc": lambda p: format_datetime(p.requested),
}
_CLAUSE = re.compile(r"^\s*([A-Za-z]+)\s*(!=|>=|<=|=|>|<)\s*(.+?)\s*$")


@router.post(CREATE)
async def create(request: Request) -> JSONResponse:
    sandbox = sandbox_of(request)
    params = request.path_params
    timeout = _timeout_minutes(request.query_params.get("timeoutInMinutes"))
    _boolean(request.query_params.get("allowSyncOnPushComplete"), "allowSyncOnPushComplete")
    sandbox.store.connection(params["companyId"], params["connectionId"])
    body = create_bank_transactions(parse_json(await request.body()), params["accountId"])
    faults: FaultInjector = request.app.state.faults
    times_out = faults.push_times_out()
    push = sandbox.writes.create(
        params["companyId"],
        params["connectionId"],
        body.account_id,
        body.transactions,
        timeout,
        times_out=times_out,
        lands=not times_out or faults.push_timeout_lands(),
    )
    return JSONResponse(push_operation_json(push))


@router.get(COMPANY + "/push/{pushOperationKey}")
async def get_push(request: Request) -> JSONResponse:
    push = sandbox_of(request).writes.push(
        request.path_params["companyId"], request.path_params["pushOperationKey"]
    )
    return JSONResponse(push_operation_json(push))


@router.get(COMPANY + "/push")
async def list_pushes(request: Request) -> JSONResponse:
    company = sandbox_of(request).store.company(request.path_params["companyId"])
    matches = _query(request.query_params.get("query"))
    pushes = [p for p in company.pushes.values() if all(m(p) for m in matches)]
    path = f"/companies/{company.id}/push"
    return JSONResponse(paged(pushes, request.query_params, path, push_operation_json, PUSH_ORDER))


def _timeout_minutes(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        minutes = int(raw)
    except ValueError:
        raise CodatError(400, "'timeoutInMinutes' must be an integer.") from None
    if not 1 <= minutes <= MAX_TIMEOUT_MINUTES:
        raise CodatError(400, "'timeoutInMinutes' must be a positive number of minutes.")
    return minutes


def _boolean(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise CodatError(400, f"'{name}' must be true or false.")
    return raw.lower() == "true"


def _query(expression: str | None) -> list[Callable[[PushOperation], bool]]:
    """Codat's query language, as far as push history needs it: clauses joined by `&&`."""
    if not expression:
        return []
    if len(expression) >= MAX_QUERY_LENGTH:
        raise CodatError(400, f"The query must be shorter than {MAX_QUERY_LENGTH} characters.")
    tests: list[Callable[[PushOperation], bool]] = []
    for clause in expression.split("&&"):
        match = _CLAUSE.match(clause)
        if match is None or match.group(1) not in QUERY_FIELDS:
            raise CodatError(400, f"Malformed query near '{clause.strip()}'.")
        name, operator, value = match.groups()
        tests.append(_test(QUERY_FIELDS[name], operator, value.strip("\"'")))
    return tests


def _test(
    read: Callable[[PushOperation], str], operator: str, value: str
) -> Callable[[PushOperation], bool]:
    compare: dict[str, Callable[[str, str], bool]] = {
        "=": lambda a, b: a.lower() == b.lower(),
        "!=": lambda a, b: a.lower() != b.lower(),
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
    }
    check = compare[operator]
    return lambda push: check(read(push), value)

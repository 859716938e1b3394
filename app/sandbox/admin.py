"""Routes for tests in another process: the call log, state, clock, webhooks and faults.

Not part of Codat's surface; they sit under `/_sandbox/` behind the same API key.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.sandbox.emulator import sandbox_of
from app.sandbox.errors import CodatError
from app.sandbox.faults import FaultConfig, FaultInjector
from app.sandbox.validation import parse_json
from app.sandbox.wire import ledger_json

router = APIRouter(prefix="/_sandbox")


@router.get("/calls")
async def list_calls(request: Request) -> JSONResponse:
    return JSONResponse(
        [
            {
                "method": call.method,
                "path": call.path,
                "route": call.route,
                "status": call.status,
                "at": call.at.isoformat(),
                "fault": call.fault,
                "idempotency": call.idempotency,
            }
            for call in sandbox_of(request).calls
        ]
    )


@router.delete("/calls")
async def reset_calls(request: Request) -> Response:
    sandbox_of(request).reset_calls()
    return Response(status_code=204)


@router.get("/state")
async def state(request: Request) -> JSONResponse:
    return JSONResponse(sandbox_of(request).store.snapshot())


@router.get("/webhooks")
async def webhook_deliveries(request: Request) -> JSONResponse:
    return JSONResponse([d.summary() for d in sandbox_of(request).webhooks.deliveries])


@router.post("/clock/advance")
async def advance_clock(request: Request) -> JSONResponse:
    body = parse_json(await request.body())
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | Decimal) or seconds < 0:
        raise CodatError(400, 'Send {"seconds": n} with n a number of seconds, at least 0.')
    sandbox = sandbox_of(request)
    now = sandbox.clock.advance(timedelta(seconds=float(seconds)))
    sandbox.settle()
    return JSONResponse({"now": now.isoformat()})


@router.get("/ledger")
async def ledger(request: Request) -> JSONResponse:
    """Every bank transaction id each account was sent, how often, and which write took it.

    `?companyId=` and `?accountId=` narrow it down.
    """
    wanted_company = request.query_params.get("companyId")
    wanted_account = request.query_params.get("accountId")
    accounts = [
        ledger_json(company.id, connection.id, account)
        for company in sandbox_of(request).store.companies.values()
        if wanted_company in (None, company.id)
        for connection in company.connections.values()
        for account in connection.source_accounts.values()
        if wanted_account in (None, account.id)
    ]
    return JSONResponse({"accounts": accounts})


@router.post("/writes/settle")
async def settle_writes(request: Request) -> JSONResponse:
    """Settle every Pending bank transaction write now, whatever its delay."""
    sandbox = sandbox_of(request)
    pending = sandbox.writes.pending
    sandbox.settle(all_writes=True)
    return JSONResponse({"settled": pending - sandbox.writes.pending})


@router.get("/faults")
async def get_faults(request: Request) -> JSONResponse:
    return JSONResponse(_faults(request).config.to_json())


@router.put("/faults")
async def put_faults(request: Request) -> JSONResponse:
    """Replace the fault configuration (`{}` switches every fault off) and restart its seed."""
    try:
        config = FaultConfig.from_json(json.loads(await request.body() or b"{}"))
    except (ValueError, TypeError) as exc:
        raise CodatError(400, f"Invalid fault configuration: {exc}") from None
    _faults(request).configure(config)
    return JSONResponse(config.to_json())


def _faults(request: Request) -> FaultInjector:
    faults: FaultInjector = request.app.state.faults
    return faults

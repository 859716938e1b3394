"""Named points where a crash trial stops a process dead: the connect flow's (in the service)
and the transaction push's (in whichever process pushes).

`BANKFEEDS_KILL_AT=<stage>` in a process's environment arms one point: the first time the
process passes it, it SIGKILLs itself (no `finally`, no shutdown, nothing more written).
Unarmed, which is always so outside crash trials, passing a point is one comparison with None.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

ENV = "BANKFEEDS_KILL_AT"

# The click's stages, in the order a first click passes them.
CLICK_STAGES = (
    "company requested",  # the attempt is recorded; the create is not sent yet
    "company created",  # Codat created it; its id is not stored yet
    "company stored",  # its id is committed; no connection asked for yet
    "connection requested",
    "connection created",
    "connection stored",
    "accounts created",  # Codat holds the accounts; they are not marked pushed yet
    "committed",  # everything committed and the lease released; no answer sent yet
)

# A transaction push's stages, in the order a push passes them.
PUSH_STAGES = (
    "push recording",  # the batch is marked and the push flushed; nothing committed yet
    "push recorded",  # the push, its body and Idempotency-Key committed; Codat not called yet
    "push in flight",  # the request is sent whole; Codat's answer not read yet
    "push answered",  # Codat answered; its pushOperationKey is not stored yet
    "push settling",  # Codat's Success applied to the push and its rows; not committed yet
)
STAGES = CLICK_STAGES + PUSH_STAGES

# How long an armed in-flight point lets the call wait on its answer before it kills: enough
# for Codat to hold the whole request on loopback, so the kill lands while Codat works on it.
IN_FLIGHT_SECONDS = 0.05

_armed = os.environ.get(ENV) or None
if _armed is not None and _armed not in STAGES:
    raise ValueError(f"{ENV}={_armed!r} is not a stage: {', '.join(STAGES)}")


def reached(stage: str) -> None:
    """The flow has reached `stage`: if it is the armed one, die here."""
    if stage == _armed:
        os.kill(os.getpid(), signal.SIGKILL)


def in_flight(stage: str) -> dict[str, Any]:
    """httpx request extensions for a call whose `stage` is "sent, not yet answered": none
    unless armed there; armed, the process dies while the call waits on Codat's answer."""
    if stage != _armed:
        return {}

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("receive_response_headers.started"):  # the request is sent whole
            await asyncio.sleep(IN_FLIGHT_SECONDS)
            reached(stage)

    return {"trace": trace}

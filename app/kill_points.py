"""Named points in the connect flow where a crash trial stops the service process dead.

`BANKFEEDS_KILL_AT=<stage>` in a service process's environment arms one point: the first click
to pass it SIGKILLs the process (no `finally`, no shutdown, nothing more written). Unarmed, which
is always so outside crash trials, passing a point is one comparison with None.
"""

from __future__ import annotations

import os
import signal

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

_armed = os.environ.get(ENV) or None
if _armed is not None and _armed not in CLICK_STAGES:
    raise ValueError(f"{ENV}={_armed!r} is not a stage: {', '.join(CLICK_STAGES)}")


def reached(stage: str) -> None:
    """The flow has reached `stage`: if it is the armed one, die here."""
    if stage == _armed:
        os.kill(os.getpid(), signal.SIGKILL)

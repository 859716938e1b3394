"""What the demo host app has received of our events, kept in memory for its page."""

from __future__ import annotations

from collections import deque
from typing import Any

KEPT = 50


class DemoInbox:
    """The events received, newest last; each event once, however often it is delivered."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=KEPT)

    def add(self, event: dict[str, Any]) -> bool:
        if any(e["id"] == event["id"] for e in self.events):
            return False
        self.events.append(event)
        return True

"""The feed fixture: cus-1 linked in QuickBooks, a scripted Codat, the service and push job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.transactions.support import Feed, build_feed, linked_customer


@pytest.fixture
async def feed(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Feed]:
    await linked_customer(sessions)
    built = build_feed(sessions)
    yield built
    await built.job.codat.aclose()

"""The in-process transport to the built-in sandbox keeps the client's read timeout, as a
socket does: the client gives up on time, and the app goes on with the request."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.codat.client import InProcess


def held_app(release: asyncio.Event, finished: list[str]) -> object:
    """Answers only once `release` is set: until then, no answer can exist."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await release.wait()
        finished.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    return app


async def test_the_client_timeout_ends_the_wait_and_the_app_works_on() -> None:
    release, finished = asyncio.Event(), []
    transport = InProcess(held_app(release, finished))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        with pytest.raises(httpx.ReadTimeout):
            # The answer cannot come before `release` is set, and nothing sets it meanwhile.
            await client.get("/held", timeout=httpx.Timeout(5, read=0.2))
        assert not release.is_set() and finished == []
        assert len(transport.abandoned) == 1
        release.set()
        await asyncio.wait_for(asyncio.gather(*transport.abandoned), 10)
        assert finished == ["/held"]  # the server finished what the client gave up on


async def test_an_answer_in_time_is_returned() -> None:
    release, finished = asyncio.Event(), []
    release.set()
    async with httpx.AsyncClient(
        transport=InProcess(held_app(release, finished)), base_url="http://sandbox"
    ) as client:
        answer = await client.get("/quick", timeout=5)
    assert (answer.status_code, answer.text, finished) == (200, "late", ["/quick"])


async def test_closing_the_client_stops_what_is_still_held() -> None:
    release, finished = asyncio.Event(), []
    transport = InProcess(held_app(release, finished))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/held", timeout=httpx.Timeout(5, read=0.1))
    assert transport.abandoned == set() and finished == []

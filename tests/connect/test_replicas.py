"""Two service processes on one Postgres, clicking for the same customer at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.connect.tokens import mint_connect_token
from tests.conftest import CONNECT_SECRET, _truncate
from tests.factories import add_customer
from tests.servers import against_sandbox, run_sandbox_process, run_service, sandbox_headers


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_concurrent_clicks_across_two_processes_create_one_of_everything(
    database_url: str,
    sessions: object,
    tmp_path: Path,
) -> None:
    await add_customer(sessions, "cus-replica", accounts=5)  # type: ignore[arg-type]
    with run_sandbox_process(tmp_path) as sandbox:
        env = against_sandbox(sandbox)
        with (
            run_service(database_url, tmp_path, **env) as one,
            run_service(database_url, tmp_path, **env) as two,
        ):
            async with httpx.AsyncClient(timeout=30) as client:

                async def click(base: str) -> httpx.Response:
                    token = mint_connect_token(CONNECT_SECRET, "cus-replica")
                    return await client.get(base + "/connect-bank-feeds", params={"token": token})

                responses = await asyncio.gather(
                    *(click(one.url if n % 2 else two.url) for n in range(20))
                )
                assert [r.status_code for r in responses] == [302] * 20
                for response in responses[:3]:  # each link works on the sandbox's Link page
                    page = await client.get(response.headers["location"])
                    assert page.status_code == 200
                state = (
                    await client.get(sandbox.url + "/_sandbox/state", headers=sandbox_headers())
                ).json()
                calls = (
                    await client.get(sandbox.url + "/_sandbox/calls", headers=sandbox_headers())
                ).json()
    companies = state["companies"]
    assert len(companies) == 1
    connections = companies[0]["connections"]
    assert len(connections) == 1
    assert sorted(a["id"] for a in connections[0]["sourceAccounts"]) == [
        f"cus-replica-acc-{n}" for n in range(5)
    ]
    posts = Counter(c["route"] for c in calls if c["method"] == "POST")
    assert all(count == 1 for count in posts.values()), posts
    await _truncate(database_url)

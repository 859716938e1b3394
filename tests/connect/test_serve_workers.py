"""`bankfeeds serve --workers N`: N processes on one port, clicks still make one of everything."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.cli import cpu_cores, serve_workers
from app.connect.tokens import mint_connect_token
from app.settings import ConfigurationError, Settings
from tests.conftest import CONNECT_SECRET, _truncate
from tests.factories import add_customer
from tests.servers import against_sandbox, run_sandbox_process, run_service, sandbox_headers

POSTGRES = "postgresql+asyncpg://u:p@db/bankfeeds"
SQLITE = "sqlite+aiosqlite:///./var/bankfeeds.db"
KEY = SecretStr("k3y-real-codat-api-key-0123456789")


def settings(**overrides: object) -> Settings:
    return Settings.model_construct(**{**Settings().model_dump(), **overrides})


def test_one_process_per_core_by_default_on_postgres_with_codat() -> None:
    assert serve_workers(settings(database_url=POSTGRES, codat_api_key=KEY), None) == cpu_cores()


@pytest.mark.parametrize(
    "overrides",
    [
        {"database_url": SQLITE, "codat_api_key": KEY},
        {"database_url": POSTGRES, "codat_api_key": None},
    ],
)
def test_one_process_by_default_with_sqlite_or_the_builtin_sandbox(
    overrides: dict[str, object],
) -> None:
    assert serve_workers(settings(**overrides), None) == 1
    assert serve_workers(settings(**overrides), 1) == 1


@pytest.mark.parametrize(
    ("overrides", "requested", "expected"),
    [
        ({"database_url": POSTGRES, "codat_api_key": None}, 2, "built-in Codat sandbox"),
        ({"database_url": SQLITE, "codat_api_key": KEY}, 3, "needs Postgres"),
        ({"database_url": POSTGRES, "codat_api_key": KEY}, 0, "at least 1"),
    ],
)
def test_workers_that_could_not_work_are_refused(
    overrides: dict[str, object], requested: int, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        serve_workers(settings(**overrides), requested)


def test_asked_for_workers_are_given() -> None:
    assert serve_workers(settings(database_url=POSTGRES, codat_api_key=KEY), 3) == 3


def _workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_share_the_port_and_clicks_make_one_of_everything(
    database_url: str,
    sessions: object,
    tmp_path: Path,
) -> None:
    await add_customer(sessions, "cus-workers", accounts=3)  # type: ignore[arg-type]
    await add_customer(sessions, "cus-workers-2", accounts=1)  # type: ignore[arg-type]
    with run_sandbox_process(tmp_path) as sandbox:
        env = against_sandbox(sandbox)
        with run_service(database_url, tmp_path, workers=2, **env) as service:
            workers = _workers(service.proc.pid)
            async with httpx.AsyncClient(timeout=30) as client:

                async def click(customer_id: str) -> httpx.Response:
                    token = mint_connect_token(CONNECT_SECRET, customer_id)
                    # A new connection each time: the kernel spreads them over the workers.
                    async with httpx.AsyncClient(timeout=30) as browser:
                        return await browser.get(
                            service.url + "/connect-bank-feeds", params={"token": token}
                        )

                responses = await asyncio.gather(
                    *(click("cus-workers" if n % 3 else "cus-workers-2") for n in range(18))
                )
                state = (
                    await client.get(sandbox.url + "/_sandbox/state", headers=sandbox_headers())
                ).json()
                calls = (
                    await client.get(sandbox.url + "/_sandbox/calls", headers=sandbox_headers())
                ).json()
    assert len(workers) == 2
    assert [r.status_code for r in responses] == [302] * 18
    assert all(r.headers["location"].startswith(sandbox.url + "/link/") for r in responses)
    assert len(state["companies"]) == 2
    assert all(len(c["connections"]) == 1 for c in state["companies"])
    posts = Counter(c["path"] for c in calls if c["method"] == "POST")
    assert posts.pop("/companies") == 2  # one per customer
    assert all(count == 1 for count in posts.values()), posts
    await _truncate(database_url)

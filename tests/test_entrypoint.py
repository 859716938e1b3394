"""The container's entrypoint, run here as the image runs it: production settings, Postgres,
`migrate` as a one-shot step, then `serve` answering its health check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET
from tests.servers import (
    SANDBOX_KEY,
    free_port,
    run_sandbox_process,
    sandbox_headers,
    wait_healthy,
)

ENTRYPOINT = Path(__file__).resolve().parents[1] / "docker" / "entrypoint.sh"


def production_env(database_url: str, codat_url: str, port: int) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `bankfeeds` is, as on the image's PATH
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": "/tmp",
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "CODAT_API_KEY": SANDBOX_KEY,
        "CODAT_BASE_URL": codat_url,
        "CODAT_LINK_HOSTS": "127.0.0.1",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CONNECT_TOKEN_SECRET": CONNECT_SECRET,
        "OPS_API_TOKEN": OPS_TOKEN,
        "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PORT": str(port),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }


def test_entrypoint_migrates_then_serves_in_production(tmp_path: Path) -> None:
    from tests.conftest import _drop_postgres_db, _make_postgres_db, _postgres_reachable

    if not _postgres_reachable():
        if os.environ.get("TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("Postgres is not reachable")
        pytest.skip("Postgres is not reachable")
    database_url = _make_postgres_db()  # empty: the entrypoint's migrate step builds it
    port = free_port()
    try:
        with run_sandbox_process(tmp_path) as codat:
            env = production_env(database_url, codat.url, port)
            migrate = subprocess.run(
                ["sh", str(ENTRYPOINT), "migrate"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert migrate.returncode == 0, migrate.stderr
            assert "Database migrated to head." in migrate.stdout
            log = (tmp_path / "serve.log").open("wb")
            serve = subprocess.Popen(
                ["sh", str(ENTRYPOINT)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_healthy(f"http://127.0.0.1:{port}/healthz", serve)
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                assert ready.json() == {"status": "ok", "database": "ok", "sandbox_mode": False}
                # Production: no sandbox, no demo page; the ops API answers with its token.
                assert (
                    httpx.get(
                        f"http://127.0.0.1:{port}/sandbox/codat/_sandbox/calls",
                        headers=sandbox_headers(),
                    ).status_code
                    == 404
                )
                assert (
                    httpx.get(
                        f"http://127.0.0.1:{port}/", headers={"accept": "text/html"}
                    ).status_code
                    == 404
                )
                listed = httpx.get(
                    f"http://127.0.0.1:{port}/ops/bank-feeds",
                    headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                )
                assert listed.status_code == 200
            finally:
                serve.terminate()
                serve.wait(timeout=15)
                log.close()
        text = (tmp_path / "serve.log").read_text()
        assert "SANDBOX MODE" not in text
        for secret in (SANDBOX_KEY, CONNECT_SECRET, OPS_TOKEN, WEBHOOK_SECRET):
            assert secret not in text
    finally:
        _drop_postgres_db(database_url)


def test_entrypoint_refuses_production_without_secrets(tmp_path: Path) -> None:
    env = production_env("postgresql+asyncpg://postgres@127.0.0.1:5432/none", "http://x", 1)
    del env["OPS_API_TOKEN"]
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "bankfeeds: APP_ENV=production needs OPS_API_TOKEN: it is not set"
    )

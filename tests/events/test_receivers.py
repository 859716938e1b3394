"""The receivers in docs/integration.md, run as written against real deliveries: each verifies
the signature with its Standard Webhooks library, handles an event once, refuses a forgery."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Service
from tests.events.support import deliveries, register
from tests.servers import free_port
from tests.webhooks.support import at, connection_payload, deliver, envelope, seed_feed

DOC = ROOT / "docs" / "integration.md"
NODE_PACKAGES = ROOT / "var" / "node-receiver"  # npm install lands here once, then is reused
NPM_PACKAGE = "standardwebhooks@1"


def example(name: str) -> str:
    """The code block under `<!-- example: NAME -->` in the integration guide."""
    match = re.search(
        rf"<!-- example: {re.escape(name)} -->\s*```\w+\n(.*?)```", DOC.read_text(), re.S
    )
    assert match, f"no example {name} in {DOC}"
    return match.group(1)


def node_packages() -> Path:
    """A folder with the npm `standardwebhooks` package installed, for `node` to require."""
    if not (NODE_PACKAGES / "node_modules" / "standardwebhooks").is_dir():
        NODE_PACKAGES.mkdir(parents=True, exist_ok=True)
        (NODE_PACKAGES / "package.json").write_text('{"private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", NPM_PACKAGE],
            cwd=NODE_PACKAGES,
            check=True,
            timeout=180,
        )
    return NODE_PACKAGES


@contextmanager
def receiver(command: list[str], cwd: Path, secret: str, log: Path) -> Iterator[str]:
    """The example running on a free loopback port; yields its URL, stops it on exit. What it
    prints goes to `log`, its error output (request logs, say) beside it."""
    port = free_port()
    env = {**os.environ, "BANKFEEDS_EVENTS_SECRET": secret, "PORT": str(port)}
    errors = log.with_suffix(".err")
    with log.open("wb") as out, errors.open("wb") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, errors.read_text()
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def deliver_to(service: Service, command: list[str], cwd: Path, tmp_path: Path) -> list[str]:
    """Register the example as the endpoint, make events happen, deliver them (one twice),
    send a forgery; the lines the example printed."""
    await seed_feed(service.sessions)
    printed = tmp_path / "receiver.log"
    # The endpoint's URL is known only once the example listens: register it with a
    # placeholder port first, to get the secret the example needs to start.
    secret = await register(service, url="http://127.0.0.1:9/")
    with receiver(command, cwd, secret, printed) as url:
        updated = await service.client.put(
            "/ops/event-endpoints/host-app",
            json={"url": url, "event_types": ["customer.connected", "customer.needs_action"]},
            headers=service.ops_headers,
        )
        assert updated.status_code == 200
        response = await deliver(
            service.client, envelope("connection.connected", connection_payload("Linked"), at(1))
        )
        assert response.status_code == 202
        await service.services.inbox_worker().run_once()
        sender = service.services.event_worker()
        assert await sender.run_once() == 2
        first = (await deliveries(service.sessions))[0]
        again = await service.client.post(
            f"/ops/event-deliveries/{first.id}/redeliver", headers=service.ops_headers
        )
        assert again.status_code == 202
        assert await sender.run_once() == 1
        assert {d.status for d in await deliveries(service.sessions)} == {"delivered"}
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=b'{"id":"evt_x","type":"customer.connected","data":{"customer_id":"x"}}',
                headers={
                    "webhook-id": "evt_x",
                    "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
                },
            )
        assert forged.status_code == 400
    return printed.read_text().splitlines()


EXPECTED = ["customer.connected cus-1", "customer.needs_action cus-1"]


async def test_the_python_receiver(service: Service, tmp_path: Path) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(example("receiver.py"))
    lines = await deliver_to(service, [sys.executable, str(script)], tmp_path, tmp_path)
    assert lines == EXPECTED


async def test_the_node_receiver(service: Service, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    folder = node_packages()
    script = folder / f"receiver-{os.getpid()}-{tmp_path.name}.js"
    script.write_text(example("receiver.js"))
    try:
        lines = await deliver_to(service, ["node", str(script)], folder, tmp_path)
    finally:
        script.unlink()
    assert lines == EXPECTED

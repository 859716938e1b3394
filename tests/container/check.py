"""Build the image, run docker-compose.yml for real, and check the running containers.

`make test-container` runs this (see engine.py for the Docker engine and the base image). The
real docker-compose.yml runs with docker/compose.host.yml on top, which replaces only what
this machine cannot have, the postgres:16 image: `db` relays to a fresh database on the host's
Postgres. A Codat sandbox on the host stands in for Codat.

Checked against the running containers:
  1. migrations ran once;
  2. the service is healthy;
  3. a connect click answers 302, to the Codat sandbox's Link page;
  4. a restart of the app container loses nothing;
  5. the processes run as a non-root user;
  6. the image holds no tests, no .git, no dev dependencies and no secrets;
  7. the `worker` service is off by default, and runs with its profile.
One line per check, the image size, then `container: N passed, M failed`. It stops at the
first failed check, and on every way out removes the containers, the database, the sandbox
and the dockerd it started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import random
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx

from app.connect.tokens import mint_connect_token
from app.migrate import head_revision
from tests.container.engine import (
    Engine,
    EngineError,
    die_with_parent,
    engine,
    ensure_tools,
    python_base,
    run,
)
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ["docker-compose.yml", "docker/compose.host.yml"]
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CUSTOMER = "cus-container-1"
SECRETS = ("CODAT_API_KEY", "CONNECT_TOKEN_SECRET", "OPS_API_TOKEN", "CODAT_WEBHOOK_SECRET")
IMAGE_SRV = {".venv", "README.md", "alembic.ini", "app", "migrations", "pyproject.toml", "uv.lock"}


class CheckFailed(Exception):
    pass


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, name: str, condition: bool, detail: object = "") -> None:
        if not condition:
            self.fail(name, detail)
        self.passed += 1
        print(f"ok    {name}", flush=True)

    def fail(self, name: str, detail: object = "") -> NoReturn:
        self.failed += 1
        print(f"FAIL  {name}" + (f": {detail}" if detail != "" else ""), flush=True)
        raise CheckFailed(name)


def say(message: str) -> None:
    print(message, flush=True)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll `probe` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return value


# --- beside the containers: a database, a Codat sandbox ---------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the host's Postgres; dropped afterwards."""
    name = f"bankfeeds_container_{secrets.token_hex(5)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        raise EngineError(f"Postgres on 127.0.0.1:5432 is needed: {exc}") from exc
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        say(f"--- database {name} dropped")


def query(database: str, sql: str) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database, timeout=10)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


@dataclass
class Sandbox:
    url: str
    api_key: str

    def company_creations(self) -> int:
        auth = base64.b64encode(self.api_key.encode()).decode()
        calls = httpx.get(
            f"{self.url}/_sandbox/calls", headers={"Authorization": f"Basic {auth}"}, timeout=10
        ).raise_for_status()
        return sum(1 for c in calls.json() if c["method"] == "POST" and c["path"] == "/companies")


@contextlib.contextmanager
def codat_sandbox(workdir: Path, port: int, api_key: str) -> Iterator[Sandbox]:
    """`bankfeeds sandbox` from the project's .venv, as Codat. It listens on every address:
    the containers call it on their network's gateway, and its Link page is on 127.0.0.1
    (the service redirects to http only on loopback)."""
    sandbox = Sandbox(f"http://127.0.0.1:{port}", api_key)
    command = [sys.executable, "-m", "app.cli", "sandbox", "--host", "0.0.0.0", "--port", str(port)]
    with (workdir / "sandbox.log").open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--public-url", sandbox.url, "--api-key", api_key],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def answers() -> bool:
        if proc.poll() is not None:
            raise EngineError(f"the sandbox exited with {proc.returncode}")
        try:
            return httpx.get(sandbox.url + "/_sandbox/calls", timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_for("the Codat sandbox answers", answers, timeout=30, interval=0.2)
        yield sandbox
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 172.31.0.0/16 that no route of this machine touches."""
    used = []
    with open("/proc/net/route") as routes:
        for line in list(routes)[1:]:
            fields = line.split()
            dest, mask = (int(f, 16).to_bytes(4, "little") for f in (fields[1], fields[7]))
            prefix = sum(bin(b).count("1") for b in mask)
            used.append(ipaddress.IPv4Network((dest, prefix), strict=False))
    candidates = list(ipaddress.IPv4Network("172.31.0.0/16").subnets(new_prefix=24))
    free = [n for n in candidates if not any(n.overlaps(u) for u in used if u.prefixlen)]
    if not free:
        raise EngineError("no free /24 in 172.31.0.0/16 for the compose network")
    return random.choice(free)  # another check may run at the same time


# --- the deployment ---------------------------------------------------------------------


@dataclass
class Deployment:
    eng: Engine
    project: str
    env: dict[str, str]
    database: str
    url: str
    sandbox: Sandbox | None = None

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        files = [arg for f in COMPOSE_FILES for arg in ("-f", f)]
        env_file = self.eng.workdir / "compose.env"  # so that no developer's .env gets in
        env_file.touch()
        command = ["docker-compose", "--env-file", str(env_file), "-p", self.project, *files]
        result = run([*command, *args], env=self.env, cwd=ROOT, timeout=timeout, check=check)
        return result.stdout + result.stderr

    def containers(self, service: str) -> list[str]:
        labels = [f"com.docker.compose.project={self.project}"]
        labels.append(f"com.docker.compose.service={service}")
        filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
        return self.eng.docker_cmd("ps", "-a", "-q", "--no-trunc", *filters).split()

    def container(self, service: str) -> str:
        ids = self.containers(service)
        if len(ids) != 1:
            raise CheckFailed(f"expected one {service} container, found {len(ids)}")
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        return dict(json.loads(self.eng.docker_cmd("inspect", self.container(service)))[0])

    def health(self, service: str) -> str | None:
        return self.inspect(service)["State"].get("Health", {}).get("Status")

    def logs(self, *services: str) -> str:
        return self.compose("--profile", "worker", "logs", "--no-color", *services, timeout=60)

    def ops(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.env['OPS_API_TOKEN']}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def click(self, token: str) -> httpx.Response:
        return httpx.get(f"{self.url}/connect-bank-feeds", params={"token": token}, timeout=30)


@contextlib.contextmanager
def deployed(eng: Engine, image: str, database: str) -> Iterator[Deployment]:
    """`docker-compose up -d` with the host override, and a Codat sandbox; the logs if
    anything fails, and `down -v` in any case."""
    subnet = free_subnet()
    gateway = str(subnet.network_address + 1)
    port, sandbox_port = free_port(), free_port()
    sandbox_key = "sbx_" + secrets.token_urlsafe(24)
    env = {
        **eng.env,
        "BANKFEEDS_IMAGE": image,
        "BANKFEEDS_PUBLISH": f"127.0.0.1:{port}",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),  # for the postgres:16 not run here
        "CODAT_API_KEY": sandbox_key,
        "CODAT_BASE_URL": f"http://{gateway}:{sandbox_port}",
        "CODAT_LINK_HOSTS": "127.0.0.1",
        "CONNECT_TOKEN_SECRET": secrets.token_urlsafe(32),
        "OPS_API_TOKEN": "ops_" + secrets.token_urlsafe(24),
        "CODAT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HOST_SUBNET": str(subnet),
        "HOST_GATEWAY": gateway,
        "HOST_DATABASE": database,
    }
    project = f"bankfeedscheck{secrets.token_hex(4)}"
    dep = Deployment(eng, project, env, database, f"http://127.0.0.1:{port}")
    down = ["--profile", "worker", "down", "-v", "--remove-orphans", "-t", "20"]
    with contextlib.ExitStack() as stack:
        stack.callback(dep.compose, *down, timeout=300, check=False)
        try:
            say(f"--- docker-compose up: project {project}, network {subnet}, service {dep.url}")
            dep.sandbox = stack.enter_context(codat_sandbox(eng.workdir, sandbox_port, sandbox_key))
            dep.compose("up", "-d", "--no-build", timeout=600)
            yield dep
        except BaseException:
            with contextlib.suppress(Exception):
                say(dep.compose("--profile", "worker", "logs", "--no-color", "--tail", "60"))
            raise
    say("--- docker-compose down")


def build_image(eng: Engine, base: str) -> str:
    tag = f"bankfeeds-connect:check-{secrets.token_hex(4)}"
    say(f"--- docker build {tag}, FROM {base}")
    started = time.monotonic()
    command = [eng.docker, "build", "--network", "host", "--force-rm", "-t", tag]
    run(
        [*command, "--build-arg", f"PYTHON_IMAGE={base}", "."],
        env=eng.env,
        cwd=ROOT,
        timeout=1800,
        stdout_path=eng.workdir / "build.log",
    )
    if not eng.private:
        eng.created_images.append(tag)
    say(f"    built in {time.monotonic() - started:.0f} s")
    return tag


# --- checks on the running containers ---------------------------------------------------


def check_processes(checks: Checks, dep: Deployment, service: str) -> None:
    """Every process in the container, as the host sees them: none is root's, and none was
    told to trust forwarded headers from everyone."""
    top = dep.eng.docker_cmd("top", dep.container(service), "-o", "pid,uid,args")
    procs = [(int(row.split()[1]), row.split(None, 2)[2]) for row in top.splitlines()[1:]]
    non_root = bool(procs) and all(uid != 0 for uid, _ in procs)
    checks.ok(f"{service}: runs as a non-root user", non_root, procs)
    env = dep.inspect(service)["Config"]["Env"]
    checks.ok(
        f"{service}: forwarded headers not trusted from everyone",
        not any("forwarded-allow-ips" in args for _, args in procs)
        and not any(e.replace(" ", "") == "FORWARDED_ALLOW_IPS=*" for e in env),
        procs,
    )


def app_state(dep: Deployment) -> dict[str, Any]:
    """What the service keeps about the customer, less the times it last wrote what Codat
    said: the reconciler reads Codat at any moment and stamps those, which loses nothing."""

    def durable(value: Any) -> Any:
        if isinstance(value, dict):
            stamps = ("last_refreshed_at", "last_heard_at", "connection_status_at", "updated_at")
            return {k: durable(v) for k, v in value.items() if k not in stamps}
        if isinstance(value, list):
            return [durable(v) for v in value]
        return value

    state = {}
    for path in ("", "/accounts", "/bank-feed"):
        answer = dep.ops("GET", f"/ops/customers/{CUSTOMER}{path}").raise_for_status()
        state[path] = durable(answer.json())
    return state


def wait_healthy(dep: Deployment, started_after: str = "") -> None:
    def healthy() -> bool:
        state = dep.inspect("app")["State"]
        if state["Status"] not in ("running", "restarting"):
            raise CheckFailed(f"the app container is {state['Status']}")
        return state["StartedAt"] > started_after and state["Health"]["Status"] == "healthy"

    wait_for("the app container becomes healthy", healthy, timeout=120)


def check_deployment(checks: Checks, dep: Deployment) -> None:
    assert dep.sandbox is not None
    workers = dep.containers("worker")
    checks.ok("worker service is off by default", workers == [], workers)

    # 1. Migrations ran once, before the service started.
    migrate = dep.inspect("migrate")
    checks.ok(
        "migrate: one container, exited 0, never restarted",
        migrate["State"]["Status"] == "exited"
        and migrate["State"]["ExitCode"] == 0
        and migrate["RestartCount"] == 0,
        migrate["State"],
    )
    log = dep.logs("migrate")
    checks.ok("migrate: migrated once", log.count("Database migrated to head.") == 1, log[-2000:])
    versions = query(dep.database, "SELECT version_num FROM alembic_version")
    checks.ok("database at the head revision", versions == [(head_revision(),)], versions)
    app_started = dep.inspect("app")["State"]["StartedAt"]
    checks.ok(
        "app started after the migration finished",
        app_started > migrate["State"]["FinishedAt"],
        (app_started, migrate["State"]["FinishedAt"]),
    )

    # 2. Healthy, by Docker's health check and by the service's readiness.
    wait_healthy(dep)
    checks.ok("app: Docker reports it healthy", dep.health("app") == "healthy")
    ready = httpx.get(dep.url + "/readyz", timeout=10)
    checks.ok(
        "app: /readyz ok on the database, not in sandbox mode",
        ready.status_code == 200
        and ready.json() == {"status": "ok", "database": "ok", "sandbox_mode": False},
        (ready.status_code, ready.text),
    )

    # 3. A connect click: a customer with accounts, a token minted with the connect secret.
    customer = {"name": "Container Check Plumbing LLC", "country": "US"}
    answers = [dep.ops("PUT", f"/ops/customers/{CUSTOMER}", json=customer)]
    for n, kind in enumerate(["checking", "savings"], start=1):
        account = {
            "accountName": f"Business {kind}",
            "accountType": kind,
            "currency": "USD",
            "accountNumber": f"1234567{n}",
            "balance": "1500.25",
        }
        answers.append(dep.ops("PUT", f"/ops/customers/{CUSTOMER}/accounts/acc-{n}", json=account))
    checks.ok(
        "ops API: a customer and two accounts created",
        [a.status_code for a in answers] == [201, 201, 201],
        [a.text for a in answers],
    )
    secret = dep.env["CONNECT_TOKEN_SECRET"]
    first_token = mint_connect_token(secret, CUSTOMER)
    answer = dep.click(first_token)
    location = answer.headers.get("location", "")
    checks.ok(
        "connect click answers 302 to the Codat sandbox's Link page",
        answer.status_code == 302 and location.startswith(dep.sandbox.url + "/"),
        (answer.status_code, answer.text[:300]),
    )
    link_page = httpx.get(location, timeout=10)
    checks.ok("the Link page answers", link_page.status_code == 200, link_page.status_code)
    feed = dep.ops("GET", f"/ops/customers/{CUSTOMER}/bank-feed").json()
    checks.ok(
        "the click stored the Codat company and connection, and pushed both accounts",
        bool(feed["company_id"] and feed["connection_id"])
        and sorted(a["id"] for a in feed["accounts"]) == ["acc-1", "acc-2"]
        and all(a["status"] != "not_pushed" for a in feed["accounts"]),
        feed,
    )

    # 4. A restart of the app container loses nothing.
    before = app_state(dep)
    companies = dep.sandbox.company_creations()
    migrate_started = migrate["State"]["StartedAt"]
    app_started = dep.inspect("app")["State"]["StartedAt"]
    say("--- docker restart (app)")
    dep.eng.docker_cmd("restart", "-t", "20", dep.container("app"), timeout=120)
    wait_healthy(dep, started_after=app_started)
    checks.ok("restart: app healthy again", dep.health("app") == "healthy")
    after = app_state(dep)
    checks.ok(
        "restart: customer, accounts and bank feed unchanged",
        after == before,
        {"before": before, "after": after},
    )
    replay = dep.click(first_token)
    checks.ok("restart: the spent token is still refused", replay.status_code == 401, replay)
    again = dep.click(mint_connect_token(secret, CUSTOMER))
    checks.ok(
        "restart: a new click answers 302 and reuses the Codat company",
        again.status_code == 302
        and dep.sandbox.company_creations() == companies
        and app_state(dep)["/bank-feed"]["company_id"] == feed["company_id"],
        (again.status_code, dep.sandbox.company_creations(), companies),
    )
    migrations = [dep.inspect("migrate")["State"]["StartedAt"]]
    checks.ok("restart: the migration did not run again", migrations == [migrate_started])

    # 5. Non-root, no trust in forwarded headers from everyone.
    check_processes(checks, dep, "app")

    # 7. The worker profile: the long-running worker, and one pass of it.
    say("--- docker-compose --profile worker up -d worker")
    dep.compose("--profile", "worker", "up", "-d", "--no-deps", "--no-build", "worker")
    running = "bankfeeds worker running"
    wait_for("the worker says it runs", lambda: running in dep.logs("worker"), timeout=60)
    worker = dep.inspect("worker")
    checks.ok(
        "worker: running, never restarted",
        worker["State"]["Status"] == "running" and worker["RestartCount"] == 0,
        worker["State"],
    )
    check_processes(checks, dep, "worker")
    once = dep.compose(
        "--profile",
        "worker",
        "run",
        "--rm",
        "--no-deps",
        "worker",
        "worker",
        "--once",
        timeout=180,
        check=False,
    )
    checks.ok("worker --once: handles what is due, then exits", "Handled " in once, once[-1500:])

    # Secrets, tokens and one-time passwords never reach the logs.
    logs = dep.logs()
    leaked = [name for name in SECRETS if dep.env[name] in logs]
    leaked += ["the Link URL"] * (location in logs or location.partition("?")[2] in logs)
    leaked += ["a connect token"] * (first_token in logs)
    checks.ok("logs hold no secret, token or Link URL", leaked == [], leaked)


# --- checks on the image ----------------------------------------------------------------

INSPECT_IMAGE = r"""
import importlib.metadata, json, os
found = {"git": [], "env_files": [], "private_keys": [], "repo_tests": []}
for top in ("/srv", "/usr", "/etc", "/root", "/home", "/opt", "/tmp", "/var"):
    for root, dirs, files in os.walk(top):
        ours = root.startswith("/srv") and not root.startswith("/srv/.venv")
        for name in dirs + files:
            path = os.path.join(root, name)
            if name == ".git":
                found["git"].append(path)
            if name in (".env", "dev-secrets.json") or name.startswith(".env."):
                found["env_files"].append(path)
            if ours and (name in ("tests", "conftest.py") or name.startswith("test_")):
                found["repo_tests"].append(path)
        for name in files:
            if ours or name.endswith((".pem", ".key")):
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        if b"PRIVATE KEY-----" in f.read():
                            found["private_keys"].append(path)
                except OSError:
                    pass
found["srv"] = sorted(os.listdir("/srv"))
found["dists"] = sorted(
    d.metadata["Name"].lower().replace("_", "-").replace(".", "-")
    for d in importlib.metadata.distributions()
)
print(json.dumps(found))
"""


def locked(*options: str) -> set[str]:
    """The names of the packages uv.lock installs with these options, normalised."""
    export = [str(ROOT / ".tools/bin/uv"), "export", "--frozen", "--no-hashes", "--no-header"]
    out = run([*export, "--no-emit-project", "--no-annotate", *options], cwd=ROOT, timeout=120)
    names = set()
    for line in out.stdout.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "-")):
            name = line.split("==")[0].split(";")[0].split("[")[0].strip()
            names.add(name.lower().replace("_", "-").replace(".", "-"))
    return names


def check_image(checks: Checks, eng: Engine, image: str) -> None:
    inspect = ["run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c"]
    found = json.loads(eng.docker_cmd(*inspect, INSPECT_IMAGE, timeout=300))
    checks.ok(
        "image: /srv holds the service only (no tests, bench, docs or .git)",
        set(found["srv"]) == IMAGE_SRV and found["repo_tests"] == [],
        (found["srv"], found["repo_tests"]),
    )
    checks.ok("image: no .git anywhere", found["git"] == [], found["git"])
    production = locked("--no-dev")
    dev_only = locked("--only-dev") - production
    dists = set(found["dists"]) - {"bankfeeds-connect"}
    checks.ok(
        "image: production dependencies only",
        not dists & dev_only and dists <= production,
        {"dev": sorted(dists & dev_only), "not locked": sorted(dists - production)},
    )
    config = json.loads(eng.docker_cmd("image", "inspect", image))[0]["Config"]
    history = eng.docker_cmd("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    words = ("SECRET", "TOKEN", "PASSWORD", "API_KEY", "WHSEC")
    in_env = [e for e in config["Env"] if any(w in e.upper() for w in words)]
    in_history = [h for h in history.splitlines() if any(w in h.upper() for w in words)]
    files = found["env_files"] + found["private_keys"]
    checks.ok(
        "image: no secrets (no .env, no private key, none in its env or history)",
        files == [] and in_env == [] and in_history == [],
        {"files": files, "env": in_env, "history": in_history},
    )
    checks.ok("image: runs as a numeric non-root user", config["User"] == "10001:10001", config)


def image_size(eng: Engine, image: str, base: str) -> str:
    def size(ref: str) -> int:
        return int(eng.docker_cmd("image", "inspect", "-f", "{{.Size}}", ref))

    total, base_size = size(image), size(base)
    mb = 1_000_000
    return (
        f"image {total / mb:.0f} MB ({base_size / mb:.0f} MB of it the base image {base}, "
        f"{(total - base_size) / mb:.0f} MB the service and its dependencies)"
    )


# --- main -------------------------------------------------------------------------------


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every cleanup below


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    checks = Checks()
    started = time.monotonic()
    size = "no image"
    try:
        ensure_tools()
        with contextlib.ExitStack() as stack:
            eng = stack.enter_context(engine())
            stack.callback(
                lambda: [eng.docker_cmd("rmi", i, check=False) for i in eng.created_images]
            )
            base = python_base(eng)
            image = build_image(eng, base)
            size = image_size(eng, image, base)
            say(f"    {size}")
            check_image(checks, eng, image)
            database = stack.enter_context(fresh_database())
            dep = stack.enter_context(deployed(eng, image, database))
            check_deployment(checks, dep)
    except CheckFailed as exc:
        if checks.failed == 0:  # a wait that ran out
            checks.failed += 1
            say(f"FAIL  {exc}")
    except EngineError as exc:
        checks.failed += 1
        say(f"FAIL  {exc}")
    except Exception:
        checks.failed += 1
        traceback.print_exc()
        say("FAIL  the check stopped on the error above")
    say(f"{size}; {time.monotonic() - started:.0f} s in all")
    say(f"container: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

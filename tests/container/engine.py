"""A Docker engine for the container check, and a base image when the official one cannot be had.

- `ensure_tools()` installs docker.io, docker-compose and debootstrap with apt when missing.
- `engine()` uses the engine that answers, or starts a private dockerd (vfs, no bridge, no
  iptables; data-root, exec-root and socket in a temporary folder) and stops it by its pid.
- `python_base()` gives python:3.11-slim when it can be pulled, else a stand-in: Debian
  bookworm from debootstrap with its Python 3.11, pip and venv, and this host's CA bundle
  (outbound TLS here is re-signed). The stand-in is kept as a tarball under /var/cache, keyed
  by its recipe and the CA bundle, so later runs on the same machine only import it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

OFFICIAL_IMAGE = "python:3.11-slim"
STANDIN_REPO = "bankfeeds-python-standin"
CACHE_DIR = Path(os.environ.get("CONTAINER_CHECK_CACHE", "/var/cache/bankfeeds-connect"))
RUNS_DIR = Path(tempfile.gettempdir()) / "bankfeeds-container"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")
# Debian's Python 3.11 in the layout of python:3.11-slim: `python`, `pip`, and pip allowed to
# install into the system (the official image has no EXTERNALLY-MANAGED marker either).
STANDIN_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
STANDIN_RECIPE = f"""debootstrap --variant=minbase --include={STANDIN_PACKAGES} bookworm
rm EXTERNALLY-MANAGED, apt lists and caches, docs; host CA bundle; LANG=C.UTF-8, SSL_CERT_FILE
v1"""
MIN_FREE_BYTES = 5 * 1024**3


class EngineError(RuntimeError):
    """The engine or the base image could not be had; the message says why."""


def log(message: str) -> None:
    print(message, flush=True)


def run(
    args: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
    stdout_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion within `timeout` seconds; its output is returned (or written
    to `stdout_path`). A failure raises with the command's last lines."""
    if stdout_path is not None:
        with stdout_path.open("w") as out:
            result = subprocess.run(
                args,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        result.stdout = stdout_path.read_text(errors="replace")
    else:
        result = subprocess.run(
            args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + (result.stderr or "")).strip().splitlines()[-30:])
        raise EngineError(f"`{' '.join(args[:4])} …` exited with {result.returncode}:\n{tail}")
    return result


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when this script dies, even by SIGKILL (Linux)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --- tools ------------------------------------------------------------------------------

APT_PACKAGES = {
    "dockerd": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}


def ensure_tools() -> None:
    missing = [pkg for cmd, pkg in APT_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineError(f"missing {', '.join(missing)}: install them with apt (needs root)")
    log(f"--- installing {' '.join(missing)} with apt")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    run(["apt-get", *lock, "update", "-qq"], env=env, timeout=600)
    run(
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        timeout=900,
    )


def docker_cli() -> str:
    # Debian's client matches Debian's engine, and builds with the classic builder.
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return candidate
    raise EngineError("no docker client found")


# --- engine -----------------------------------------------------------------------------


@dataclass
class Engine:
    docker: str
    env: dict[str, str]
    private: bool  # started here: everything in it goes when it stops
    workdir: Path
    created_images: list[str] = field(default_factory=list)

    def docker_cmd(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return run([self.docker, *args], env=self.env, timeout=timeout, check=check).stdout

    def has_image(self, ref: str) -> bool:
        result = run([self.docker, "image", "inspect", ref], env=self.env, timeout=60, check=False)
        return result.returncode == 0


def _reachable(docker: str, env: dict[str, str]) -> bool:
    try:
        return run([docker, "version"], env=env, timeout=15, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == str(path) or point.startswith(prefix):
                mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Unmount what dockerd left mounted under `path` (its netns file, its data-root), then
    delete it."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True, timeout=60)
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_runs() -> None:
    """Delete the folders of earlier runs that were killed before they could clean up: only
    those whose check and whose dockerd have both exited."""
    if not RUNS_DIR.is_dir():
        return
    for run_dir in RUNS_DIR.iterdir():
        pids = []
        for name in ("owner.pid", "dockerd.pid"):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int((run_dir / name).read_text().strip()))
        if not any(_alive(pid) for pid in pids):
            log(f"--- removing {run_dir}, left by an earlier run")
            _remove_tree(run_dir)


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """The engine in DOCKER_HOST or on the default socket if one answers, else a private one."""
    _sweep_stale_runs()
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=RUNS_DIR))
    (workdir / "owner.pid").write_text(str(os.getpid()))
    docker = docker_cli()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_BUILDKIT"}
    dockerd: subprocess.Popen[bytes] | None = None
    try:
        free = shutil.disk_usage(workdir).free
        if free < MIN_FREE_BYTES:
            raise EngineError(
                f"only {free // 1024**2} MB free under {workdir}: the check needs about 5 GB"
            )
        if _reachable(docker, env):
            log("--- using the Docker engine that answers")
            yield Engine(docker, env, private=False, workdir=workdir)
            return
        sock = workdir / "docker.sock"
        env["DOCKER_HOST"] = f"unix://{sock}"
        log(f"--- starting dockerd in {workdir}")
        with (workdir / "dockerd.log").open("wb") as out:
            dockerd = subprocess.Popen(
                [
                    "dockerd",
                    "--storage-driver=vfs",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--bridge=none",
                    f"--data-root={workdir / 'data'}",
                    f"--exec-root={workdir / 'exec'}",
                    f"--pidfile={workdir / 'dockerd.pid'}",
                    f"--host=unix://{sock}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C reaches this script, which stops it in order
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + 60
        while not _reachable(docker, env):
            if dockerd.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "dockerd.log").read_text(errors="replace")[-2000:]
                raise EngineError(f"dockerd did not start:\n{tail}")
            time.sleep(0.5)
        log(f"    dockerd pid {dockerd.pid} ready")
        yield Engine(docker, env, private=True, workdir=workdir)
    finally:
        if dockerd is not None:
            _stop(dockerd)
        _remove_tree(workdir)


def _stop(dockerd: subprocess.Popen[bytes]) -> None:
    if dockerd.poll() is None:
        dockerd.send_signal(signal.SIGTERM)
        try:
            dockerd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait(timeout=30)
    log(f"--- dockerd pid {dockerd.pid} stopped")


# --- base image -------------------------------------------------------------------------


def python_base(eng: Engine) -> str:
    """The image to build FROM: PYTHON_IMAGE if set, the official one if it can be pulled,
    else the stand-in."""
    chosen = os.environ.get("PYTHON_IMAGE")
    if chosen:
        if not eng.has_image(chosen):
            eng.docker_cmd("pull", chosen, timeout=600)
        return chosen
    if eng.has_image(OFFICIAL_IMAGE):
        return OFFICIAL_IMAGE
    pulled = run([eng.docker, "pull", OFFICIAL_IMAGE], env=eng.env, timeout=300, check=False)
    if pulled.returncode == 0:
        return OFFICIAL_IMAGE
    log(f"    {OFFICIAL_IMAGE} cannot be pulled here: using a stand-in built with debootstrap")
    return _standin(eng)


def _standin_key() -> str:
    digest = hashlib.sha256(STANDIN_RECIPE.encode())
    for ca in [HOST_CA_BUNDLE, *sorted(HOST_EXTRA_CAS.glob("*.crt"))]:
        if ca.is_file():
            digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    return digest.hexdigest()[:16]


def _standin(eng: Engine) -> str:
    key = _standin_key()
    tag = f"{STANDIN_REPO}:{key}"
    if eng.has_image(tag):
        return tag
    tarball = CACHE_DIR / f"{STANDIN_REPO}-{key}.tar.gz"
    if tarball.is_file():
        log(f"    stand-in from the cache: {tarball}")
    else:
        _build_standin_tarball(eng.workdir, tarball)
    eng.docker_cmd(
        "import",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        f"ENV SSL_CERT_FILE={HOST_CA_BUNDLE}",
        "--change",
        'CMD ["python3"]',
        str(tarball),
        tag,
        timeout=600,
    )
    if not eng.private:
        eng.created_images.append(tag)
    return tag


def _build_standin_tarball(workdir: Path, tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise EngineError("debootstrap is missing")
    rootfs = workdir / "rootfs"
    log("    debootstrap bookworm (about a minute)")
    started = time.monotonic()
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={STANDIN_PACKAGES}",
                "bookworm",
                str(rootfs),
            ],
            timeout=1200,
            stdout_path=workdir / "debootstrap.log",
        )
        for path in [
            "usr/lib/python3.11/EXTERNALLY-MANAGED",
            "var/lib/apt/lists",
            "var/cache/apt",
            "usr/share/doc",
            "usr/share/man",
        ]:
            target = rootfs / path
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                target.unlink(missing_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for ca in HOST_EXTRA_CAS.glob("*.crt"):
            shutil.copyfile(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_name(f".{tarball.name}.{os.getpid()}")
        try:
            with partial.open("wb") as out:
                tar = subprocess.Popen(
                    ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."],
                    stdout=subprocess.PIPE,
                )
                gzip = subprocess.run(["gzip", "-1"], stdin=tar.stdout, stdout=out, timeout=600)
                assert tar.stdout is not None
                tar.stdout.close()
                if tar.wait(timeout=600) != 0 or gzip.returncode != 0:
                    raise EngineError("could not pack the stand-in's root file system")
            os.replace(partial, tarball)  # atomic: a concurrent run sees all of it or nothing
        finally:
            partial.unlink(missing_ok=True)
        for old in CACHE_DIR.glob(f"{STANDIN_REPO}-*.tar.gz"):
            if old != tarball:
                old.unlink(missing_ok=True)
    finally:
        _remove_tree(rootfs)
    log(f"    stand-in built in {time.monotonic() - started:.0f} s, cached as {tarball}")

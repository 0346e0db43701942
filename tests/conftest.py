"""Shared fixtures: an app with explicit settings and an httpx client over ASGI."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from optim_core import kernels
from service.main import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core, at most four (each may start servers and clusters)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.fixture(autouse=True)
def _test_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app a test builds (and every server it starts) keeps its jobs in tmp_path,
    checks each answer against its declared response model (a mismatch is a 500) and runs
    the NumPy engine."""
    monkeypatch.setenv("OPTIM_JOBS_DB_PATH", str(tmp_path / "jobs.sqlite3"))
    monkeypatch.setenv("OPTIM_VALIDATE_ANSWERS", "true")
    # the NumPy engine, as the tests of everything but the fused kernels expect (exact
    # shard splits, no compile in the middle of a timing); tests/core/test_fused.py and
    # tests/service/test_kernels_setting.py choose the fused path themselves
    monkeypatch.setenv("OPTIM_KERNELS", "numpy")
    # and in this process, whatever an app of a module-scoped fixture configured before
    kernels.configure("numpy", None, kernels.cache_dir())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(max_concurrency=2, max_queue=4, jobs_db_path=str(tmp_path / "jobs.sqlite3"))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str] | None = None, port: int | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """`python -m service` on 127.0.0.1 in a subprocess, checking its answers against their
    models; returns (process, base URL); the process's `log_path` is its output."""
    port = port or free_port()
    environ = os.environ | {"OPTIM_HOST": "127.0.0.1", "OPTIM_PORT": str(port),
                            "OPTIM_VALIDATE_ANSWERS": "true", "OPTIM_KERNELS": "numpy"
                            } | (env or {})
    # A file, not a pipe: nobody reads a pipe, and a full one would block the server's logging.
    log = tempfile.NamedTemporaryFile("w+b", prefix=f"optim-server-{port}-", suffix=".log",
                                      delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=environ,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log.name  # type: ignore[attr-defined]  # this server's log, and no other
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    log.seek(0)
    raise RuntimeError(f"server did not start: {log.read().decode()[-2000:]}")


@pytest.fixture
def live_server() -> Iterator[str]:
    proc, url = start_server()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real server for a whole test module, with its own job store."""
    db = tmp_path_factory.mktemp("server") / "jobs.sqlite3"
    proc, url = start_server({"OPTIM_JOBS_DB_PATH": str(db)})
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _postgres_binaries() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


class PostgresServer:
    """A real PostgreSQL from this machine's own binaries, run as the `postgres` user (initdb
    refuses root) on a data directory it owns, on a free port, listening on 127.0.0.1 only.
    The fault tests stop, start, freeze and thaw it."""

    def __init__(self) -> None:
        import pwd

        pytest.importorskip("psycopg")
        binaries = _postgres_binaries()
        if binaries is None:
            pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no postgres user to run PostgreSQL as")
        self.binaries = binaries
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.base = Path(tempfile.mkdtemp(prefix="optim-pg-"))
        os.chown(self.base, user.pw_uid, user.pw_gid)
        self.data = self.base / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run([*self.as_postgres, str(binaries / "initdb"), "-D", str(self.data),
                        "-A", "trust", "-U", "postgres", "--no-sync"], check=True,
                       capture_output=True, timeout=120)
        self.start()

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.as_postgres, str(self.binaries / "pg_ctl"), "-D", str(self.data),
                        *args], check=check, capture_output=True, timeout=120)

    def start(self) -> None:
        self._ctl("-w", "-t", "60", "-l", str(self.base / "server.log"), "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=100", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def pids(self) -> list[int]:
        """The postmaster and every backend of this cluster."""
        first = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(first)], capture_output=True,
                                  text=True).stdout.split()
        return [first, *map(int, children)]

    def signal(self, signum: int) -> None:
        """Signal the postmaster first, then its backends: a stopped postmaster forks no
        backend between the listing and the signal (one that did answered while "frozen")."""
        import signal as signals

        postmaster, *_ = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signals.Signals(signum))
        for pid in self.pids()[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.Signals(signum))

    def database(self) -> str:
        """An empty database of its own for one test."""
        import uuid

        import psycopg

        name = f"optim_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def close(self) -> None:
        import shutil

        self.signal(18)  # SIGCONT: a frozen server must be able to stop
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL for the whole session (each xdist worker has its own)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url


@pytest.fixture
def fresh_postgres_db(postgres_server: PostgresServer) -> str:
    """An empty database of its own for one test, on the session's server."""
    return postgres_server.database()

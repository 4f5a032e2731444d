"""Throwaway PostgreSQL and Redis servers on loopback (tests, benchmarks, trying production mode on one machine)."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from ..errors import DependencyMissingError

PG_USER = "biqe"  # the database superuser inside the throwaway cluster
UNPRIVILEGED = "postgres"  # PostgreSQL refuses to run as root: as root, the cluster runs as Debian's postgres user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Optional[Path]:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb, pg_ctl and postgres."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                   if p.parent.name.isdigit() else 0)
    for folder in reversed(found):
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def missing_programs() -> list[str]:
    """What is not installed of Debian's redis-server and postgresql (scripts/setup.sh installs both)."""
    missing = [] if shutil.which("redis-server") else ["redis-server (Debian package redis-server)"]
    if postgres_bin() is None:
        missing.append("initdb/pg_ctl (Debian package postgresql)")
    return missing


class Postgres:
    """A PostgreSQL cluster in a temp dir on 127.0.0.1:<free port>, trust auth, no fsync (throwaway data)."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise DependencyMissingError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = binaries
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="biqe-pg-"))
        self.data = self.dir / "data"
        self.user: Optional[str] = None
        if os.geteuid() == 0:
            self.user = UNPRIVILEGED
            entry = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(a) for a in args], user=self.user, capture_output=True, text=True, timeout=120,
                              cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> "Postgres":
        self._run(self.bin / "initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "60",
                  "-o", options, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                           user=self.user, capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """redis-server on 127.0.0.1:<free port>, nothing saved to disk."""

    def __init__(self) -> None:
        if not shutil.which("redis-server"):
            raise DependencyMissingError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="biqe-redis-"))
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Redis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--daemonize", "no"],
            stdout=open(self.dir / "redis.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}: "
                           f"{(self.dir / 'redis.log').read_text(errors='replace')}")

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


CLI = [sys.executable, "-m", "biqe_lab.cli"]


class Stack:
    """Production mode on one machine: `biqe-lab serve --workers 0` and any number of `biqe-lab worker --queue
    celery` processes on one database and one broker (each process logs to a file in ``folder``)."""

    def __init__(self, folder: Path, database_url: str, broker_url: str, **settings: str) -> None:
        """``settings``: more BIQE_* variables, e.g. ``BIQE_PIPELINE_CONFIG='{"engine": "tesseract"}'``."""
        self.folder = folder
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "BIQE_DATA_DIR": str(folder / "data"),
                    "BIQE_DATABASE_URL": database_url, "BIQE_QUEUE": "celery", "BIQE_BROKER_URL": broker_url,
                    **settings}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = self._start(["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "0"],
                                  folder / "serve.log")
        self.workers: list[tuple[subprocess.Popen, Path]] = []

    def _start(self, args: list[str], log: Path) -> subprocess.Popen:
        return subprocess.Popen([*CLI, *args], env=self.env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def add_worker(self, *args: str) -> subprocess.Popen:
        proc = self._start(["worker", "--queue", "celery", *args], self.folder / f"worker{len(self.workers)}.log")
        self.workers.append((proc, self.folder / f"worker{len(self.workers)}.log"))
        return proc

    def wait_ready(self, timeout: float = 120) -> None:
        """Until /healthz answers and every worker logged Celery's "ready."."""
        import httpx

        deadline = time.monotonic() + timeout
        pending = {log for proc, log in self.workers if proc.poll() is None}
        healthy = False
        while time.monotonic() < deadline and (pending or not healthy):
            if self.server.poll() is not None:
                raise RuntimeError("the API server exited:\n" + self.logs())
            pending = {log for log in pending if " ready." not in log.read_text(errors="replace")}
            try:
                healthy = healthy or httpx.get(self.base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if pending or not healthy:
            raise RuntimeError(f"not ready within {timeout} s:\n" + self.logs())

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}"
                         for log in [self.folder / "serve.log", *(log for _, log in self.workers)])

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc, _ in self.workers:
            self.stop(proc)
        self.stop(self.server)

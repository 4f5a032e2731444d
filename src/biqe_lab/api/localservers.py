"""Throwaway PostgreSQL and Redis servers on loopback (tests, benchmarks, trying production mode on one machine)."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
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

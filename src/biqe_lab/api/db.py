"""Database engines for the job store (SQLite in WAL mode or PostgreSQL) and its Alembic migrations, run in code."""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Optional

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from ..errors import DatabaseError

log = logging.getLogger("biqe_lab.db")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema that databases made before migrations existed have (CREATE TABLE IF NOT EXISTS)
_PG_LOCK = 0x62697165  # pg_advisory_xact_lock key ("biqe"): one migrating process at a time


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite: WAL, foreign keys, a 30 s busy timeout, and write transactions that
    begin with BEGIN IMMEDIATE (writers queue on the lock instead of failing an upgrade from read to write);
    reads run without a transaction (``Store._read``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30.0, "check_same_thread": False},
                               pool_size=10, max_overflow=40)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, record) -> None:
            dbapi_conn.isolation_level = None  # the driver's own BEGIN is off; _sqlite_begin emits ours
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
                dbapi_conn.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite opens it (its -wal and -shm files take the same mode), in a
    folder made 0700 if it is new; tighten an existing file (it holds webhook secrets and key hashes)."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if candidate.stat().st_mode & 0o077:
                os.chmod(candidate, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError as exc:  # another user's file: say so, it is the operator's to fix
            log.warning("cannot make %s private (0600): %s", candidate, exc)


def _config(connection: Optional[Connection] = None, url: Optional[str] = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: Connection) -> Optional[str]:
    """The database's revision; BASELINE for a database made before migrations; None when it is empty."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return BASELINE if "jobs" in tables else None


def _lock(conn: Connection) -> None:
    """Serialize migrations between processes (SQLite: BEGIN IMMEDIATE holds the write lock already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})


def upgrade(engine: Engine, fast_create: bool = False) -> tuple[Optional[str], str]:
    """Migrate the database to the newest revision; returns (revision before, revision after).

    A database made before migrations is stamped with the baseline first. With ``fast_create``
    an empty database gets the newest tables at once (create_all + stamp) instead of every
    revision in turn (what the server and workers do at start; ``biqe-lab db upgrade`` runs
    the revisions). Safe when several processes start at once: one migrates, the others wait.
    """
    from alembic import command

    head = head_revision()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:  # the common case, without taking any lock: already at head
            if "alembic_version" in inspect(conn).get_table_names() and \
                    conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head:
                return head, head
        except Exception as exc:  # noqa: BLE001 - reported as the store's error below
            raise DatabaseError(f"cannot read the job store's database: {exc}") from exc
    with engine.begin() as conn:
        _lock(conn)
        before = current_revision(conn)
        if before == head:
            return before, head
        if before is not None and before not in _known_revisions():
            raise DatabaseError(f"the database is at revision {before!r}, newer than this build of biqe_lab "
                                f"(head {head!r}); upgrade biqe_lab")
        config = _config(conn)
        if before is None and fast_create:
            from .schema import metadata

            metadata.create_all(conn)
            command.stamp(config, "head")
        else:
            if before == BASELINE and "alembic_version" not in inspect(conn).get_table_names():
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
    log.info("job store migrated from %s to %s", before or "an empty database", head)
    return before, head


@functools.lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions())


def downgrade(engine: Engine, revision: str) -> None:
    """Back to ``revision`` (operators: take a backup first; data in dropped columns is lost)."""
    from alembic import command

    with engine.begin() as conn:
        _lock(conn)
        command.downgrade(_config(conn), revision)

"""The store's connections and time stamps, shared by its parts (accounts, jobs, outbox, usage)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from sqlalchemy import Connection, Engine, literal_column, select, text

from ..db import make_engine, upgrade as migrate
from ..schema import jobs


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if dt else None


def parse_iso(value: Optional[str]) -> Optional[datetime]:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc) if value else None


class StoreBase:
    """An open database: the engine, its transactions and one-statement reads."""

    def __init__(self, url: str | Path, engine: Optional[Engine] = None) -> None:
        """``url``: a SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or a SQLite file path."""
        text_url = str(url)
        self.url = text_url if "://" in text_url else f"sqlite:///{Path(text_url)}"
        self.engine = engine or make_engine(self.url)
        self.dialect = self.engine.dialect.name
        database = self.engine.url.database
        self.path = Path(database) if self.dialect == "sqlite" and database else None
        migrate(self.engine, fast_create=True)  # several processes may start at once: one migrates
        # ties between jobs created in the same millisecond: insertion order on SQLite, the id elsewhere
        self._seq = literal_column("jobs.rowid") if self.dialect == "sqlite" else jobs.c.id

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator["_Db"]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, writers queue on the lock: no upgrade deadlocks)."""
        with self.engine.begin() as conn:
            yield _Db(conn)

    @contextmanager
    def _read(self) -> Iterator["_Db"]:
        """Reads (and single-statement writes) without a transaction around them."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield _Db(conn)

    def _conn(self) -> "_Db":
        """A connection in autocommit mode for one-off SQL (tests, scripts): ``_conn().execute(sql, params)``."""
        return _Db(None, self.engine)

    def _one(self, statement: Any, params: Any = ()) -> Optional[dict]:
        with self._read() as db:
            return db.execute(statement, params).fetchone()

    def _all(self, statement: Any, params: Any = ()) -> list[dict]:
        with self._read() as db:
            return db.execute(statement, params).fetchall()

    def ping(self) -> None:
        self._one(select(literal_column("1")))

    def dispose(self) -> None:
        """Close every pooled connection (the Store opens new ones if used again)."""
        self.engine.dispose()



class _Rows:
    """A statement's rows, fetched at once as dicts (``fetchone``/``fetchall``, like a DB-API cursor)."""

    def __init__(self, result: Any) -> None:
        self.rowcount = result.rowcount
        self.rows = [dict(row) for row in result.mappings()] if result.returns_rows else []

    def fetchone(self) -> Optional[dict]:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[dict]:
        return self.rows


class _Db:
    """A connection that runs SQLAlchemy statements, or SQL text with ``?`` or ``:name`` parameters
    (portable between SQLite and PostgreSQL); without a connection, each statement commits on its own."""

    def __init__(self, conn: Optional[Connection], engine: Optional[Engine] = None) -> None:
        self.conn, self.engine = conn, engine

    def execute(self, statement: Any, params: Any = ()) -> _Rows:
        if isinstance(statement, str):
            if isinstance(params, dict):
                statement, params = text(statement), params
            else:
                values = list(params)
                numbers = iter(range(len(values)))
                statement = text(re.sub(r"\?", lambda _: f":p{next(numbers)}", statement))
                params = {f"p{i}": value for i, value in enumerate(values)}
        if self.conn is None:
            with self.engine.begin() as conn:
                return _Rows(conn.execute(statement, params or {}))
        return _Rows(self.conn.execute(statement, params or {}))

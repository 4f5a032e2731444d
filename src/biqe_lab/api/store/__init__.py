"""The job store: accounts and keys, jobs, the webhook outbox and usage over SQLAlchemy; owns every state change."""
from __future__ import annotations

from .accounts import KEY_PREFIX, Accounts, hash_key
from .base import iso, parse_iso, utcnow
from .jobs import TERMINAL, TRANSITIONS, Jobs, expiry_from, result_url, status_url
from .outbox import Outbox
from .usage import Usage

__all__ = ["KEY_PREFIX", "TERMINAL", "TRANSITIONS", "Store", "expiry_from", "hash_key", "iso", "parse_iso",
           "result_url", "status_url", "utcnow"]


class Store(Accounts, Jobs, Outbox, Usage):
    """The job store over SQLAlchemy Core, on SQLite (WAL; the embedded default) or PostgreSQL.

    Safe to share between threads and processes: every state change is one atomic statement or
    one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: row locks, SKIP LOCKED for claims).
    The schema is migrated (Alembic) when a Store opens a database.
    """

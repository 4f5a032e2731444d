"""The job store: SQLite tables for accounts, API keys, jobs, the webhook outbox and usage; owns every state change."""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import BiqeError, InputError

KEY_PREFIX = "biqe_live_"
STATES = ("queued", "processing", "done", "failed", "cancelled")
TERMINAL = frozenset({"done", "failed", "cancelled"})

# The one table of allowed transitions; every state change goes through Store.transition.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset({
    ("queued", "processing"),      # a worker claimed it
    ("processing", "done"),
    ("processing", "failed"),
    ("queued", "cancelled"),
    ("processing", "cancelled"),
    ("processing", "queued"),      # its worker died (stale heartbeat) or shut down: run it again
})


class AuthError(BiqeError):
    """The request carries no API key, or one that is unknown or revoked."""

    code = "unauthorized"
    http_status = 401


class NotFoundError(BiqeError):
    """Unknown job (or another account's: the answer is the same)."""

    code = "not_found"
    http_status = 404


class ConflictError(BiqeError):
    """The request conflicts with the job's state (cancel a finished job, reuse an idempotency key)."""

    code = "conflict"
    http_status = 409


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if dt else None


def parse_iso(value: Optional[str]) -> Optional[datetime]:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc) if value else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    webhook_secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    label TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    state TEXT NOT NULL CHECK (state IN ('queued','processing','done','failed','cancelled')),
    page_count INTEGER NOT NULL,
    current_step TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    expires_at TEXT NOT NULL,
    error_message TEXT,
    warning_message TEXT,
    llm_tier TEXT NOT NULL,
    preset TEXT NOT NULL,
    pdf_format TEXT NOT NULL,
    pipeline_steps TEXT NOT NULL,
    webhook_url TEXT,
    base_url TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    heartbeat_at REAL,
    worker_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    result_expired_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, created_at);
CREATE INDEX IF NOT EXISTS jobs_account ON jobs(account_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivery_id TEXT NOT NULL UNIQUE,
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_status INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries(delivered, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL
);
CREATE TABLE IF NOT EXISTS usage (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    month TEXT NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    jobs INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);
-- the customer portal (biqe_lab.api.users holds their SQL): an account's people, their sessions, sign-in attempts
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_login_at TEXT
);
CREATE TABLE IF NOT EXISTS portal_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    throttle_key TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures(throttle_key, failed_at);
"""


class Store:
    """SQLite in WAL mode, one connection per thread; safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(SCHEMA)  # IF NOT EXISTS: safe when several processes start at once

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb) -> None:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> "Store._Tx":
        """A write transaction (BEGIN IMMEDIATE: writers queue on the database lock, no upgrade deadlocks)."""
        return Store._Tx(self._conn())

    def _one(self, sql: str, params: Iterable[Any] = ()) -> Optional[dict]:
        row = self._conn().execute(sql, tuple(params)).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        return [dict(r) for r in self._conn().execute(sql, tuple(params)).fetchall()]

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- accounts and keys -------------------------------------------------------------------
    def create_account(self, name: str) -> dict:
        if not name.strip():
            raise InputError("an account needs a name")
        account = {"id": str(uuid.uuid4()), "name": name, "webhook_secret": secrets.token_hex(32),
                   "created_at": iso(utcnow())}
        try:
            with self._tx() as db:
                db.execute("INSERT INTO accounts (id, name, webhook_secret, created_at) VALUES (?,?,?,?)",
                           tuple(account.values()))
        except sqlite3.IntegrityError as exc:
            raise InputError(f"an account named {name!r} exists already") from exc
        return account

    def account(self, name_or_id: str) -> dict:
        row = self._one("SELECT * FROM accounts WHERE name = ? OR id = ?", (name_or_id, name_or_id))
        if row is None:
            raise InputError(f"no account named {name_or_id!r}")
        return row

    def account_by_id(self, account_id: str) -> dict:
        row = self._one("SELECT * FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            raise NotFoundError(f"no account {account_id}")
        return row

    def rotate_secret(self, name: str) -> dict:
        account = self.account(name)
        secret = secrets.token_hex(32)
        with self._tx() as db:
            db.execute("UPDATE accounts SET webhook_secret = ? WHERE id = ?", (secret, account["id"]))
        return {**account, "webhook_secret": secret}

    def create_key(self, account_name: str, label: str) -> tuple[dict, str]:
        """A new API key; returns its record and the key itself, which is never stored (only its hash)."""
        account = self.account(account_name)
        key = KEY_PREFIX + secrets.token_urlsafe(30)
        record = {"id": str(uuid.uuid4()), "account_id": account["id"], "label": label,
                  "prefix": key[:len(KEY_PREFIX) + 6], "key_hash": hash_key(key), "created_at": iso(utcnow())}
        with self._tx() as db:
            db.execute("INSERT INTO api_keys (id, account_id, label, prefix, key_hash, created_at) "
                       "VALUES (:id, :account_id, :label, :prefix, :key_hash, :created_at)", record)
        return record, key

    def list_keys(self, account_name: Optional[str] = None) -> list[dict]:
        sql = ("SELECT k.id, k.label, k.prefix, k.created_at, k.last_used_at, k.revoked_at, a.name AS account "
               "FROM api_keys k JOIN accounts a ON a.id = k.account_id")
        if account_name:
            account = self.account(account_name)
            return self._all(sql + " WHERE k.account_id = ? ORDER BY k.created_at", (account["id"],))
        return self._all(sql + " ORDER BY a.name, k.created_at")

    def revoke_key(self, key_id: str) -> dict:
        with self._tx() as db:
            row = db.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? "
                             "RETURNING id, label, prefix, revoked_at", (iso(utcnow()), key_id)).fetchone()
        if row is None:
            raise InputError(f"no API key with id {key_id!r}")
        return dict(row)

    def authenticate(self, key: Optional[str]) -> dict:
        """The account of a valid, unrevoked key; AuthError otherwise.

        Revocation is checked on every request; ``last_used_at`` is written at most once a
        minute per key, so that polling clients do not queue on the database's write lock.
        """
        if not key:
            raise AuthError("missing API key: send X-API-Key or Authorization: Bearer")
        if not key.startswith(KEY_PREFIX):
            raise AuthError("invalid API key")
        row = self._one("SELECT k.id AS key_id, k.last_used_at, a.* FROM api_keys k JOIN accounts a "
                        "ON a.id = k.account_id WHERE k.key_hash = ? AND k.revoked_at IS NULL", (hash_key(key),))
        if row is None:
            raise AuthError("invalid or revoked API key")
        now = utcnow()
        if row["last_used_at"] is None or parse_iso(row["last_used_at"]) < now - timedelta(seconds=60):
            with self._tx() as db:
                db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (iso(now), row.pop("key_id")))
        return {k: row[k] for k in ("id", "name", "webhook_secret", "created_at")}

    # -- jobs ------------------------------------------------------------------------------------
    def insert_job(self, job: dict, window_h: float = 24.0) -> tuple[dict, bool]:
        """Store a queued job; with an idempotency key seen within ``window_h`` return that job instead.

        Returns (job, created). A key reused with a different request body is a ConflictError.
        """
        key = job.get("idempotency_key")
        with self._tx() as db:
            if key:
                old = db.execute("SELECT * FROM jobs WHERE account_id = ? AND idempotency_key = ?",
                                 (job["account_id"], key)).fetchone()
                if old is not None:
                    if parse_iso(old["created_at"]) > utcnow() - timedelta(hours=window_h):
                        if old["request_hash"] != job["request_hash"]:
                            raise ConflictError("this Idempotency-Key was used with a different request",
                                                idempotency_key=key)
                        return dict(old), False
                    db.execute("UPDATE jobs SET idempotency_key = NULL WHERE id = ?", (old["id"],))
            columns = ", ".join(job)
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({', '.join(':' + c for c in job)})", job)
        return self.job(job["id"]), True

    def job(self, job_id: str, account_id: Optional[str] = None) -> dict:
        """A job by id; with ``account_id`` only that account's (another's reads as unknown: 404)."""
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"no job {job_id}")
        return row

    def transition(self, job_id: str, to: str, *, where: str = "", params: Iterable[Any] = (),
                   db: Optional[sqlite3.Connection] = None, **fields: Any) -> Optional[dict]:
        """Move a job to ``to`` if its current state allows it (TRANSITIONS); return the new row or None.

        One UPDATE ... WHERE state IN (allowed sources) [AND where] RETURNING: atomic, so two
        processes racing on one job cannot both win. ``fields`` are set in the same statement
        (a ``_Raw`` value is an SQL expression; a ``_Raw`` job_id a subquery that picks the job).
        """
        sources = sorted(src for src, dst in TRANSITIONS if dst == to)
        if not sources:
            raise ValueError(f"no transition leads to {to!r}")
        sets, values = _expand(fields)
        target = f"id = {job_id}" if isinstance(job_id, _Raw) else "id = ?"
        sql = (f"UPDATE jobs SET {', '.join(['state = ?', *sets])} WHERE {target} "
               f"AND state IN ({', '.join('?' * len(sources))})" + (f" AND ({where})" if where else "")
               + " RETURNING *")
        args = (to, *values, *(() if isinstance(job_id, _Raw) else (job_id,)), *sources, *params)
        if db is not None:
            row = db.execute(sql, args).fetchone()
        else:
            with self._tx() as tx:
                row = tx.execute(sql, args).fetchone()
        return dict(row) if row else None

    def claim(self, worker_id: str) -> Optional[dict]:
        """Claim the oldest queued job for ``worker_id`` in one atomic UPDATE; None when the queue is empty."""
        return self.transition(_Raw("(SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, rowid LIMIT 1)"),
                               "processing", started_at=iso(utcnow()), heartbeat_at=time.time(),
                               worker_id=worker_id, current_step="starting", attempts=_Raw("attempts + 1"))

    def heartbeat(self, job_id: str, worker_id: str, current_step: Optional[str] = None) -> Optional[str]:
        """Refresh a running job's heartbeat (and step); return its state (``cancelled`` tells the worker to stop)."""
        with self._tx() as db:
            if current_step is None:
                db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND state = 'processing' AND worker_id = ?",
                           (time.time(), job_id, worker_id))
            else:
                db.execute("UPDATE jobs SET heartbeat_at = ?, current_step = ? WHERE id = ? "
                           "AND state = 'processing' AND worker_id = ?", (time.time(), current_step, job_id, worker_id))
            row = db.execute("SELECT state, worker_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return row["state"] if row["worker_id"] == worker_id or row["state"] != "processing" else "reassigned"

    def finish(self, job: dict, state: str, *, error_message: Optional[str] = None,
               warning_message: Optional[str] = None, pages: int = 0) -> Optional[dict]:
        """Move a processing job to done/failed; in the same transaction bill (done) and enqueue its webhook."""
        assert state in ("done", "failed")
        now = utcnow()
        with self._tx() as db:
            row = self.transition(job["id"], state, db=db, where="worker_id = ?", params=(job["worker_id"],),
                                  finished_at=iso(now), current_step=None, error_message=error_message,
                                  warning_message=warning_message, heartbeat_at=None)
            if row is None:
                return None  # cancelled (or re-queued) meanwhile: the outcome is dropped
            if state == "done":
                db.execute("INSERT INTO usage (account_id, month, pages, jobs) VALUES (?, ?, ?, 1) "
                           "ON CONFLICT (account_id, month) DO UPDATE SET pages = pages + excluded.pages, "
                           "jobs = jobs + 1", (row["account_id"], now.strftime("%Y-%m"), pages))
            if row["webhook_url"]:
                payload: dict[str, Any] = {"job_id": row["id"], "state": state, "page_count": row["page_count"]}
                if state == "done":
                    payload["result_url"] = result_url(row)
                db.execute("INSERT INTO webhook_deliveries (job_id, event, url, payload, delivery_id, "
                           "next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?)",
                           (row["id"], "job.completed" if state == "done" else "job.failed", row["webhook_url"],
                            json.dumps(payload, separators=(",", ":")), str(uuid.uuid4()), time.time(), iso(now)))
        return row

    def cancel(self, job_id: str, account_id: str) -> dict:
        job = self.job(job_id, account_id)
        row = self.transition(job_id, "cancelled", finished_at=iso(utcnow()), current_step=None)
        if row is None:
            raise ConflictError(f"job {job_id} is {self.job(job_id)['state']}; only queued or processing "
                                "jobs can be cancelled", state=job["state"])
        return row

    def requeue_stale(self, timeout_s: float, max_attempts: int) -> list[dict]:
        """Jobs whose worker stopped beating: re-queue them, or fail those already tried ``max_attempts`` times."""
        cutoff = time.time() - timeout_s
        stale = self._all("SELECT * FROM jobs WHERE state = 'processing' AND heartbeat_at < ?", (cutoff,))
        changed = []
        for job in stale:
            where, params = "heartbeat_at < ?", (cutoff,)
            if job["attempts"] >= max_attempts:
                row = self.finish(job, "failed", error_message=(
                    f"the worker processing this job stopped {job['attempts']} times (crash or kill); "
                    "the job was given up"))
            else:
                row = self.transition(job["id"], "queued", where=where, params=params, worker_id=None,
                                      heartbeat_at=None, current_step=None, started_at=None)
            if row:
                changed.append(row)
        return changed

    def release(self, job: dict) -> Optional[dict]:
        """A worker shutting down hands its running job back to the queue."""
        return self.transition(job["id"], "queued", where="worker_id = ?", params=(job["worker_id"],),
                               worker_id=None, heartbeat_at=None, current_step=None, started_at=None,
                               attempts=_Raw("MAX(attempts - 1, 0)"))

    def expired_jobs(self) -> list[dict]:
        return self._all("SELECT * FROM jobs WHERE state IN ('done','failed','cancelled') AND expires_at < ? "
                         "AND result_expired_at IS NULL", (iso(utcnow()),))

    def mark_expired(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET result_expired_at = ? WHERE id = ?", (iso(utcnow()), job_id))

    def usage(self, account_id: str) -> list[dict]:
        return self._all("SELECT month, pages, jobs FROM usage WHERE account_id = ? ORDER BY month", (account_id,))

    def list_jobs(self, account_id: str, limit: int = 100) -> list[dict]:
        """An account's newest jobs first."""
        return self._all("SELECT * FROM jobs WHERE account_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                         (account_id, limit))

    # -- webhook outbox --------------------------------------------------------------------------
    def claim_delivery(self, lease_s: float) -> Optional[dict]:
        """The next due delivery, leased for ``lease_s`` seconds so that no other worker sends it meanwhile."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = (SELECT id FROM webhook_deliveries "
                "WHERE delivered = 0 AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at LIMIT 1) RETURNING *", (now + lease_s, now)).fetchone()
        return dict(row) if row else None

    def record_attempt(self, delivery: dict, status: Optional[int], error: Optional[str], duration_ms: float,
                       next_attempt_at: Optional[float]) -> None:
        delivered = status is not None and 200 <= status < 300
        with self._tx() as db:
            db.execute("INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, error, "
                       "duration_ms) VALUES (?,?,?,?,?,?)",
                       (delivery["delivery_id"], delivery["attempt"] + 1, iso(utcnow()), status, error,
                        round(duration_ms, 1)))
            db.execute("UPDATE webhook_deliveries SET attempt = attempt + 1, last_status = ?, last_error = ?, "
                       "delivered = ?, next_attempt_at = ? WHERE id = ?",
                       (status, error, int(delivered), None if delivered else next_attempt_at, delivery["id"]))

    def webhook_summary(self, job_id: str) -> Optional[dict]:
        row = self._one("SELECT attempt, last_status, delivered FROM webhook_deliveries WHERE job_id = ? "
                        "ORDER BY id DESC LIMIT 1", (job_id,))
        if row is None:
            return None
        return {"attempts": row["attempt"], "last_status": row["last_status"], "delivered": bool(row["delivered"])}

    def list_deliveries(self, account_id: str, limit: int = 20) -> list[dict]:
        """An account's newest webhook deliveries first (one row per event; ``attempt`` counts its tries)."""
        return self._all("SELECT d.id, d.job_id, d.event, d.url, d.delivery_id, d.attempt, d.last_status, "
                         "d.last_error, d.delivered, d.next_attempt_at, d.created_at, "
                         "(SELECT MAX(a.attempted_at) FROM delivery_attempts a WHERE a.delivery_id = d.delivery_id) "
                         "AS last_attempt_at FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id "
                         "WHERE j.account_id = ? ORDER BY d.id DESC LIMIT ?", (account_id, limit))

    def redeliver(self, delivery_row_id: int, account_id: str) -> dict:
        """Send one of an account's deliveries again: a new outbox row (same event and payload, a new
        ``X-BIQE-Delivery`` id, the full retry schedule), due now. Another account's is a NotFoundError."""
        with self._tx() as db:
            old = db.execute("SELECT d.* FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id "
                             "WHERE d.id = ? AND j.account_id = ?", (delivery_row_id, account_id)).fetchone()
            if old is None:
                raise NotFoundError(f"no webhook delivery {delivery_row_id}")
            row = db.execute("INSERT INTO webhook_deliveries (job_id, event, url, payload, delivery_id, "
                             "next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?) RETURNING *",
                             (old["job_id"], old["event"], old["url"], old["payload"], str(uuid.uuid4()),
                              time.time(), iso(utcnow()))).fetchone()
        return dict(row)

    def attempts_log(self, job_id: str) -> list[dict]:
        return self._all("SELECT a.* FROM delivery_attempts a JOIN webhook_deliveries d "
                         "ON d.delivery_id = a.delivery_id WHERE d.job_id = ? ORDER BY a.id", (job_id,))


class _Raw(str):
    """A SQL expression (not a value) for Store.transition's fields."""


def _expand(fields: dict) -> tuple[list[str], list[Any]]:
    sets, values = [], []
    for key, value in fields.items():
        if isinstance(value, _Raw):
            sets.append(f"{key} = {value}")
        else:
            sets.append(f"{key} = ?")
            values.append(value)
    return sets, values


def status_url(job: dict) -> str:
    return f"{job['base_url'].rstrip('/')}/v1/process-scan/{job['id']}"


def result_url(job: dict) -> str:
    return status_url(job) + "/result"

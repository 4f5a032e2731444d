"""The job store: accounts, API keys, jobs, the webhook outbox and usage over SQLAlchemy; owns every state change."""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from sqlalchemy import (ColumnElement, Connection, Engine, case, func, insert, literal_column, or_, select, text,
                        update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError  # noqa: F401 - what a duplicate raises, on every database

from ..errors import AuthError, ConflictError, NotFoundError  # noqa: F401 - raised here, defined in errors
from ..errors import BiqeError, InputError
from .db import make_engine, upgrade as migrate
from .schema import accounts, api_keys, delivery_attempts, jobs, usage, webhook_deliveries

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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if dt else None


def parse_iso(value: Optional[str]) -> Optional[datetime]:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc) if value else None


def expiry_from(job: dict, ended: datetime) -> str:
    """A result's ``expires_at`` when its job ends at ``ended``: the span the job was given at submission
    (``expires_at - created_at``, BIQE_RESULT_TTL_HOURS then) counted from the end, not from the creation."""
    return iso(ended + (parse_iso(job["expires_at"]) - parse_iso(job["created_at"])))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """The job store over SQLAlchemy Core, on SQLite (WAL; the embedded default) or PostgreSQL.

    Safe to share between threads and processes: every state change is one atomic statement or
    one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: row locks, SKIP LOCKED for claims).
    The schema is migrated (Alembic) when a Store opens a database.
    """

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

    def close(self) -> None:
        """Nothing to do per thread: connections go back to the pool after each statement or transaction."""

    def dispose(self) -> None:
        """Close every pooled connection (the Store opens new ones if used again)."""
        self.engine.dispose()

    def _insert(self):
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)

    # -- accounts and keys -------------------------------------------------------------------
    def create_account(self, name: str) -> dict:
        if not name.strip():
            raise InputError("an account needs a name")
        account = {"id": str(uuid.uuid4()), "name": name, "webhook_secret": secrets.token_hex(32),
                   "created_at": iso(utcnow())}
        try:
            with self._tx() as db:
                db.execute(insert(accounts).values(**account))
        except IntegrityError as exc:
            raise InputError(f"an account named {name!r} exists already") from exc
        return account

    def account(self, name_or_id: str) -> dict:
        row = self._one(select(accounts).where(or_(accounts.c.name == name_or_id, accounts.c.id == name_or_id)))
        if row is None:
            raise InputError(f"no account named {name_or_id!r}")
        return row

    def account_by_id(self, account_id: str) -> dict:
        row = self._one(select(accounts).where(accounts.c.id == account_id))
        if row is None:
            raise NotFoundError(f"no account {account_id}")
        return row

    def rotate_secret(self, name: str) -> dict:
        account = self.account(name)
        secret = secrets.token_hex(32)
        with self._tx() as db:
            db.execute(update(accounts).where(accounts.c.id == account["id"]).values(webhook_secret=secret))
        return {**account, "webhook_secret": secret}

    def create_key(self, account_name: str, label: str) -> tuple[dict, str]:
        """A new API key; returns its record and the key itself, which is never stored (only its hash)."""
        account = self.account(account_name)
        key = KEY_PREFIX + secrets.token_urlsafe(30)
        record = {"id": str(uuid.uuid4()), "account_id": account["id"], "label": label,
                  "prefix": key[:len(KEY_PREFIX) + 6], "key_hash": hash_key(key), "created_at": iso(utcnow())}
        with self._tx() as db:
            db.execute(insert(api_keys).values(**record))
        return record, key

    def list_keys(self, account_name: Optional[str] = None) -> list[dict]:
        k = api_keys.c
        query = (select(k.id, k.label, k.prefix, k.created_at, k.last_used_at, k.revoked_at,
                        accounts.c.name.label("account")).join_from(api_keys, accounts))
        if account_name:
            account = self.account(account_name)
            return self._all(query.where(k.account_id == account["id"]).order_by(k.created_at))
        return self._all(query.order_by(accounts.c.name, k.created_at))

    def revoke_key(self, key_id: str) -> dict:
        k = api_keys.c
        with self._tx() as db:
            row = db.execute(update(api_keys).where(k.id == key_id)
                             .values(revoked_at=func.coalesce(k.revoked_at, iso(utcnow())))
                             .returning(k.id, k.label, k.prefix, k.revoked_at)).fetchone()
        if row is None:
            raise InputError(f"no API key with id {key_id!r}")
        return row

    def authenticate(self, key: Optional[str]) -> dict:
        """The account of a valid, unrevoked key; AuthError otherwise.

        Revocation is checked on every request; ``last_used_at`` is written at most once a
        minute per key, so that polling clients do not queue on the database's write lock.
        """
        if not key:
            raise AuthError("missing API key: send X-API-Key or Authorization: Bearer")
        if not key.startswith(KEY_PREFIX):
            raise AuthError("invalid API key")
        k = api_keys.c
        row = self._one(select(k.id.label("key_id"), k.last_used_at, accounts).join_from(api_keys, accounts)
                        .where(k.key_hash == hash_key(key), k.revoked_at.is_(None)))
        if row is None:
            raise AuthError("invalid or revoked API key")
        now = utcnow()
        if row["last_used_at"] is None or parse_iso(row["last_used_at"]) < now - timedelta(seconds=60):
            with self._tx() as db:
                db.execute(update(api_keys).where(k.id == row["key_id"]).values(last_used_at=iso(now)))
        return {k: row[k] for k in ("id", "name", "webhook_secret", "created_at")}

    # -- jobs ------------------------------------------------------------------------------------
    def insert_job(self, job: dict, window_h: float = 24.0) -> tuple[dict, bool]:
        """Store a queued job; with an idempotency key seen within ``window_h`` return that job instead.

        Returns (job, created). A key reused with a different request body is a ConflictError.
        """
        key = job.get("idempotency_key")
        with self._tx() as db:
            if key:
                old = db.execute(select(jobs).where(jobs.c.account_id == job["account_id"],
                                                    jobs.c.idempotency_key == key).with_for_update()).fetchone()
                if old is not None:
                    if parse_iso(old["created_at"]) > utcnow() - timedelta(hours=window_h):
                        if old["request_hash"] != job["request_hash"]:
                            raise ConflictError("this Idempotency-Key was used with a different request",
                                                idempotency_key=key)
                        return old, False
                    db.execute(update(jobs).where(jobs.c.id == old["id"]).values(idempotency_key=None))
            db.execute(insert(jobs).values(**job))
        return self.job(job["id"]), True

    def job(self, job_id: str, account_id: Optional[str] = None) -> dict:
        """A job by id; with ``account_id`` only that account's (another's reads as unknown: 404)."""
        row = self._one(select(jobs).where(jobs.c.id == job_id))
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"no job {job_id}")
        return row

    def transition(self, job_id: Any, to: str, *, where: Optional[ColumnElement] = None,
                   db: Optional["_Db"] = None, **fields: Any) -> Optional[dict]:
        """Move a job to ``to`` if its current state allows it (TRANSITIONS); return the new row or None.

        One UPDATE ... WHERE state IN (allowed sources) [AND where] RETURNING: atomic, so two
        processes racing on one job cannot both win. ``fields`` are set in the same statement
        (values or SQLAlchemy expressions); ``job_id`` may be a scalar subquery that picks the job.
        """
        sources = sorted(src for src, dst in TRANSITIONS if dst == to)
        if not sources:
            raise ValueError(f"no transition leads to {to!r}")
        conditions = [jobs.c.id == job_id, jobs.c.state.in_(sources)] + ([where] if where is not None else [])
        statement = update(jobs).where(*conditions).values(state=to, **fields).returning(*jobs.c)
        if db is not None:
            return db.execute(statement).fetchone()
        with self._tx() as tx:
            return tx.execute(statement).fetchone()

    def claim(self, worker_id: str, job_id: Optional[str] = None) -> Optional[dict]:
        """Claim a queued job for ``worker_id`` in one atomic UPDATE: ``job_id`` (a Celery task's job) or else
        the oldest queued one (PostgreSQL: FOR UPDATE SKIP LOCKED, so claimers never wait on each other).
        None when there is none (or ``job_id`` is no longer queued: cancelled, or taken by another task)."""
        target: Any = job_id
        if job_id is None:
            oldest = (select(jobs.c.id).where(jobs.c.state == "queued").order_by(jobs.c.created_at, self._seq)
                      .limit(1))
            if self.dialect == "postgresql":
                oldest = oldest.with_for_update(skip_locked=True)
            target = oldest.scalar_subquery()
        return self.transition(target, "processing", started_at=iso(utcnow()), heartbeat_at=time.time(),
                               worker_id=worker_id, current_step="starting", attempts=jobs.c.attempts + 1)

    def heartbeat(self, job_id: str, worker_id: str, current_step: Optional[str] = None) -> Optional[str]:
        """Refresh a running job's heartbeat (and step); return its state (``cancelled`` tells the worker to stop)."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if current_step is not None:
            values["current_step"] = current_step
        with self._tx() as db:
            db.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "processing",
                                          jobs.c.worker_id == worker_id).values(**values))
            row = db.execute(select(jobs.c.state, jobs.c.worker_id).where(jobs.c.id == job_id)).fetchone()
        if row is None:
            return None
        return row["state"] if row["worker_id"] == worker_id or row["state"] != "processing" else "reassigned"

    def finish(self, job: dict, state: str, *, error_message: Optional[str] = None,
               warning_message: Optional[str] = None, pages: int = 0) -> Optional[dict]:
        """Move a processing job to done/failed; in the same transaction bill (done) and enqueue its webhook."""
        assert state in ("done", "failed")
        now = utcnow()
        with self._tx() as db:
            row = self.transition(job["id"], state, db=db, where=jobs.c.worker_id == job["worker_id"],
                                  finished_at=iso(now), expires_at=expiry_from(job, now), current_step=None,
                                  error_message=error_message,
                                  warning_message=warning_message, heartbeat_at=None)
            if row is None:
                return None  # cancelled (or re-queued) meanwhile: the outcome is dropped
            if state == "done":
                bill = self._insert()(usage).values(account_id=row["account_id"], month=now.strftime("%Y-%m"),
                                                    pages=pages, jobs=1)
                db.execute(bill.on_conflict_do_update(
                    index_elements=[usage.c.account_id, usage.c.month],
                    set_={"pages": usage.c.pages + bill.excluded.pages, "jobs": usage.c.jobs + 1}))
            if row["webhook_url"]:
                payload: dict[str, Any] = {"job_id": row["id"], "state": state, "page_count": row["page_count"]}
                if state == "done":
                    payload["result_url"] = result_url(row)
                db.execute(insert(webhook_deliveries).values(
                    job_id=row["id"], event="job.completed" if state == "done" else "job.failed",
                    url=row["webhook_url"], payload=json.dumps(payload, separators=(",", ":")),
                    delivery_id=str(uuid.uuid4()), next_attempt_at=time.time(), created_at=iso(now)))
        return row

    def cancel(self, job_id: str, account_id: str) -> dict:
        job = self.job(job_id, account_id)
        now = utcnow()
        row = self.transition(job_id, "cancelled", finished_at=iso(now), expires_at=expiry_from(job, now),
                              current_step=None)
        if row is None:
            raise ConflictError(f"job {job_id} is {self.job(job_id)['state']}; only queued or processing "
                                "jobs can be cancelled", state=job["state"])
        return row

    def requeue_stale(self, timeout_s: float, max_attempts: int) -> list[dict]:
        """Jobs whose worker stopped beating: re-queue them, or fail those already tried ``max_attempts`` times."""
        cutoff = time.time() - timeout_s
        stale = self._all(select(jobs).where(jobs.c.state == "processing", jobs.c.heartbeat_at < cutoff))
        changed = []
        for job in stale:
            if job["attempts"] >= max_attempts:
                row = self.finish(job, "failed", error_message=(
                    f"the worker processing this job stopped {job['attempts']} times (crash or kill); "
                    "the job was given up"))
            else:
                row = self.transition(job["id"], "queued", where=jobs.c.heartbeat_at < cutoff, worker_id=None,
                                      heartbeat_at=None, current_step=None, started_at=None, dispatched_at=None)
            if row:
                changed.append(row)
        return changed

    def release(self, job: dict) -> Optional[dict]:
        """A worker shutting down hands its running job back to the queue."""
        return self.transition(job["id"], "queued", where=jobs.c.worker_id == job["worker_id"],
                               worker_id=None, heartbeat_at=None, current_step=None, started_at=None,
                               dispatched_at=None,
                               attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0))

    def mark_dispatched(self, job_id: str) -> None:
        """Its Celery task was sent (the queue need not send it again)."""
        with self._tx() as db:
            db.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued")
                       .values(dispatched_at=time.time()))

    def undispatched_jobs(self, limit: int = 500) -> list[str]:
        """Queued jobs whose task was never sent (broker down at submission) or must be sent again (re-queued)."""
        rows = self._all(select(jobs.c.id).where(jobs.c.state == "queued", jobs.c.dispatched_at.is_(None))
                         .order_by(jobs.c.created_at, self._seq).limit(limit))
        return [row["id"] for row in rows]

    def expired_jobs(self) -> list[dict]:
        return self._all(select(jobs).where(jobs.c.state.in_(sorted(TERMINAL)), jobs.c.expires_at < iso(utcnow()),
                                            jobs.c.result_expired_at.is_(None)))

    def mark_expired(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute(update(jobs).where(jobs.c.id == job_id).values(result_expired_at=iso(utcnow())))

    def usage(self, account_id: str) -> list[dict]:
        return self._all(select(usage.c.month, usage.c.pages, usage.c.jobs).where(usage.c.account_id == account_id)
                         .order_by(usage.c.month))

    def list_jobs(self, account_id: str, limit: int = 100) -> list[dict]:
        """An account's newest jobs first."""
        return self._all(select(jobs).where(jobs.c.account_id == account_id)
                         .order_by(jobs.c.created_at.desc(), self._seq.desc()).limit(limit))

    # -- webhook outbox --------------------------------------------------------------------------
    def claim_delivery(self, lease_s: float, delivery_row_id: Optional[int] = None) -> Optional[dict]:
        """The next due delivery (or ``delivery_row_id`` if it is due), leased for ``lease_s`` seconds so that
        no other worker sends it meanwhile; None when nothing is due."""
        now = time.time()
        d = webhook_deliveries.c
        due = [d.delivered == 0, d.next_attempt_at.isnot(None), d.next_attempt_at <= now]
        if delivery_row_id is not None:
            target: Any = delivery_row_id
        else:
            first = select(d.id).where(*due).order_by(d.next_attempt_at).limit(1)
            if self.dialect == "postgresql":
                first = first.with_for_update(skip_locked=True)
            target = first.scalar_subquery()
        with self._tx() as db:
            return db.execute(update(webhook_deliveries).where(d.id == target, *due)
                              .values(next_attempt_at=now + lease_s).returning(*webhook_deliveries.c)).fetchone()

    def record_attempt(self, delivery: dict, status: Optional[int], error: Optional[str], duration_ms: float,
                       next_attempt_at: Optional[float]) -> None:
        delivered = status is not None and 200 <= status < 300
        with self._tx() as db:
            db.execute(insert(delivery_attempts).values(
                delivery_id=delivery["delivery_id"], attempt=delivery["attempt"] + 1, attempted_at=iso(utcnow()),
                status_code=status, error=error, duration_ms=round(duration_ms, 1)))
            db.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery["id"]).values(
                attempt=webhook_deliveries.c.attempt + 1, last_status=status, last_error=error,
                delivered=int(delivered), next_attempt_at=None if delivered else next_attempt_at))

    def pending_deliveries(self, job_id: str) -> list[int]:
        """Row ids of a job's deliveries still to be sent."""
        d = webhook_deliveries.c
        rows = self._all(select(d.id).where(d.job_id == job_id, d.delivered == 0, d.next_attempt_at.isnot(None)))
        return [row["id"] for row in rows]

    def restamp_overdue_deliveries(self, grace_s: float, limit: int = 500) -> list[int]:
        """Deliveries due for more than ``grace_s`` (their task was lost, or never sent: a portal redelivery):
        made due now again, each by one process only; returns their row ids, for the queue to send."""
        now = time.time()
        d = webhook_deliveries.c
        overdue = self._all(select(d.id, d.next_attempt_at).where(
            d.delivered == 0, d.next_attempt_at.isnot(None), d.next_attempt_at < now - grace_s).limit(limit))
        stamped = []
        with self._tx() as db:
            for row in overdue:
                if db.execute(update(webhook_deliveries).where(d.id == row["id"],
                                                               d.next_attempt_at == row["next_attempt_at"])
                              .values(next_attempt_at=now)).rowcount == 1:
                    stamped.append(row["id"])
        return stamped

    def webhook_summary(self, job_id: str) -> Optional[dict]:
        d = webhook_deliveries.c
        row = self._one(select(d.attempt, d.last_status, d.delivered).where(d.job_id == job_id)
                        .order_by(d.id.desc()).limit(1))
        if row is None:
            return None
        return {"attempts": row["attempt"], "last_status": row["last_status"], "delivered": bool(row["delivered"])}

    def list_deliveries(self, account_id: str, limit: int = 20) -> list[dict]:
        """An account's newest webhook deliveries first (one row per event; ``attempt`` counts its tries)."""
        d, a = webhook_deliveries.c, delivery_attempts.c
        last_attempt = (select(func.max(a.attempted_at)).where(a.delivery_id == d.delivery_id)
                        .scalar_subquery().label("last_attempt_at"))
        return self._all(select(d.id, d.job_id, d.event, d.url, d.delivery_id, d.attempt, d.last_status,
                                d.last_error, d.delivered, d.next_attempt_at, d.created_at, last_attempt)
                         .join_from(webhook_deliveries, jobs).where(jobs.c.account_id == account_id)
                         .order_by(d.id.desc()).limit(limit))

    def redeliver(self, delivery_row_id: int, account_id: str) -> dict:
        """Send one of an account's deliveries again: a new outbox row (same event and payload, a new
        ``X-BIQE-Delivery`` id, the full retry schedule), due now. Another account's is a NotFoundError."""
        d = webhook_deliveries.c
        with self._tx() as db:
            old = db.execute(select(webhook_deliveries).join_from(webhook_deliveries, jobs)
                             .where(d.id == delivery_row_id, jobs.c.account_id == account_id)).fetchone()
            if old is None:
                raise NotFoundError(f"no webhook delivery {delivery_row_id}")
            return db.execute(insert(webhook_deliveries).values(
                job_id=old["job_id"], event=old["event"], url=old["url"], payload=old["payload"],
                delivery_id=str(uuid.uuid4()), next_attempt_at=time.time(), created_at=iso(utcnow()))
                .returning(*webhook_deliveries.c)).fetchone()

    def attempts_log(self, job_id: str) -> list[dict]:
        d = webhook_deliveries.c
        return self._all(select(delivery_attempts).join(webhook_deliveries,
                                                        d.delivery_id == delivery_attempts.c.delivery_id)
                         .where(d.job_id == job_id).order_by(delivery_attempts.c.id))


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


def status_url(job: dict) -> str:
    return f"{job['base_url'].rstrip('/')}/v1/process-scan/{job['id']}"


def result_url(job: dict) -> str:
    return status_url(job) + "/result"

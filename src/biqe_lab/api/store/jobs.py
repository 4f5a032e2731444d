"""Jobs: submission (idempotent), the one table of state transitions, claims, heartbeats, ends, expiry."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlalchemy import ColumnElement, case, insert, select, update

from ...errors import ConflictError, NotFoundError
from ..schema import jobs
from .base import StoreBase, _Db, iso, parse_iso, utcnow
from .outbox import enqueue
from .usage import bill

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


def expiry_from(job: dict, ended: datetime) -> str:
    """A result's ``expires_at`` when its job ends at ``ended``: the span the job was given at submission
    (``expires_at - created_at``, BIQE_RESULT_TTL_HOURS then) counted from the end, not from the creation."""
    return iso(ended + (parse_iso(job["expires_at"]) - parse_iso(job["created_at"])))


def status_url(job: dict) -> str:
    return f"{job['base_url'].rstrip('/')}/v1/process-scan/{job['id']}"


def result_url(job: dict) -> str:
    return status_url(job) + "/result"


class Jobs(StoreBase):
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
                   db: Optional[_Db] = None, **fields: Any) -> Optional[dict]:
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
                bill(db, self.dialect, row["account_id"], pages, now)
            if row["webhook_url"]:
                payload: dict[str, Any] = {"job_id": row["id"], "state": state, "page_count": row["page_count"]}
                if state == "done":
                    payload["result_url"] = result_url(row)
                enqueue(db, row, "job.completed" if state == "done" else "job.failed", payload, now)
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

    def list_jobs(self, account_id: str, limit: int = 100) -> list[dict]:
        """An account's newest jobs first."""
        return self._all(select(jobs).where(jobs.c.account_id == account_id)
                         .order_by(jobs.c.created_at.desc(), self._seq.desc()).limit(limit))

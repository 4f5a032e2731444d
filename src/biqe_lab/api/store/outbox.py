"""The webhook outbox: deliveries enqueued with a job's end, leased, attempted, retried and listed."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import func, insert, select, update

from ...errors import NotFoundError
from ..schema import delivery_attempts, jobs, webhook_deliveries
from .base import StoreBase, _Db, iso, utcnow


def enqueue(db: _Db, job: dict, event: str, payload: dict, now: datetime) -> None:
    """A job's webhook delivery, due now, in the caller's transaction (the job's end and its event commit together)."""
    db.execute(insert(webhook_deliveries).values(
        job_id=job["id"], event=event, url=job["webhook_url"], payload=json.dumps(payload, separators=(",", ":")),
        delivery_id=str(uuid.uuid4()), next_attempt_at=time.time(), created_at=iso(now)))


class Outbox(StoreBase):
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

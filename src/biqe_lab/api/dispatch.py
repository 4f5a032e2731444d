"""How jobs reach workers: the embedded default (workers poll the store) or Celery tasks on a Redis broker."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("biqe_lab.dispatch")

JOBS_QUEUE = "biqe.jobs"
WEBHOOKS_QUEUE = "biqe.webhooks"
RUN_JOB = "biqe.run_job"
DELIVER_WEBHOOK = "biqe.deliver_webhook"
# A delivery due this long without being sent lost its task (or never had one: a portal redelivery).
OVERDUE_GRACE_S = 60.0


class LocalDispatcher:
    """The embedded default (BIQE_QUEUE=local): workers poll the job store and the webhook outbox; nothing is sent."""

    def enqueue(self, job_id: str) -> None:
        """A job is queued (new, or handed back): make a worker run it."""

    def revoke(self, job_id: str) -> None:
        """A job was cancelled: drop its pending task (a running one stops at its next page or step)."""

    def job_finished(self, job: dict) -> None:
        """A job reached done/failed: send its webhook deliveries."""

    def send_delivery(self, delivery_row_id: int, countdown: float = 0.0) -> None:
        """Attempt one outbox delivery in ``countdown`` seconds."""

    def reconcile(self) -> None:
        """Send what the queue lost or never got (jobs not dispatched, overdue deliveries)."""


class CeleryDispatcher(LocalDispatcher):
    """BIQE_QUEUE=celery: one task per job (its id is the job id, so a cancel can revoke it) and one per
    delivery attempt. The store stays the truth: a task whose job is no longer queued does nothing, so
    a task sent twice runs the job once."""

    def __init__(self, settings: Settings, store: Store, celery: Optional["Celery"] = None) -> None:
        self.settings, self.store = settings, store
        self.celery = celery or make_celery(settings)

    def enqueue(self, job_id: str) -> None:
        try:
            self.celery.send_task(RUN_JOB, args=[job_id], task_id=job_id, queue=JOBS_QUEUE)
        except Exception as exc:  # noqa: BLE001 - the job stays queued, undispatched: reconcile() sends it
            log.warning("could not send job %s to the broker (sent again later): %s", job_id, exc)
            return
        self.store.mark_dispatched(job_id)

    def revoke(self, job_id: str) -> None:
        try:
            self.celery.control.revoke(job_id)
        except Exception as exc:  # noqa: BLE001 - the task will find the job cancelled and do nothing
            log.warning("could not revoke job %s's task: %s", job_id, exc)

    def job_finished(self, job: dict) -> None:
        for delivery_row_id in self.store.pending_deliveries(job["id"]):
            self.send_delivery(delivery_row_id)

    def send_delivery(self, delivery_row_id: int, countdown: float = 0.0) -> None:
        try:
            self.celery.send_task(DELIVER_WEBHOOK, args=[delivery_row_id], queue=WEBHOOKS_QUEUE,
                                  countdown=max(0.0, countdown) or None)
        except Exception as exc:  # noqa: BLE001 - still due in the outbox: reconcile() sends it
            log.warning("could not send webhook delivery %s to the broker: %s", delivery_row_id, exc)

    def reconcile(self) -> None:
        for job_id in self.store.undispatched_jobs():
            self.enqueue(job_id)
        for delivery_row_id in self.store.restamp_overdue_deliveries(OVERDUE_GRACE_S):
            self.send_delivery(delivery_row_id)


def make_celery(settings: Settings) -> "Celery":
    """The Celery app of BIQE_BROKER_URL: late acks (a task whose worker died is delivered again), one
    task prefetched per worker (a long job does not hold others back), no result backend (the store
    holds the outcome)."""
    from celery import Celery

    celery = Celery("biqe_lab", broker=settings.broker_url, set_as_current=False)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=JOBS_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 2.0},
        worker_hijack_root_logger=False,
    )
    return celery


def make_dispatcher(settings: Settings, store: Store) -> LocalDispatcher:
    """The dispatcher of BIQE_QUEUE."""
    return CeleryDispatcher(settings, store) if settings.queue == "celery" else LocalDispatcher()

"""`biqe-lab worker --queue celery`: a Celery worker whose tasks run jobs and webhook deliveries with Worker's code."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Optional

from ..pipeline import PipelineConfig
from .dispatch import DELIVER_WEBHOOK, JOBS_QUEUE, RUN_JOB, WEBHOOKS_QUEUE, CeleryDispatcher, make_celery
from .settings import Settings
from .worker import Worker

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("biqe_lab.celery")


class CeleryWorker:
    """One Celery worker process: its Worker (models loaded once), its tasks, and a maintenance thread that
    re-queues jobs of dead workers, sweeps expired results and re-sends what the broker lost."""

    def __init__(self, settings: Settings, config: Optional[PipelineConfig] = None) -> None:
        self.settings = settings
        self.celery: "Celery" = make_celery(settings)
        self.worker = Worker(settings, config)
        self.worker.dispatcher = CeleryDispatcher(settings, self.worker.store, self.celery)
        self._stop = threading.Event()
        self._register_tasks()

    def _register_tasks(self) -> None:
        worker = self.worker

        @self.celery.task(name=RUN_JOB, acks_late=True, ignore_result=True)
        def run_job(job_id: str) -> str:
            """Claim this job (if still queued: a cancel or a duplicate task finds it otherwise) and run it."""
            job = worker.store.claim(worker.worker_id, job_id=job_id)
            if job is None:
                return "skipped"
            row = worker.process(job)
            return row["state"] if row else "dropped"

        @self.celery.task(name=DELIVER_WEBHOOK, acks_late=True, ignore_result=True)
        def deliver_webhook(delivery_row_id: int) -> str:
            """One attempt of one outbox delivery (if due); the next attempt is a new task on the back-off."""
            delivery = worker.store.claim_delivery(worker.settings.webhook_timeout_s + 30, delivery_row_id)
            if delivery is None:
                return "not due"
            next_at = worker.deliver(delivery)
            if next_at is not None:
                worker.dispatcher.send_delivery(delivery_row_id, countdown=next_at - time.time())
            return "retry" if next_at is not None else "done"

    def maintenance_loop(self) -> None:
        interval = max(self.settings.poll_interval_s, 5.0)
        while not self._stop.wait(interval):
            try:
                self.worker.maintenance()
            except Exception:  # noqa: BLE001 - keep maintaining
                log.exception("maintenance")

    def run(self, only: Optional[str] = None, concurrency: int = 8) -> None:
        """Consume jobs and webhooks (one job at a time: the solo pool), or ``only`` one kind; returns on
        SIGTERM/SIGINT, after handing a running job back to the queue at its next page or step."""
        from celery import signals

        queues = {"jobs": [JOBS_QUEUE], "webhooks": [WEBHOOKS_QUEUE]}.get(only or "", [JOBS_QUEUE, WEBHOOKS_QUEUE])
        if JOBS_QUEUE in queues:
            try:
                self.worker.warm_up()
            except Exception as exc:  # noqa: BLE001 - jobs will fail with this message; the worker stays up
                log.error("cannot load the pipeline models: %s", exc)
        signals.worker_shutting_down.connect(lambda **_: self._shutdown(), weak=False)
        maintenance = threading.Thread(target=self.maintenance_loop, daemon=True, name="maintenance")
        maintenance.start()
        pool = ["--pool=solo"] if JOBS_QUEUE in queues else ["--pool=threads", f"--concurrency={concurrency}"]
        name = f"biqe-{only or 'all'}-{os.getpid()}@{socket.gethostname()}"
        log.info("celery worker %s (store worker id %s) on %s", name, self.worker.worker_id, ",".join(queues))
        try:
            self.celery.worker_main(["worker", *pool, f"--queues={','.join(queues)}", f"--hostname={name}",
                                     "--loglevel=INFO", "--without-gossip", "--without-mingle"])
        finally:
            self._shutdown()
            maintenance.join(timeout=5)

    def _shutdown(self) -> None:
        self._stop.set()
        self.worker.stop()  # a running job stops at its next page or step and is handed back (re-sent)


def run_celery_worker(settings: Optional[Settings] = None, config: Optional[PipelineConfig] = None,
                      only: Optional[str] = None) -> None:
    """The `biqe-lab worker --queue celery` process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or Settings.from_env()
    if settings.db_url.startswith("sqlite"):
        log.warning("the job store is SQLite (no BIQE_DATABASE_URL): fine on one machine; workers on other "
                    "machines need PostgreSQL (SQLite's locks do not work over a network file system)")
    CeleryWorker(settings, config).run(only)

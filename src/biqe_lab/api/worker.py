"""The worker: claims jobs, runs the pipeline, writes result.zip, re-queues dead jobs, sweeps, sends webhooks."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Optional

import httpx

from ..errors import BiqeError, CancelledError, InputError
from ..ingest import ingest
from ..pipeline import PipelineConfig, configure, run_pipeline, steps_for
from ..progress import CancelToken
from .dispatch import LocalDispatcher
from .settings import Settings
from .store import Store
from .validation import parse_webhook_url, public_addresses, webhook_host, webhook_port

log = logging.getLogger("biqe_lab.worker")

LAYOUT_ONLY_WARNING = "recognition was not requested: the lines carry no text"


def sign(secret: str, body: bytes) -> str:
    """X-BIQE-Signature: lowercase hex HMAC-SHA256 of the raw body, keyed with the account's secret (as text)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_v2(secret: str, timestamp: str, body: bytes) -> str:
    """X-BIQE-Signature-V2: ``t=<ts>,v1=<hex HMAC of "<ts>.<raw body>">``."""
    return f"t={timestamp},v1={sign(secret, timestamp.encode() + b'.' + body)}"


class JobProgress:
    """The runner's Progress for one job: writes current_step and the heartbeat, and notices a cancel."""

    def __init__(self, store: Store, job: dict, cancel: CancelToken) -> None:
        self.store, self.job, self.cancel = store, job, cancel
        self.total = job["page_count"]

    def start(self, total_pages: int) -> None:
        self.total = total_pages

    def step(self, page_index: int, page_name: str, step: str) -> None:
        label = "export" if step == "export" else f"{step} (page {page_index + 1}/{self.total}: {page_name})"
        if self.store.heartbeat(self.job["id"], self.job["worker_id"], label) != "processing":
            self.cancel.cancel()

    def page_done(self, page_index: int) -> None:
        pass

    def finish(self) -> None:
        pass


class Heartbeat(threading.Thread):
    """Beats for a running job every few seconds (a kraken page takes longer than the timeout allows
    between steps) and cancels the job's token when its state is no longer ``processing``."""

    def __init__(self, store: Store, job: dict, cancel: CancelToken, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job['id'][:8]}")
        self.store, self.job, self.cancel, self.interval = store, job, cancel, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            if self.store.heartbeat(self.job["id"], self.job["worker_id"]) != "processing":
                self.cancel.cancel()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _safe_name(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem).strip("._") or "scan"
    return stem[:80]


def _zip_folder(folder: Path, target: Path) -> None:
    """``folder``'s files into ``target`` (written beside it under a name of its own, flushed to disk, then
    renamed: a reader, on any machine that mounts the data directory, never sees half a ZIP)."""
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    archive.write(path, path.relative_to(folder).as_posix())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class Worker:
    """One worker process's loop; models load once (``warm_up``), jobs run one at a time."""

    def __init__(self, settings: Settings, config: Optional[PipelineConfig] = None,
                 store: Optional[Store] = None, worker_id: Optional[str] = None,
                 dispatcher: Optional[LocalDispatcher] = None) -> None:
        self.settings = settings
        self.config = config or worker_config(settings)
        self.store = store or Store(settings.db_url)
        self.dispatcher = dispatcher or LocalDispatcher()  # BIQE_QUEUE=celery: biqe_lab.api.celery_worker's
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self._cancel: Optional[CancelToken] = None
        self._last_maintenance = 0.0
        self._client: Optional[httpx.Client] = None

    # -- jobs --------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the pipeline's models now rather than on the first job (lru-cached per process)."""
        steps_for(self.config)

    def run_once(self) -> bool:
        """Maintenance when due, then claim and run one job; False when the queue was empty."""
        if time.monotonic() - self._last_maintenance > max(self.settings.poll_interval_s, 5.0):
            self.maintenance()
        job = self.store.claim(self.worker_id)
        if job is None:
            return False
        self.process(job)
        return True

    def maintenance(self) -> None:
        self._last_maintenance = time.monotonic()
        for job in self.store.requeue_stale(self.settings.heartbeat_timeout_s, self.settings.max_attempts):
            log.warning("job %s had a dead worker: now %s", job["id"], job["state"])
            if job["state"] == "queued":
                self.dispatcher.enqueue(job["id"])
            else:
                self.dispatcher.job_finished(job)
        self.sweep()
        self.dispatcher.reconcile()

    def job_config(self, job: dict) -> PipelineConfig:
        """The worker's configuration with the job's steps, correction tier, preset and PDF format."""
        steps = tuple(job["pipeline_steps"].split(","))
        return configure(self.config, steps=steps, preset=job["preset"], pdf=job["pdf_format"],
                         correction=job["llm_tier"] if "correction" in steps else "none")

    def process(self, job: dict) -> Optional[dict]:
        """Run one claimed job to done/failed (or drop it when cancelled meanwhile); return its final row."""
        folder = self.settings.jobs_dir / job["id"]
        out = folder / "out"
        steps = job["pipeline_steps"].split(",")
        cancel = self._cancel = CancelToken()
        if self.stopping.is_set():  # stop() came between the claim and now
            cancel.cancel()
        beat = Heartbeat(self.store, job, cancel, self.settings.heartbeat_interval_s)
        beat.start()
        try:
            filename = json.loads(job["options"] or "{}").get("filename", "scan.zip")
            document = ingest(folder / "input", with_ground_truth=True, name=_safe_name(filename))
            shutil.rmtree(out, ignore_errors=True)  # a previous attempt's files
            document = run_pipeline(document, self.job_config(job), out=out,
                                    progress=JobProgress(self.store, job, cancel), cancel=cancel)
            warnings = ([] if "recognition" in steps else [LAYOUT_ONLY_WARNING]) + document.warnings()
            cancel.check("before packing the result")
            _zip_folder(out, folder / "result.zip")
            row = self._finish(job, "done", warning_message="; ".join(warnings) or None,
                               pages=len(document.pages))
            if row is None and self.store.job(job["id"])["state"] == "cancelled":
                (folder / "result.zip").unlink(missing_ok=True)  # cancelled while packing: no result
            return row
        except CancelledError:
            if self.stopping.is_set():
                log.info("job %s handed back to the queue (worker shutting down)", job["id"])
                row = self.store.release(job)
                if row is not None:
                    self.dispatcher.enqueue(row["id"])
                return row
            self._log_lost(job)
            return None
        except BiqeError as exc:  # the worker's error translator: the job's error_message
            return self._finish(job, "failed", error_message=self._scrub(f"{exc.code}: {exc.message}", folder))
        except Exception as exc:  # noqa: BLE001 - a bug must fail the job, not kill the worker
            log.exception("job %s crashed", job["id"])
            return self._finish(job, "failed", error_message=self._scrub(
                f"internal error: {type(exc).__name__}: {exc}", folder))
        finally:
            beat.stop()
            self._cancel = None

    @staticmethod
    def _scrub(message: str, folder: Path) -> str:
        """A job's error message names its files as they are inside the job (``input/p1.png``), no server path."""
        for form in sorted({str(folder), str(folder.resolve())}, key=len, reverse=True):
            message = message.replace(form + os.sep, "").replace(form, "the job's folder")
        return message

    def _log_lost(self, job: dict, outcome: str = "") -> None:
        """Say why this worker no longer owns a job it was running (the job's row tells)."""
        try:
            now = self.store.job(job["id"])
        except BiqeError:
            now = None
        dropped = f"; its {outcome} outcome is dropped" if outcome else ""
        stale = (f"this worker's heartbeat was older than {self.settings.heartbeat_timeout_s:g} s, so another "
                 "worker's maintenance queued it again")
        if now is None:
            why = "the job no longer exists"
        elif now["state"] == "cancelled":
            why = "cancelled by its owner"
        elif now["state"] == "processing" and now["worker_id"] != job["worker_id"]:
            why = f"taken over by worker {now['worker_id']} ({stale})"
        elif now["state"] == "queued":
            why = f"queued again for another worker ({stale})"
        elif now["state"] in ("done", "failed"):
            why = f"already {now['state']} by another worker" + (f": {now['error_message']}" if now["error_message"]
                                                                 else "")
        else:
            why = f"its state is now {now['state']}"
        level = logging.INFO if now is not None and now["state"] == "cancelled" else logging.WARNING
        log.log(level, "job %s stopped: %s%s", job["id"], why, dropped)

    def _finish(self, job: dict, state: str, **fields) -> Optional[dict]:
        row = self.store.finish(job, state, **fields)
        if row is None:
            self._log_lost(job, state)
        else:
            log.info("job %s %s", job["id"], state)
            self.dispatcher.job_finished(row)
        return row

    def sweep(self) -> int:
        """Delete the files of jobs past ``expires_at`` (the job then says ``result_expired``); old temp uploads."""
        count = 0
        for job in self.store.expired_jobs():
            shutil.rmtree(self.settings.jobs_dir / job["id"], ignore_errors=True)
            self.store.mark_expired(job["id"])
            count += 1
        cutoff = time.time() - 3600
        if self.settings.tmp_dir.is_dir():
            for entry in self.settings.tmp_dir.iterdir():
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
        return count

    # -- webhooks ------------------------------------------------------------------------------------
    def deliver_due(self) -> int:
        """Send every due webhook delivery once; return how many were attempted."""
        sent = 0
        while (delivery := self.store.claim_delivery(self.settings.webhook_timeout_s + 30)) is not None:
            self.deliver(delivery)
            sent += 1
        return sent

    def deliver(self, delivery: dict) -> Optional[float]:
        """Attempt one delivery and log it; return when the next attempt is due (None: delivered or given up)."""
        job = self.store.job(delivery["job_id"])
        secret = self.store.account_by_id(job["account_id"])["webhook_secret"]
        body = delivery["payload"].encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-BIQE-Event": delivery["event"],
                   "X-BIQE-Signature": sign(secret, body), "X-BIQE-Delivery": delivery["delivery_id"],
                   "X-BIQE-Timestamp": timestamp, "X-BIQE-Signature-V2": sign_v2(secret, timestamp, body),
                   "User-Agent": "biqe-webhooks/1"}
        status: Optional[int] = None
        error: Optional[str] = None
        t0 = time.perf_counter()
        try:
            status = self._post(delivery["url"], body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Exception as exc:  # noqa: BLE001 - whatever went wrong is a failed attempt, on the schedule
            error = f"{type(exc).__name__}: {exc}"[:500]
        made = delivery["attempt"] + 1
        backoff = self.settings.webhook_backoff
        next_at = time.time() + backoff[made - 1] if made <= len(backoff) else None
        self.store.record_attempt(delivery, status, error, (time.perf_counter() - t0) * 1000, next_at)
        if error:
            log.warning("webhook %s attempt %d failed: %s%s", delivery["delivery_id"], made, error,
                        "" if next_at else " (giving up)")
        return next_at if error else None

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST a delivery; its status code. Without BIQE_ALLOW_INSECURE_WEBHOOKS the host is resolved once, every
        address checked public (DNS may have changed since submission), and the request goes to a checked address
        (Host header and TLS server name stay the URL's): nothing resolves the name again between check and
        connect. Connections are not kept alive (one for another host on the same address must not be reused)."""
        parsed = parse_webhook_url(url)
        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False,
                                        trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
        if self.settings.allow_insecure_webhooks:
            return self._client.post(parsed, content=body, headers=headers).status_code
        host = webhook_host(parsed)
        addresses = public_addresses(host, webhook_port(parsed))
        pinned_headers = {**headers, "Host": parsed.netloc.decode("ascii")}
        for index, address in enumerate(addresses):
            target = parsed.copy_with(host=f"[{address}]" if ":" in address else address)
            try:
                return self._client.post(target, content=body, headers=pinned_headers,
                                         extensions={"sni_hostname": host}).status_code
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")  # public_addresses returns at least one address

    # -- loops ---------------------------------------------------------------------------------------
    def delivery_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.deliver_due()
            except Exception:  # noqa: BLE001 - keep delivering
                log.exception("webhook delivery loop")
            self.stopping.wait(min(self.settings.poll_interval_s, 0.5))

    def stop(self) -> None:
        """Stop after the current page or step; a running job goes back to the queue."""
        self.stopping.set()
        if self._cancel is not None:
            self._cancel.cancel()

    def run(self, warm: bool = True) -> None:
        """Work until ``stop()``: jobs in this thread, webhook deliveries in another."""
        if warm:
            try:
                self.warm_up()
            except BiqeError as exc:  # jobs will fail with this message; the worker stays up
                log.error("cannot load the pipeline models: %s", exc.message)
        deliveries = threading.Thread(target=self.delivery_loop, daemon=True, name="webhooks")
        deliveries.start()
        try:
            while not self.stopping.is_set():
                if not self.run_once():
                    self.stopping.wait(self.settings.poll_interval_s)
        finally:
            self.stopping.set()
            deliveries.join(timeout=self.settings.webhook_timeout_s + 5)
            if self._client is not None:
                self._client.close()


def worker_config(settings: Settings) -> PipelineConfig:
    """The pipeline's defaults with BIQE_PIPELINE_CONFIG's fields (e.g. tests: ground-truth layout and tesseract).
    Pages must all succeed for a job to be done."""
    try:
        return configure(**settings.pipeline_overrides)  # on_page_error stays "raise" unless overridden
    except InputError as exc:
        raise InputError(f"BIQE_PIPELINE_CONFIG: {exc.message}") from exc


def run_worker(settings: Optional[Settings] = None, config: Optional[PipelineConfig] = None) -> None:
    """The `biqe-lab worker` process: SIGTERM/SIGINT stop it after the current step."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(settings or Settings.from_env(), config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    log.info("worker %s started on %s", worker.worker_id, worker.settings.data_dir)
    worker.run()

"""Job operations shared by the API routes and the portal: submit an upload, a job's view, find a result file, cancel."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

from ..defaults import PDF_FORMATS, parse_steps
from .settings import Settings
from ..errors import ResultGoneError, ResultNotReadyError
from .store import TERMINAL, Store, iso, result_url, status_url, utcnow
from .uploads import ReceivedUpload
from .validation import (DEFAULT_LLM_TIER, DEFAULT_PDF_FORMAT, DEFAULT_PRESET, LLM_TIERS, PRESETS, check_choice,
                         check_webhook_url, stage_received)

OPTION_FIELDS = ("llm_tier", "preset", "webhook_url", "pipeline_steps", "pdf_format")  # a submission's text fields


def submit_job(settings: Settings, store: Store, dispatcher, account: dict, upload: ReceivedUpload,
               base_url: str, *, llm_tier: str = DEFAULT_LLM_TIER,
               preset: str = DEFAULT_PRESET, webhook_url: str = "", pipeline_steps: str = "",
               pdf_format: str = DEFAULT_PDF_FORMAT, idempotency_key: Optional[str] = None) -> dict:
    """Validate the options and the received upload, store the pages, insert a queued job and dispatch it.

    Returns the stored job row (an earlier one for a repeated Idempotency-Key). Nothing stays on
    disk or in the database when anything is refused.
    """
    options = {
        "llm_tier": check_choice("llm_tier", llm_tier, LLM_TIERS, DEFAULT_LLM_TIER),
        "preset": check_choice("preset", preset, PRESETS, DEFAULT_PRESET),
        "pdf_format": check_choice("pdf_format", pdf_format, PDF_FORMATS, DEFAULT_PDF_FORMAT),
        "pipeline_steps": ",".join(parse_steps(pipeline_steps)),
        "webhook_url": check_webhook_url(webhook_url, settings.allow_insecure_webhooks),
    }
    staged = stage_received(upload, settings)
    job_id = str(uuid.uuid4())
    target = settings.jobs_dir / job_id
    try:
        os.replace(staged.folder, target)  # same file system: atomic
    except BaseException:
        staged.discard()
        raise
    now = utcnow()
    job = {"id": job_id, "account_id": account["id"], "state": "queued", "page_count": staged.page_count,
           # provisional: the store moves it to finished_at + the same span when the job ends
           "created_at": iso(now), "expires_at": iso(now + timedelta(hours=settings.result_ttl_hours)),
           "base_url": settings.public_url or base_url.rstrip("/"),
           "options": json.dumps({"filename": staged.filename}), **options,
           "idempotency_key": idempotency_key or None,
           "request_hash": hashlib.sha256(json.dumps([staged.sha256, options], sort_keys=True).encode())
           .hexdigest()}
    try:
        stored, created = store.insert_job(job, settings.idempotency_window_h)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if not created:
        shutil.rmtree(target, ignore_errors=True)
    else:
        dispatcher.enqueue(stored["id"])
    return stored


def created_body(job: dict) -> dict:
    """The 202 body of a submission."""
    return {"job_id": job["id"], "state": job["state"], "page_count": job["page_count"],
            "created_at": job["created_at"], "expires_at": job["expires_at"],
            "status_url": status_url(job), "result_url": result_url(job)}


def job_view(job: dict, store: Store) -> dict[str, Any]:
    """The status body of a job (field names as published)."""
    body: dict[str, Any] = {key: job[key] for key in (
        "state", "page_count", "current_step", "created_at", "started_at", "finished_at", "expires_at",
        "error_message", "warning_message")}
    body = {"job_id": job["id"], **body}
    expired = result_expired(job)
    if job["state"] == "done" and not expired:
        body["result_url"] = result_url(job)
    body["result_expired"] = expired
    body.update(llm_tier=job["llm_tier"], preset=job["preset"], pdf_format=job["pdf_format"],
                pipeline_steps=job["pipeline_steps"].split(","))
    if job["webhook_url"]:
        body["webhook"] = store.webhook_summary(job["id"]) or {"attempts": 0, "last_status": None, "delivered": False}
    return body


def result_expired(job: dict) -> bool:
    """The job ended and its files are gone or due to go (``expires_at`` passed; the sweeper may not have run)."""
    return job["result_expired_at"] is not None or (job["state"] in TERMINAL and job["expires_at"] < iso(utcnow()))


def result_path(settings: Settings, store: Store, job_id: str, account_id: str) -> Path:
    """The result ZIP of an account's done job until ``expires_at``; a NotFoundError that says why otherwise."""
    job = store.job(job_id, account_id)
    if result_expired(job):
        raise ResultGoneError(f"the result of job {job_id} expired at {job['expires_at']} and was deleted")
    if job["state"] != "done":
        reason = {"queued": "is queued", "processing": "is still processing", "failed": "failed",
                  "cancelled": "was cancelled"}[job["state"]]
        raise ResultNotReadyError(f"job {job_id} {reason}; a result exists only when its state is 'done'",
                                  state=job["state"])
    path = settings.jobs_dir / job_id / "result.zip"
    if not path.is_file():
        raise ResultGoneError(f"the result of job {job_id} is no longer on the server")
    return path


def cancel_job(store: Store, dispatcher, job_id: str, account_id: str) -> dict:
    """Cancel an account's queued or processing job and revoke its queued task; the job's new row."""
    job = store.cancel(job_id, account_id)
    dispatcher.revoke(job_id)
    return job

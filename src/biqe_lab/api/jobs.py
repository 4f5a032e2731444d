"""Job operations shared by the API routes and the portal: submit an upload, find a result file, cancel."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Optional

from ..pdf import PDF_FORMATS
from ..pipeline import parse_steps
from .settings import Settings
from .store import TERMINAL, NotFoundError, Store, iso, result_url, status_url, utcnow
from .uploads import ReceivedUpload
from .validation import (DEFAULT_LLM_TIER, DEFAULT_PDF_FORMAT, DEFAULT_PRESET, LLM_TIERS, PRESETS, check_choice,
                         check_webhook_url, stage_received)

OPTION_FIELDS = ("llm_tier", "preset", "webhook_url", "pipeline_steps", "pdf_format")  # a submission's text fields


class ResultNotReadyError(NotFoundError):
    """The job has no result (yet, or ever: failed or cancelled)."""

    code = "result_not_ready"


class ResultGoneError(NotFoundError):
    """The result expired and the sweeper deleted it."""

    code = "result_expired"


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

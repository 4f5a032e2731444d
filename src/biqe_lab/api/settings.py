"""Settings of the job API and worker, read once from BIQE_* environment variables into one dataclass."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from ..errors import InputError

DEFAULT_BACKOFF = (1.0, 5.0, 25.0, 125.0, 625.0)
QUEUES = ("local", "celery")  # local: workers poll the job store; celery: tasks on a Redis broker


def _parse_backoff(value: str) -> tuple[float, ...]:
    try:
        steps = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise InputError(f"BIQE_WEBHOOK_BACKOFF must be comma-separated seconds, got {value!r}") from exc
    if any(s < 0 for s in steps):
        raise InputError(f"BIQE_WEBHOOK_BACKOFF has a negative delay: {value!r}")
    return steps


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Everything the server and the worker read from the environment (plus a few fixed operating knobs)."""

    data_dir: Path = Path("./biqe-data")
    max_upload_mb: int = 500
    max_pages: int = 500
    max_page_megapixels: float = 100.0  # largest page image (width x height), read from its header
    max_job_megapixels: float = 10_000.0  # all pages of one job together (every frame of a multi-page TIFF)
    result_ttl_hours: float = 168.0  # counted from the job's finished_at
    webhook_backoff: tuple[float, ...] = DEFAULT_BACKOFF
    allow_insecure_webhooks: bool = False
    public_url: Optional[str] = None  # the server's public base URL for status/result URLs (else the request's)
    # The best tier's LLM endpoint is not a server setting: correction reads BIQE_LLM_* from the environment.
    # Production mode (README "Production mode"): the database, the queue and the workers' pipeline.
    database_url: Optional[str] = field(default=None, repr=False)  # SQLAlchemy URL; None: SQLite in data_dir
    queue: str = "local"
    broker_url: Optional[str] = field(default=None, repr=False)  # Celery broker, e.g. redis://host:6379/0
    pipeline_config: Optional[str] = None  # JSON object of PipelineConfig fields over the workers' default
    # Operating knobs that are not environment variables (tests pass other values).
    heartbeat_interval_s: float = 5.0  # how often a running job's heartbeat is written
    heartbeat_timeout_s: float = 120.0  # a processing job silent this long has a dead worker
    max_attempts: int = 3  # a job whose worker died this many times is failed
    poll_interval_s: float = 1.0  # how often an idle worker looks for work
    webhook_timeout_s: float = 10.0
    idempotency_window_h: float = 24.0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "biqe.sqlite3"

    @property
    def db_url(self) -> str:
        """The job store's SQLAlchemy URL: BIQE_DATABASE_URL, else the SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.db_path}"

    @property
    def pipeline_overrides(self) -> dict:
        """BIQE_PIPELINE_CONFIG as a dict (lists become tuples, as PipelineConfig's fields are)."""
        if not self.pipeline_config:
            return {}
        values = json.loads(self.pipeline_config)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_page_pixels(self) -> int:
        return int(self.max_page_megapixels * 1_000_000)

    @property
    def max_job_pixels(self) -> int:
        return int(self.max_job_megapixels * 1_000_000)

    def make_dirs(self) -> None:
        """The data directory, its job and temp folders: created 0700 (the database holds webhook secrets)."""
        for folder in (self.data_dir, self.jobs_dir, self.tmp_dir):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)  # mkdir's mode passes through the umask; the parents keep theirs

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides) -> "Settings":
        """Read the BIQE_* variables of ``env`` (default: ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        try:
            if env.get("BIQE_DATA_DIR"):
                values["data_dir"] = Path(env["BIQE_DATA_DIR"])
            if env.get("BIQE_MAX_UPLOAD_MB"):
                values["max_upload_mb"] = int(env["BIQE_MAX_UPLOAD_MB"])
            if env.get("BIQE_MAX_PAGES"):
                values["max_pages"] = int(env["BIQE_MAX_PAGES"])
            for key in ("max_page_megapixels", "max_job_megapixels"):
                if env.get(f"BIQE_{key.upper()}"):
                    values[key] = float(env[f"BIQE_{key.upper()}"])
            if env.get("BIQE_RESULT_TTL_HOURS"):
                values["result_ttl_hours"] = float(env["BIQE_RESULT_TTL_HOURS"])
            for key in ("heartbeat_interval_s", "heartbeat_timeout_s"):
                if env.get(f"BIQE_{key.upper()}"):
                    values[key] = float(env[f"BIQE_{key.upper()}"])
        except ValueError as exc:
            raise InputError(f"bad number in a BIQE_* setting: {exc}") from exc
        if env.get("BIQE_WEBHOOK_BACKOFF"):
            values["webhook_backoff"] = _parse_backoff(env["BIQE_WEBHOOK_BACKOFF"])
        if env.get("BIQE_ALLOW_INSECURE_WEBHOOKS"):
            values["allow_insecure_webhooks"] = _flag(env["BIQE_ALLOW_INSECURE_WEBHOOKS"])
        for key in ("public_url", "database_url", "queue", "broker_url", "pipeline_config"):
            if env.get(f"BIQE_{key.upper()}"):
                values[key] = env[f"BIQE_{key.upper()}"]
        values.update(overrides)
        if values.get("public_url"):
            parts = urlsplit(str(values["public_url"]))
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise InputError(f"BIQE_PUBLIC_URL {values['public_url']!r} is not an http(s) base URL")
            values["public_url"] = str(values["public_url"]).rstrip("/")
        _check_production(values)
        return cls(**values)


def _check_production(values: dict) -> None:
    """BIQE_QUEUE, BIQE_BROKER_URL, BIQE_DATABASE_URL and BIQE_PIPELINE_CONFIG make sense together."""
    queue = str(values.get("queue", "local")).strip().lower()
    if queue not in QUEUES:
        raise InputError(f"BIQE_QUEUE must be one of {', '.join(QUEUES)}, got {values['queue']!r}")
    values["queue"] = queue
    if queue == "celery" and not values.get("broker_url"):
        raise InputError("BIQE_QUEUE=celery needs BIQE_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    url = values.get("database_url")
    if url and not str(url).startswith(("sqlite", "postgresql")):
        raise InputError(f"BIQE_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL, got {url!r}")
    for key in ("max_page_megapixels", "max_job_megapixels"):
        if key in values and not float(values[key]) > 0:  # type: ignore[arg-type]
            raise InputError(f"BIQE_{key.upper()} must be positive, got {values[key]!r}")
    interval, timeout = values.get("heartbeat_interval_s", 5.0), values.get("heartbeat_timeout_s", 120.0)
    if not 0 < float(interval) < float(timeout):  # type: ignore[arg-type]
        raise InputError(f"BIQE_HEARTBEAT_INTERVAL_S ({interval}) must be positive and below "
                         f"BIQE_HEARTBEAT_TIMEOUT_S ({timeout})")
    if values.get("pipeline_config"):
        try:
            parsed = json.loads(values["pipeline_config"])
        except ValueError as exc:
            raise InputError(f"BIQE_PIPELINE_CONFIG is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise InputError("BIQE_PIPELINE_CONFIG must be a JSON object of PipelineConfig fields")

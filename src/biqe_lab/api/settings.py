"""Settings of the job API and worker, read once from BIQE_* environment variables into one dataclass."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from ..errors import InputError

DEFAULT_BACKOFF = (1.0, 5.0, 25.0, 125.0, 625.0)


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
    result_ttl_hours: float = 168.0
    webhook_backoff: tuple[float, ...] = DEFAULT_BACKOFF
    allow_insecure_webhooks: bool = False
    public_url: Optional[str] = None  # the server's public base URL for status/result URLs (else the request's)
    llm_base_url: Optional[str] = None
    llm_model: Optional[str] = None
    llm_api_key: Optional[str] = field(default=None, repr=False)
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
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

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
            if env.get("BIQE_RESULT_TTL_HOURS"):
                values["result_ttl_hours"] = float(env["BIQE_RESULT_TTL_HOURS"])
        except ValueError as exc:
            raise InputError(f"bad number in a BIQE_* setting: {exc}") from exc
        if env.get("BIQE_WEBHOOK_BACKOFF"):
            values["webhook_backoff"] = _parse_backoff(env["BIQE_WEBHOOK_BACKOFF"])
        if env.get("BIQE_ALLOW_INSECURE_WEBHOOKS"):
            values["allow_insecure_webhooks"] = _flag(env["BIQE_ALLOW_INSECURE_WEBHOOKS"])
        for key in ("public_url", "llm_base_url", "llm_model", "llm_api_key"):
            if env.get(f"BIQE_{key.upper()}"):
                values[key] = env[f"BIQE_{key.upper()}"]
        values.update(overrides)
        if values.get("public_url"):
            parts = urlsplit(str(values["public_url"]))
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise InputError(f"BIQE_PUBLIC_URL {values['public_url']!r} is not an http(s) base URL")
            values["public_url"] = str(values["public_url"]).rstrip("/")
        return cls(**values)

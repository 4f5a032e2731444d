"""The job store's tables as SQLAlchemy Core metadata: the schema at the newest migration (SQLite or PostgreSQL)."""
from __future__ import annotations

from sqlalchemy import (CheckConstraint, Column, Float, ForeignKey, Index, Integer, MetaData, Table, Text, text)

# Times of day are ISO-8601 text (UTC, milliseconds, "Z"), so that they sort as strings on every
# database; heartbeats and retry times are epoch seconds in double precision (Float(53)).
Epoch = Float(precision=53)

metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("webhook_secret", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("label", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
    Column("last_used_at", Text),
    Column("revoked_at", Text),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("state", Text, nullable=False),
    Column("page_count", Integer, nullable=False),
    Column("current_step", Text),
    Column("created_at", Text, nullable=False),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("expires_at", Text, nullable=False),
    Column("error_message", Text),
    Column("warning_message", Text),
    Column("llm_tier", Text, nullable=False),
    Column("preset", Text, nullable=False),
    Column("pdf_format", Text, nullable=False),
    Column("pipeline_steps", Text, nullable=False),
    Column("webhook_url", Text),
    Column("base_url", Text, nullable=False),
    Column("options", Text, nullable=False, server_default=text("'{}'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("heartbeat_at", Epoch),
    Column("worker_id", Text),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("result_expired_at", Text),
    Column("dispatched_at", Epoch),  # revision 0003: when its Celery task was sent (NULL: to be sent)
    CheckConstraint("state IN ('queued','processing','done','failed','cancelled')", name="jobs_state"),
)
Index("jobs_queue", jobs.c.state, jobs.c.created_at)
Index("jobs_account", jobs.c.account_id, jobs.c.created_at)
Index("jobs_idempotency", jobs.c.account_id, jobs.c.idempotency_key, unique=True,
      sqlite_where=jobs.c.idempotency_key.isnot(None), postgresql_where=jobs.c.idempotency_key.isnot(None))

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Text, ForeignKey("jobs.id"), nullable=False),
    Column("event", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("delivery_id", Text, nullable=False, unique=True),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Epoch),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    sqlite_autoincrement=True,
)
Index("deliveries_due", webhook_deliveries.c.delivered, webhook_deliveries.c.next_attempt_at)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", Text, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Epoch),
    sqlite_autoincrement=True,
)

usage = Table(
    "usage", metadata,
    Column("account_id", Text, ForeignKey("accounts.id"), primary_key=True),
    Column("month", Text, primary_key=True),
    Column("pages", Integer, nullable=False, server_default=text("0")),
    Column("jobs", Integer, nullable=False, server_default=text("0")),
)

# The customer portal (biqe_lab.api.users): an account's people, their sessions, sign-in attempts (revision 0002).
users = Table(
    "users", metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("email", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("last_login_at", Text),
)

portal_sessions = Table(
    "portal_sessions", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Epoch, nullable=False),
)

login_failures = Table(
    "login_failures", metadata,
    Column("throttle_key", Text, nullable=False),
    Column("failed_at", Epoch, nullable=False),
)
Index("login_failures_key", login_failures.c.throttle_key, login_failures.c.failed_at)

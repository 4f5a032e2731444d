"""The first released schema (accounts, API keys, jobs, webhook outbox and attempts, usage), as SQLite had it."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EPOCH = sa.Float(precision=53)  # REAL in the first schema: double precision on PostgreSQL too


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("webhook_secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("last_used_at", sa.Text),
        sa.Column("revoked_at", sa.Text),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("page_count", sa.Integer, nullable=False),
        sa.Column("current_step", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("finished_at", sa.Text),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("warning_message", sa.Text),
        sa.Column("llm_tier", sa.Text, nullable=False),
        sa.Column("preset", sa.Text, nullable=False),
        sa.Column("pdf_format", sa.Text, nullable=False),
        sa.Column("pipeline_steps", sa.Text, nullable=False),
        sa.Column("webhook_url", sa.Text),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("heartbeat_at", EPOCH),
        sa.Column("worker_id", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("result_expired_at", sa.Text),
        sa.CheckConstraint("state IN ('queued','processing','done','failed','cancelled')", name="jobs_state"),
    )
    op.create_index("jobs_queue", "jobs", ["state", "created_at"])
    op.create_index("jobs_account", "jobs", ["account_id", "created_at"])
    op.create_index("jobs_idempotency", "jobs", ["account_id", "idempotency_key"], unique=True,
                    sqlite_where=sa.text("idempotency_key IS NOT NULL"),
                    postgresql_where=sa.text("idempotency_key IS NOT NULL"))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Text, nullable=False, unique=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", EPOCH),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("deliveries_due", "webhook_deliveries", ["delivered", "next_attempt_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", EPOCH),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "usage",
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("month", sa.Text, primary_key=True),
        sa.Column("pages", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("jobs", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    for table in ("usage", "delivery_attempts", "webhook_deliveries", "jobs", "api_keys", "accounts"):
        op.drop_table(table)

"""The customer portal's tables: users, portal_sessions, login_failures (kept where a portal build made them)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EPOCH = sa.Float(precision=53)


def upgrade() -> None:
    # A database of the portal's first build has these tables already (made by CREATE TABLE IF NOT EXISTS).
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
            sa.Column("email", sa.Text, nullable=False, unique=True),
            sa.Column("password_hash", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("last_login_at", sa.Text),
        )
    if "portal_sessions" not in existing:
        op.create_table(
            "portal_sessions",
            sa.Column("token_hash", sa.Text, primary_key=True),
            sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
            sa.Column("csrf_token", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("expires_at", EPOCH, nullable=False),
        )
    if "login_failures" not in existing:
        op.create_table(
            "login_failures",
            sa.Column("throttle_key", sa.Text, nullable=False),
            sa.Column("failed_at", EPOCH, nullable=False),
        )
        op.create_index("login_failures_key", "login_failures", ["throttle_key", "failed_at"])


def downgrade() -> None:
    for table in ("login_failures", "portal_sessions", "users"):
        op.drop_table(table)

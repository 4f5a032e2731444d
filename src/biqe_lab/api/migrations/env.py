"""Alembic's environment: migrates the connection that biqe_lab.api.db hands over (or sqlalchemy.url)."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from biqe_lab.api.schema import metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain `alembic` command with -x/ini sqlalchemy.url
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)

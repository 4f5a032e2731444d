"""Alembic migrations of the job store (run by biqe_lab.api.db at start-up and by `biqe-lab db upgrade`)."""

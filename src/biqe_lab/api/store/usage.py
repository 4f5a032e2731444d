"""Usage: pages and jobs billed per account and month."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..schema import usage
from .base import StoreBase, _Db


def bill(db: _Db, dialect: str, account_id: str, pages: int, now: datetime) -> None:
    """Add one finished job and its pages to the account's month, in the caller's transaction."""
    row = (pg_insert if dialect == "postgresql" else sqlite_insert)(usage).values(
        account_id=account_id, month=now.strftime("%Y-%m"), pages=pages, jobs=1)
    db.execute(row.on_conflict_do_update(index_elements=[usage.c.account_id, usage.c.month],
                                         set_={"pages": usage.c.pages + row.excluded.pages, "jobs": usage.c.jobs + 1}))


class Usage(StoreBase):
    def usage(self, account_id: str) -> list[dict]:
        return self._all(select(usage.c.month, usage.c.pages, usage.c.jobs).where(usage.c.account_id == account_id)
                         .order_by(usage.c.month))

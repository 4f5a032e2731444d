"""Accounts and their API keys: creation, rotation, revocation and authentication."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Optional

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ...errors import AuthError, InputError, NotFoundError
from ..schema import accounts, api_keys
from .base import StoreBase, iso, parse_iso, utcnow

KEY_PREFIX = "biqe_live_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Accounts(StoreBase):
    def create_account(self, name: str) -> dict:
        if not name.strip():
            raise InputError("an account needs a name")
        account = {"id": str(uuid.uuid4()), "name": name, "webhook_secret": secrets.token_hex(32),
                   "created_at": iso(utcnow())}
        try:
            with self._tx() as db:
                db.execute(insert(accounts).values(**account))
        except IntegrityError as exc:
            raise InputError(f"an account named {name!r} exists already") from exc
        return account

    def account(self, name_or_id: str) -> dict:
        row = self._one(select(accounts).where(or_(accounts.c.name == name_or_id, accounts.c.id == name_or_id)))
        if row is None:
            raise InputError(f"no account named {name_or_id!r}")
        return row

    def account_by_id(self, account_id: str) -> dict:
        row = self._one(select(accounts).where(accounts.c.id == account_id))
        if row is None:
            raise NotFoundError(f"no account {account_id}")
        return row

    def rotate_secret(self, name: str) -> dict:
        account = self.account(name)
        secret = secrets.token_hex(32)
        with self._tx() as db:
            db.execute(update(accounts).where(accounts.c.id == account["id"]).values(webhook_secret=secret))
        return {**account, "webhook_secret": secret}

    def create_key(self, account_name: str, label: str) -> tuple[dict, str]:
        """A new API key; returns its record and the key itself, which is never stored (only its hash)."""
        account = self.account(account_name)
        key = KEY_PREFIX + secrets.token_urlsafe(30)
        record = {"id": str(uuid.uuid4()), "account_id": account["id"], "label": label,
                  "prefix": key[:len(KEY_PREFIX) + 6], "key_hash": hash_key(key), "created_at": iso(utcnow())}
        with self._tx() as db:
            db.execute(insert(api_keys).values(**record))
        return record, key

    def list_keys(self, account_name: Optional[str] = None) -> list[dict]:
        k = api_keys.c
        query = (select(k.id, k.label, k.prefix, k.created_at, k.last_used_at, k.revoked_at,
                        accounts.c.name.label("account")).join_from(api_keys, accounts))
        if account_name:
            account = self.account(account_name)
            return self._all(query.where(k.account_id == account["id"]).order_by(k.created_at))
        return self._all(query.order_by(accounts.c.name, k.created_at))

    def revoke_key(self, key_id: str) -> dict:
        k = api_keys.c
        with self._tx() as db:
            row = db.execute(update(api_keys).where(k.id == key_id)
                             .values(revoked_at=func.coalesce(k.revoked_at, iso(utcnow())))
                             .returning(k.id, k.label, k.prefix, k.revoked_at)).fetchone()
        if row is None:
            raise InputError(f"no API key with id {key_id!r}")
        return row

    def authenticate(self, key: Optional[str]) -> dict:
        """The account of a valid, unrevoked key; AuthError otherwise.

        Revocation is checked on every request; ``last_used_at`` is written at most once a
        minute per key, so that polling clients do not queue on the database's write lock.
        """
        if not key:
            raise AuthError("missing API key: send X-API-Key or Authorization: Bearer")
        if not key.startswith(KEY_PREFIX):
            raise AuthError("invalid API key")
        k = api_keys.c
        row = self._one(select(k.id.label("key_id"), k.last_used_at, accounts).join_from(api_keys, accounts)
                        .where(k.key_hash == hash_key(key), k.revoked_at.is_(None)))
        if row is None:
            raise AuthError("invalid or revoked API key")
        now = utcnow()
        if row["last_used_at"] is None or parse_iso(row["last_used_at"]) < now - timedelta(seconds=60):
            with self._tx() as db:
                db.execute(update(api_keys).where(k.id == row["key_id"]).values(last_used_at=iso(now)))
        return {k: row[k] for k in ("id", "name", "webhook_secret", "created_at")}

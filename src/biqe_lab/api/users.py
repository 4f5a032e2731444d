"""Portal users: scrypt password hashes, sign-in sessions with their CSRF tokens, and sign-in throttling (all portal SQL)."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import InputError, SignInError, TooManyAttemptsError
from .schema import accounts, login_failures, portal_sessions, users
from .store import Store, hash_key, iso, utcnow

# scrypt with N=2**16, r=8, p=2: 64 MiB of memory per hash, ~0.2-0.4 s on a small CPU (one of OWASP's
# equivalent minimum settings). The parameters travel in each hash, so they can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 2
MIN_PASSWORD_LENGTH = 10
SESSION_HOURS = 12.0
# Sign-in throttling: this many failures for one email from one address within the window lock that pair out;
# MAX_ADDRESS_FAILURES failures from one address (any emails: password spraying) lock the address out.
MAX_FAILURES = 5
MAX_ADDRESS_FAILURES = 50
FAILURE_WINDOW_S = 15 * 60


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r + 2**20)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that the answer takes as long as for a known one."""
    return hash_password(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if password != password.strip():
        raise InputError("the password must not start or end with spaces", field="password")


@dataclass(frozen=True)
class PortalSession:
    """A signed-in user: who, which account, and the session's CSRF token."""

    user_id: str
    email: str
    account_id: str
    account_name: str
    csrf_token: str
    expires_at: float


class Users:
    """Users, sessions and sign-in throttling over the job store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- users -------------------------------------------------------------------------------------
    def create(self, account_name: str, email: str, password: str) -> dict:
        account = self.store.account(account_name)
        email = normalize_email(email)
        if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
            raise InputError(f"{email!r} is not an email address", field="email")
        check_password_policy(password)
        user = {"id": str(uuid.uuid4()), "account_id": account["id"], "email": email,
                "password_hash": hash_password(password), "created_at": iso(utcnow())}
        try:
            with self.store._tx() as db:
                db.execute(insert(users).values(**user))
        except IntegrityError as exc:
            raise InputError(f"a user with the email {email!r} exists already") from exc
        return {k: v for k, v in user.items() if k != "password_hash"}

    def list(self, account_name: Optional[str] = None) -> list[dict]:
        u = users.c
        query = select(u.id, u.email, u.created_at, u.last_login_at, accounts.c.name.label("account")) \
            .join_from(users, accounts)
        if account_name:
            return self.store._all(query.where(u.account_id == self.store.account(account_name)["id"])
                                   .order_by(u.email))
        return self.store._all(query.order_by(accounts.c.name, u.email))

    def delete(self, email: str) -> None:
        with self.store._tx() as db:
            row = db.execute(select(users.c.id).where(users.c.email == normalize_email(email))).fetchone()
            if row is None:
                raise InputError(f"no user with the email {email!r}")
            db.execute(delete(portal_sessions).where(portal_sessions.c.user_id == row["id"]))
            db.execute(delete(users).where(users.c.id == row["id"]))

    # -- signing in ---------------------------------------------------------------------------------
    def sign_in(self, email: str, password: str, client_ip: str) -> tuple[PortalSession, str]:
        """A new session for a correct email and password; returns it and the cookie's token (never stored).

        Failures are counted per (email, client address); after MAX_FAILURES within FAILURE_WINDOW_S the
        pair is refused with TooManyAttemptsError, even with the right password, until the window passes.
        MAX_ADDRESS_FAILURES failures from one address, whatever the emails, lock out the address likewise.
        """
        email = normalize_email(email)
        throttle_key = hash_key(f"{email}|{client_ip}")
        address_key = hash_key(f"address|{client_ip}")
        for key, limit, whom in ((throttle_key, MAX_FAILURES, "for this email from your network"),
                                 (address_key, MAX_ADDRESS_FAILURES, "from your network")):
            wait_s = self._locked_for(key, limit)
            if wait_s:
                minutes = max(1, -(-int(wait_s) // 60))
                raise TooManyAttemptsError(f"Too many failed sign-in attempts {whom}. "
                                           f"Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                                           retry_after=int(wait_s) + 1)
        user = self.store._one(select(users).where(users.c.email == email))
        if not verify_password(password, user["password_hash"] if user else _dummy_hash()) or user is None:
            with self.store._tx() as db:
                for key in (throttle_key, address_key):
                    db.execute(insert(login_failures).values(throttle_key=key, failed_at=time.time()))
            raise SignInError("Incorrect email or password.")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = time.time() + SESSION_HOURS * 3600
        with self.store._tx() as db:
            db.execute(delete(login_failures).where(or_(login_failures.c.throttle_key == throttle_key,
                                                        login_failures.c.failed_at < time.time() - FAILURE_WINDOW_S)))
            db.execute(delete(portal_sessions).where(portal_sessions.c.expires_at < time.time()))
            db.execute(insert(portal_sessions).values(token_hash=hash_key(token), user_id=user["id"],
                                                      csrf_token=secrets.token_urlsafe(32), created_at=iso(now),
                                                      expires_at=expires))
            db.execute(update(users).where(users.c.id == user["id"]).values(last_login_at=iso(now)))
        session = self.session(token)
        assert session is not None
        return session, token

    def _locked_for(self, throttle_key: str, limit: int) -> float:
        """Seconds until ``throttle_key`` may try again (0 when it may now)."""
        since = time.time() - FAILURE_WINDOW_S
        f = login_failures.c
        rows = self.store._all(select(f.failed_at).where(f.throttle_key == throttle_key, f.failed_at > since)
                               .order_by(f.failed_at.desc()).limit(limit))
        if len(rows) < limit:
            return 0.0
        return max(0.0, rows[-1]["failed_at"] + FAILURE_WINDOW_S - time.time())

    def session(self, token: Optional[str]) -> Optional[PortalSession]:
        """The live session of a cookie token, or None (unknown, expired, signed out, user deleted)."""
        if not token:
            return None
        s, u = portal_sessions.c, users.c
        row = self.store._one(
            select(s.user_id, s.csrf_token, s.expires_at, u.email, u.account_id, accounts.c.name.label("account_name"))
            .join_from(portal_sessions, users).join(accounts, accounts.c.id == u.account_id)
            .where(s.token_hash == hash_key(token), s.expires_at > time.time()))
        return PortalSession(**row) if row else None

    def sign_out(self, token: Optional[str]) -> None:
        if token:
            with self.store._tx() as db:
                db.execute(delete(portal_sessions).where(portal_sessions.c.token_hash == hash_key(token)))

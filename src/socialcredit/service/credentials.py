"""Credentials: API keys of agencies, operators, reviewers and auditors.

A key is a high-entropy random token (256 bits) shown once, when it is made; the service
keeps only its SHA-256 digest, so a copy of the database gives no usable key. The prefix
says what a token is: ``sck_`` an API key, ``sco_`` a one-time sign-in token, ``scs_`` a
subject's session (see :mod:`socialcredit.service.identity`).

A known key is remembered for :data:`KEY_SECONDS` after it was read from the database, so
a busy client costs no query per request; a key revoked through the same connection stops
at once, one revoked by another process (``socialcredit key revoke``) within that time.
Unknown keys are never remembered.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field

from socialcredit.errors import SocialCreditError
from socialcredit.records import DOTTED_NAME, MAX_NAME
from socialcredit.service.errors import Conflict, NotFound
from socialcredit.store.service_db import ServiceDB

__all__ = [
    "ROLES",
    "Principal",
    "add_agency",
    "add_key",
    "authenticate",
    "digest",
    "new_token",
    "remembered",
    "revoke",
]

ROLES = ("agency", "operator", "reviewer", "auditor")
KEY_SECONDS = 1.0
_KNOWN_MAX = 10_000
KEY_PREFIX = "sck_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_TYPE = re.compile(DOTTED_NAME)


@dataclass(frozen=True)
class Principal:
    """Who a key belongs to: its role, its owner's name and, for an agency, its scope."""

    role: str
    name: str
    types: frozenset[str] = field(default_factory=frozenset)


def new_token(prefix: str) -> str:
    """A fresh random token (32 random bytes, URL-safe) with its prefix."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The SHA-256 digest of a token, in hex: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SocialCreditError(
            f"{name!r} is not a valid name: 1 to 64 letters, digits, spaces, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return name


def add_agency(db: ServiceDB, name: str, types: list[str], now: str) -> str:
    """Register an agency that may send records of ``types``; return its key (shown once)."""
    _check_name(name)
    wanted = sorted({t.strip() for t in types if t.strip()})
    if not wanted:
        raise SocialCreditError("an agency needs at least one record type (--types)")
    bad = [t for t in wanted if len(t) > MAX_NAME or not _TYPE.fullmatch(t)]
    if bad:
        raise SocialCreditError(
            f"not record types: {', '.join(map(repr, bad))} (dotted names: letters, digits, _ "
            "and -, in parts joined by dots)"
        )
    with db.transaction():
        if _agency_exists(db, name):
            raise Conflict(
                f"an agency named {name!r} exists already (a new key for it: `socialcredit "
                "key add NAME --role agency`)"
            )
        db.execute(
            "INSERT INTO svc_agencies (name, types, created_at) VALUES (?, ?, ?)",
            (name, ",".join(wanted), now),
        )
        return _key(db, "agency", name, now)


def add_key(db: ServiceDB, role: str, name: str, now: str) -> str:
    """A new key for ``role``; shown once. For ``agency``, a new key of an agency already
    registered (:func:`add_agency`), with the same scope: after its keys were revoked, it
    sends records as the same agency, which may still end and resend its own."""
    _check_name(name)
    _check_role(role)
    with db.transaction():
        if role == "agency" and not _agency_exists(db, name):
            raise NotFound(f"no agency named {name!r}: register it with `socialcredit agency add`")
        return _key(db, role, name, now)


def _agency_exists(db: ServiceDB, name: str) -> bool:
    return db.one("SELECT 1 FROM svc_agencies WHERE name = ?", (name,)) is not None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise SocialCreditError(f"{role!r} is not a role: one of {', '.join(ROLES)}")


def _key(db: ServiceDB, role: str, name: str, now: str) -> str:
    token = new_token(KEY_PREFIX)
    db.execute(
        "INSERT INTO svc_keys (hash, role, owner, created_at) VALUES (?, ?, ?, ?)",
        (digest(token), role, name, now),
    )
    return token


def revoke(db: ServiceDB, role: str, name: str, now: str) -> int:
    """Revoke every key of ``name`` in ``role``; how many were revoked."""
    _check_role(role)
    n = db.execute(
        "UPDATE svc_keys SET revoked_at = ? WHERE role = ? AND owner = ? AND revoked_at IS NULL",
        (now, role, name),
    )
    db.cache.pop("keys", None)
    if not n:
        raise NotFound(f"no active key of {role} {name!r}")
    return n


def remembered(db: ServiceDB, token: str) -> Principal | None:
    """The principal of a key read from the database within :data:`KEY_SECONDS`, without
    a query (None: not remembered; :func:`authenticate` decides)."""
    if not token.startswith(KEY_PREFIX) or len(token) > 200:
        return None
    hit = db.cache.get("keys", {}).get(digest(token))
    if hit is not None and time.monotonic() - hit[1] < KEY_SECONDS:
        return hit[0]  # type: ignore[no-any-return]
    return None


def authenticate(db: ServiceDB, token: str) -> Principal | None:
    """The principal of an API key, or None for an unknown or revoked key."""
    if not token.startswith(KEY_PREFIX) or len(token) > 200:
        return None
    known: dict[str, tuple[Principal, float]] = db.cache.setdefault("keys", {})
    key = digest(token)
    now = time.monotonic()
    hit = known.get(key)
    if hit is not None and now - hit[1] < KEY_SECONDS:
        return hit[0]
    row = db.one(
        "SELECT k.role, k.owner, a.types FROM svc_keys AS k LEFT JOIN svc_agencies "
        "AS a ON k.role = 'agency' AND a.name = k.owner "
        "WHERE k.hash = ? AND k.revoked_at IS NULL",
        (key,),
    )
    if row is None:
        known.pop(key, None)
        return None
    role, owner, types = row
    scope = frozenset(types.split(",")) if role == "agency" and types else frozenset()
    who = Principal(str(role), str(owner), scope)
    if len(known) >= _KNOWN_MAX:
        known.clear()
    known[key] = (who, now)
    return who

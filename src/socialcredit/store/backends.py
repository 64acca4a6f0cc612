"""Choosing a ledger's store from where it is: a PostgreSQL URL, or else a file.

``postgresql://user@host:5432/dbname?schema=town`` (or ``postgres://...``) is a
:class:`~socialcredit.store.postgres.PostgresLedger` in the schema ``town`` (default
``socialcredit``); anything else is the path of a
:class:`~socialcredit.store.sqlite.SqliteLedger` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from socialcredit.errors import LedgerError
from socialcredit.store.base import Ledger

if TYPE_CHECKING:
    from socialcredit.store.postgres import PostgresLedger

__all__ = ["create_ledger", "is_postgres_url", "open_ledger", "printable"]

URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL ledger rather than a file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def printable(target: str | Path) -> str:
    """``target`` as messages name it: a URL without its password, if it has one."""
    if not is_postgres_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def open_ledger(target: str | Path) -> Ledger:
    """Open the existing ledger at ``target``: a PostgreSQL URL or a file."""
    if is_postgres_url(target):
        return _postgres().open(str(target))
    from socialcredit.store.sqlite import SqliteLedger

    return SqliteLedger.open(target)


def create_ledger(target: str | Path) -> Ledger:
    """Create a new, empty ledger at ``target``: a PostgreSQL URL or a file."""
    if is_postgres_url(target):
        return _postgres().create(str(target))
    from socialcredit.store.sqlite import SqliteLedger

    return SqliteLedger.create(target)


def _postgres() -> type[PostgresLedger]:
    try:
        from socialcredit.store.postgres import PostgresLedger
    except ImportError as exc:
        raise LedgerError(
            f"a PostgreSQL ledger needs psycopg ({exc}): install socialcredit[postgres]"
        ) from None
    return PostgresLedger

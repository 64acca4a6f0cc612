"""The access log: who read a subject's record, when, and for what declared purpose.

Every read of a subject's record by anyone but the subject writes one entry, before the
answer is given; a read without a purpose is refused. The subject sees the entries of the
last 12 months (:func:`entries_of`). The table is append-only.

Entries are written by group commit (:class:`AccessLogWriter`): one thread with its own
connection takes every entry waiting, writes them in one transaction and commits once
(one fsync for all of them), then releases the requests that wait for them. A request is
answered only after its entry is durable; if the commit fails, every request of the group
fails (503) and none is answered.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from socialcredit.service.credentials import Principal
from socialcredit.service.errors import PurposeRequired
from socialcredit.store.service_db import ServiceDB

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = ["AccessEntry", "AccessLogWriter", "declared", "entries_of", "log_read"]

MAX_PURPOSE = 200
LOOKBACK_DAYS = 365
GROUP_MAX = 2000  # entries committed together at most
WAIT_SECONDS = 30.0

_INSERT = (
    "INSERT INTO svc_access_log (at, subject, actor, role, purpose, what) VALUES (?, ?, ?, ?, ?, ?)"
)
Entry = tuple[str, str, str, str, str, str]


class AccessLogWriter:
    """Writes access-log entries by group commit, on a thread and connection of its own.

    :meth:`write` queues one entry and returns a future that is done once the entry is
    committed (or failed with the commit's error). While one group commits, the entries
    that arrive wait for the next commit, so under load one fsync serves many requests.
    """

    def __init__(self, target: str | Path, *, checkpoints: bool = True) -> None:
        self._db = ServiceDB.connect(target)
        if not checkpoints and self._db.dialect == "sqlite":  # another thread checkpoints
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._queue: queue.SimpleQueue[tuple[Entry, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def write(self, entry: Entry) -> Future[None]:
        """Queue one entry; the future is done when it is durable."""
        done: Future[None] = Future()
        if not self._thread.is_alive():
            done.set_exception(RuntimeError("the access log is closed"))
        else:
            self._queue.put((entry, done))
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            stop = False
            while len(group) < GROUP_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                break
        self._db.close()

    def _commit(self, group: list[tuple[Entry, Future[None]]]) -> None:
        try:
            with self._db.transaction() as db:
                db.many(_INSERT, [entry for entry, _ in group])
        except Exception as exc:  # every request of the group fails: none is answered
            for _, done in group:
                done.set_exception(exc)
            return
        for _, done in group:
            done.set_result(None)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close its connection."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


@dataclass(frozen=True)
class AccessEntry:
    """One read of a subject's record."""

    at: str
    actor: str
    role: str
    purpose: str
    what: str


def declared(purpose: str | None) -> str:
    """The declared purpose, or :class:`PurposeRequired` when there is none."""
    text = (purpose or "").strip()
    if not text:
        raise PurposeRequired(
            "a read of a subject's record needs a declared purpose: add ?purpose=... "
            "(it is shown to the subject in their access log)"
        )
    if len(text) > MAX_PURPOSE or any(ord(c) < 32 for c in text):
        raise PurposeRequired(f"the purpose must be one line of at most {MAX_PURPOSE} characters")
    return text


def log_read(svc: Service, subject: str, who: Principal | None, purpose: str, what: str) -> None:
    """Write one entry (``who`` None: the public); return once it is durable."""
    actor, role = (who.name, who.role) if who is not None else ("the public", "public")
    entry = (svc.stamp(), subject, actor, role, purpose, what)
    svc.access_log.write(entry).result(WAIT_SECONDS)


def entries_of(svc: Service, subject: str, *, days: int = LOOKBACK_DAYS) -> list[AccessEntry]:
    """The entries about ``subject`` of the last ``days`` days, newest first."""
    since = (svc.now() - dt.timedelta(days=days)).astimezone(dt.UTC)
    rows = svc.db.query(
        "SELECT at, actor, role, purpose, what FROM svc_access_log WHERE subject = ? "
        "AND at >= ? ORDER BY id DESC",
        (subject, since.isoformat(timespec="seconds")),
    )
    return [AccessEntry(*map(str, row)) for row in rows]

"""The background work of the server: delivering the outbox, and keeping an SQLite
write-ahead log short.

:class:`Dispatcher` runs on a thread of its own, in the server's supervising process (not
in the processes that answer requests). It wakes when a use case has written to the outbox
(:meth:`Dispatcher.wake`, or a datagram from another process on the socket it listens on:
:class:`Waker`) and at least every :data:`TICK_SECONDS`, and then delivers pending notices
to the sink, round after round while the outbox holds more; pending webhook deliveries go
to their subscribers (each retried with exponential backoff until it is delivered) from a
second thread, woken alike, so that a slow subscriber never holds up the notices.
An answered request never waits for a delivery: what it wrote is in the outbox, durably,
before it is answered.

On SQLite it also checkpoints the write-ahead log (``PASSIVE``: it never blocks a writer),
so that the threads committing the access log never have to. On PostgreSQL it keeps the
service tables' planner statistics up with their growth, and vacuums a table full of
dead rows (webhook deliveries once done), as autovacuum does
(:meth:`~socialcredit.store.service_db.ServiceDB.keep_statistics`), after each round a
write woke it for (the ingest of a batch leaves it that, instead of analyzing before its
answer) and every :data:`STATISTICS_SECONDS`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from socialcredit.service.errors import FailureLog

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = ["TICK_SECONDS", "Dispatcher", "Waker"]

TICK_SECONDS = 1.0
STATISTICS_SECONDS = 30.0  # how often the service tables' statistics are checked (PostgreSQL)
log = logging.getLogger(__name__)

HOOKS_JOIN_SECONDS = 1.0
"""How long closing waits for the webhook thread's POST under way."""


class Dispatcher:
    """Delivers the outbox of ``svc`` on a thread of its own until :meth:`close`."""

    def __init__(self, svc: Service, *, listen: Path | None = None) -> None:
        self._svc = svc
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._wal: sqlite3.Connection | None = None
        if svc.db.dialect == "sqlite":
            self._wal = sqlite3.connect(svc.db.where, check_same_thread=False)
        self._listener: socket.socket | None = None
        if listen is not None:  # other processes wake it with a datagram
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._listener.bind(str(listen))
            threading.Thread(target=self._listen, name="dispatch-wake", daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="dispatch", daemon=True)
        self._thread.start()
        # list webhooks on a thread of their own: a slow receiver (each POST may take up to
        # its timeout) never holds up the subjects' notices, nor the server's shutdown
        self._hooks_wake = threading.Event()
        self._hooks = threading.Thread(target=self._run_webhooks, name="webhooks", daemon=True)
        self._hooks.start()

    def wake(self) -> None:
        """Deliver soon: something was written to the outbox."""
        self._wake.set()
        self._hooks_wake.set()

    def _listen(self) -> None:
        assert self._listener is not None
        while True:
            try:
                if not self._listener.recv(16):
                    return  # shut down
            except OSError:  # closed
                return
            self.wake()

    def _run(self) -> None:
        from socialcredit.service.notices import DELIVER_BATCH, deliver

        more = False
        statistics_due = 0.0
        while not self._stop.is_set():
            woken = more
            if not more:
                woken = self._wake.wait(TICK_SECONDS)
                self._wake.clear()
            if self._stop.is_set():
                break
            more = False
            try:
                delivered, _ = deliver(self._svc)
                more = delivered >= DELIVER_BATCH  # a backlog: the next round at once
            except Exception:  # the outbox keeps what failed; the next round retries
                log.exception("delivery failed")
            # the tables' statistics kept up: after a write woke it (a batch sent leaves
            # it that), and every STATISTICS_SECONDS
            if woken or time.monotonic() >= statistics_due:
                self._svc.db.keep_statistics()
                statistics_due = time.monotonic() + STATISTICS_SECONDS
            if self._wal is not None:
                try:
                    self._wal.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("checkpoint failed")

    def _run_webhooks(self) -> None:
        from socialcredit.service.webhooks import deliver_webhooks

        failures = FailureLog(log, "webhook delivery failed")
        while not self._stop.is_set():
            self._hooks_wake.wait(TICK_SECONDS)
            self._hooks_wake.clear()
            if self._stop.is_set():
                break
            try:
                deliver_webhooks(self._svc)
                failures.succeeded()
            except Exception as exc:  # what failed is retried on its schedule
                if not self._stop.is_set():
                    failures.failed(exc)

    def close(self) -> None:
        """Stop the thread after one last round (what still fails stays in the outbox)."""
        self._stop.set()
        self._wake.set()
        self._hooks_wake.set()
        self._thread.join()
        # a POST under way may take up to its timeout: not waited for beyond a moment (what
        # it did not mark delivered goes again after a restart)
        self._hooks.join(HOOKS_JOIN_SECONDS)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        from socialcredit.service.notices import deliver

        try:
            deliver(self._svc)
        except Exception:
            log.exception("delivery failed")
        if self._wal is not None:
            self._wal.close()


class Waker:
    """Wakes the dispatcher of another process of the server: one datagram on the socket
    it listens on. Never blocks and never fails (the dispatcher also wakes on its own)."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def __call__(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.sendto(b"!", self._path)

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

"""The background work of a server process: delivering the outbox, and keeping an SQLite
write-ahead log short.

:class:`Dispatcher` runs on a thread of its own. It wakes when a use case has written to
the outbox (:meth:`Dispatcher.wake`) and at least every :data:`TICK_SECONDS`, and then
delivers pending notices to the sink and pending webhook deliveries to their subscribers
(each retried with exponential backoff until it is delivered). An answered request never
waits for a delivery: what it wrote is in the outbox, durably, before it is answered.

On SQLite it also checkpoints the write-ahead log (``PASSIVE``: it never blocks a writer),
so that the thread committing the access log never has to.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = ["TICK_SECONDS", "Dispatcher"]

TICK_SECONDS = 1.0
log = logging.getLogger(__name__)


class Dispatcher:
    """Delivers the outbox of ``svc`` on a thread of its own until :meth:`close`."""

    def __init__(self, svc: Service) -> None:
        self._svc = svc
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._wal: sqlite3.Connection | None = None
        if svc.db.dialect == "sqlite":
            self._wal = sqlite3.connect(svc.db.where, check_same_thread=False)
        self._thread = threading.Thread(target=self._run, name="dispatch", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver soon: something was written to the outbox."""
        self._wake.set()

    def _run(self) -> None:
        from socialcredit.service.notices import deliver
        from socialcredit.service.webhooks import deliver_webhooks

        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            for step in (deliver, deliver_webhooks):
                try:
                    step(self._svc)
                except Exception:  # the outbox keeps what failed; the next round retries
                    log.exception("delivery failed")
            if self._wal is not None:
                try:
                    self._wal.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("checkpoint failed")

    def close(self) -> None:
        """Stop the thread after one last round (what still fails stays in the outbox)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        from socialcredit.service.notices import deliver

        try:
            deliver(self._svc)
        except Exception:
            log.exception("delivery failed")
        if self._wal is not None:
            self._wal.close()

"""One thread owns the ledger: every call to it runs there, one at a time.

A ledger's connection belongs to the thread that opened it (SQLite's rule), and its writes
are one at a time anyway; the HTTP server answers on many threads. :class:`LedgerWorker`
opens the ledger on a thread of its own and runs each call there, in order (the
single-writer pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from socialcredit.store import Ledger, open_ledger

__all__ = ["LedgerWorker"]

T = TypeVar("T")


class LedgerWorker:
    """The ledger at ``target``, opened and used on one thread of its own."""

    def __init__(self, target: str | Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._ledger: Ledger | None = None
        self.writes = 0  # calls made that may have written; a cache of the ledger compares it
        try:
            self._ledger = self._pool.submit(open_ledger, target).result()
        except BaseException:
            self._pool.shutdown()
            raise

    def call(self, fn: Callable[[Ledger], T]) -> T:
        """Run ``fn(ledger)`` on the ledger's thread and return (or raise) what it did;
        ``fn`` may write."""
        return self.submit(fn).result()

    def submit(self, fn: Callable[[Ledger], T], *, writes: bool = True) -> Future[T]:
        """Start ``fn(ledger)`` on the ledger's thread, after the calls before it; its
        future. When ``fn`` may write (``writes``), the count of writes goes up before the
        future is done."""
        ledger = self._ledger
        if ledger is None:
            raise RuntimeError("the ledger is closed")

        def run(ledger: Ledger) -> T:
            try:
                return fn(ledger)
            finally:
                self.writes += writes

        return self._pool.submit(run, ledger)

    def read(self, fn: Callable[[Ledger], T]) -> T:
        """Run ``fn(ledger)``, which only reads, on the ledger's thread."""
        return self.submit(fn, writes=False).result()

    def close(self) -> None:
        """Close the ledger and stop the thread."""
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            self._pool.submit(ledger.close).result()
        self._pool.shutdown()

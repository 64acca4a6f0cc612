"""States of every subject under each active scheme, cached per (scheme, ledger mark, day).

The ledger's *mark* is the last entry its log of writes records: it changes with every
write, by the service or by anyone else. A decision, a lookup or a portal view reads the
cached :class:`~socialcredit.engine.States` while the mark and the day are the same, and the
whole ledger is read and scored again only when one of them has moved. Preparing the
columns (independent of the day) is cached per mark, evaluating per day.

The mark is read again after every call this process makes to the ledger (so its own
writes are seen at once) and otherwise at most every :data:`MARK_SECONDS`: a write by
another process (another server worker, the command line) is seen within that time. A
decision is then a dictionary look-up and a bit test, with no database round trip.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa

from socialcredit.engine import Prepared, States
from socialcredit.engine.decisions import Decider
from socialcredit.service.ledger_worker import LedgerWorker
from socialcredit.service.schemes import ActiveScheme
from socialcredit.store import Ledger
from socialcredit.store.service_db import ServiceDB

__all__ = ["MARK_SECONDS", "Scored", "StateCache"]

MARK_SECONDS = 0.05


@dataclass
class Scored:
    """The states of one scheme at one mark and day, with their decider."""

    states: States
    decider: Decider


@dataclass
class _Snapshot:
    mark: int
    subjects: pa.Table
    records: pa.Table
    kinds: dict[str, str] | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict)
    scored: dict[tuple[str, int], Scored] = field(default_factory=dict)


class StateCache:
    """Reads the ledger only when it changed; scores each scheme once per mark and day."""

    def __init__(
        self, db: ServiceDB, worker: LedgerWorker, schemes: dict[str, ActiveScheme]
    ) -> None:
        self._db = db
        self._worker = worker
        self._schemes = schemes
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._checked = (-1, 0.0)  # (ledger calls, monotonic time) of the last mark read

    def mark(self) -> int:
        """The ledger's mark: the last entry recorded in its log of writes."""
        row = self._db.one("SELECT coalesce(max(last_seq), 0) FROM batches")
        return int(row[0]) if row else 0

    def _current(self) -> _Snapshot:
        snap = self._snapshot
        calls, at = self._checked
        now = time.monotonic()
        if snap is not None and calls == self._worker.calls and now - at < MARK_SECONDS:
            return snap
        self._checked = (self._worker.calls, now)
        mark = self.mark()
        if snap is not None and snap.mark == mark:
            return snap
        with self._lock:
            snap = self._snapshot
            mark = self.mark()
            if snap is None or snap.mark != mark:

                def read(ledger: Ledger) -> tuple[pa.Table, pa.Table]:
                    return ledger.subjects(), ledger.records()

                subjects, records = self._worker.call(read)
                snap = self._snapshot = _Snapshot(mark, subjects, records)
                self._checked = (self._worker.calls, time.monotonic())
            return snap

    def scored(self, scheme: str, day: int) -> Scored:
        """The states (and decider) of ``scheme`` at ``day`` over the current ledger."""
        snap = self._current()
        found = snap.scored.get((scheme, day))
        if found is not None:
            return found
        with self._lock:
            found = snap.scored.get((scheme, day))
            if found is None:
                active = self._schemes[scheme]
                prepared = snap.prepared.get(scheme)
                if prepared is None:
                    prepared = snap.prepared[scheme] = active.engine.prepare(
                        snap.subjects, snap.records
                    )
                states = active.engine.evaluate(prepared, day)
                found = Scored(states, Decider(states))
                for key in [k for k in snap.scored if k[1] != day]:
                    del snap.scored[key]  # keep one day per scheme
                snap.scored[(scheme, day)] = found
            return found

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, from the same snapshot."""
        snap = self._current()
        kinds = snap.kinds
        if kinds is None:
            with self._lock:
                kinds = snap.kinds
                if kinds is None:
                    kinds = snap.kinds = dict(
                        zip(
                            snap.subjects["code"].to_pylist(),
                            snap.subjects["kind"].to_pylist(),
                            strict=True,
                        )
                    )
        return kinds.get(code)

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, read from the ledger itself."""
        return self._worker.call(lambda ledger: ledger.records_of(code))

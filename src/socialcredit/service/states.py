"""States of every subject under each active scheme, cached per (scheme, ledger mark, day).

The ledger's *mark* is the last entry its log of writes records: it changes with every
write, by the service or by anyone else. A decision, a lookup or a portal view reads a
cached :class:`Snapshot` while the mark and the day are the same, and the whole ledger is
read and scored again only when one of them has moved. Preparing the columns (independent
of the day) is cached per mark, evaluating per day.

The mark is read again after every call this process makes to the ledger (so its own
writes are seen at once) and otherwise at most every :data:`MARK_SECONDS`: a write by
another process (another server worker, the command line) is seen within that time. The
same read gives the *appeals mark* (the newest appeal and the number of decisions on
appeals), by which the open appeals -- what makes a record contested -- are kept in
memory too. A decision is then a dictionary look-up and a bit test, with no database round
trip.

Two kinds of cache answer the same questions (:class:`States`): :class:`StateCache` scores
the ledger in this process; :class:`socialcredit.service.published.PublishedStates` reads
the states that another process of the same server scored and published.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa

from socialcredit.days import from_day
from socialcredit.engine import Prepared
from socialcredit.engine import States as EngineStates
from socialcredit.engine.decisions import Decider, Decision
from socialcredit.ids import normal_code
from socialcredit.service.errors import Outdated
from socialcredit.service.ledger_worker import LedgerWorker
from socialcredit.service.schemes import ActiveScheme
from socialcredit.store import Ledger
from socialcredit.store.base import Query
from socialcredit.store.service_db import ServiceDB

__all__ = [
    "MARK_SECONDS",
    "LocalView",
    "Marks",
    "SchemeView",
    "Scored",
    "Snapshot",
    "StateCache",
    "States",
    "Watch",
    "code_of",
    "one_subject",
]

MARK_SECONDS = 0.05

code_of = functools.lru_cache(maxsize=1 << 16)(normal_code)
"""A code in the normal form of the registry (:func:`~socialcredit.ids.normal_code`),
remembered for the codes asked about most."""

_MARKS = (
    "SELECT (SELECT coalesce(max(last_seq), 0) FROM batches), "
    "(SELECT coalesce(max(id), 0) FROM svc_appeals), "
    "(SELECT count(*) FROM svc_appeal_decisions), "
    "(SELECT coalesce(max(id), 0) FROM svc_scheme_versions)"
)
_OPEN_APPEALS = (
    "SELECT a.subject, a.record_id FROM svc_appeals AS a LEFT JOIN svc_appeal_decisions "
    "AS d ON d.appeal_id = a.id WHERE d.appeal_id IS NULL"
)


@dataclass(frozen=True)
class Marks:
    """What a read of the marks found: the ledger's mark and the appeals' mark."""

    ledger: int
    appeals: tuple[int, int]


class Watch:
    """Reads the marks on a connection of its own, at most every :data:`MARK_SECONDS`
    unless this process wrote since (``written()`` counts the writes it made)."""

    def __init__(
        self,
        target: str,
        written: Callable[[], int],
        outdated: Callable[[Query], str | None] | None = None,
    ) -> None:
        self._db = ServiceDB.connect(target)
        self._written = written
        self._outdated = outdated
        self._lock = threading.Lock()
        self._marks = Marks(-1, (-1, -1))
        self._checked = (-1, -1.0)  # (writes, monotonic time) of the last read
        self._appeals: tuple[tuple[int, int], dict[str, frozenset[str]]] | None = None
        # the last row of svc_scheme_versions seen, and what outdated() said then
        self._schemes: tuple[int, str | None] = (-1, None)

    def fresh(self) -> Marks | None:
        """The marks, when they were read recently enough (never blocks); None too when
        the schemes are outdated (:meth:`marks` then says so)."""
        writes, at = self._checked
        if (
            writes == self._written()
            and time.monotonic() - at < MARK_SECONDS
            and self._schemes[1] is None
        ):
            return self._marks
        return None

    def marks(self) -> Marks:
        """The marks, read again when they are not fresh. Raises :class:`Outdated` while
        the schemes this process runs are no longer those in force on its database (the
        ``outdated`` check, made again each time another version or scheme is recorded
        there)."""
        found = self.fresh()
        if found is not None:
            return found
        with self._lock:
            found = self.fresh()
            if found is not None:
                return found
            writes = self._written()
            row = self._db.one(_MARKS)
            assert row is not None
            if int(row[3]) != self._schemes[0]:
                why = None if self._outdated is None else self._outdated(self._db.query)
                self._schemes = (int(row[3]), why)
            if self._schemes[1] is not None:
                raise Outdated(self._schemes[1])
            self._marks = Marks(int(row[0]), (int(row[1]), int(row[2])))
            self._checked = (writes, time.monotonic())
            return self._marks

    def open_appeals(self) -> dict[str, frozenset[str]]:
        """The records under an open appeal, by subject."""
        found: dict[str, set[str]] = {}
        for subject, record in self._db.query(_OPEN_APPEALS):
            found.setdefault(str(subject), set()).add(str(record))
        return {s: frozenset(r) for s, r in found.items()}

    def contested(self, code: str) -> frozenset[str]:
        """The records of ``code`` under an open appeal, read again when the appeals'
        mark moved."""
        marks = self.marks()
        known = self._appeals
        if known is None or known[0] != marks.appeals:
            known = self._appeals = (marks.appeals, self.open_appeals())
        return known[1].get(code, frozenset())

    def ready_contested(self, code: str) -> frozenset[str] | None:
        """:meth:`contested` when the open appeals are known to be current, else None
        (never blocks)."""
        marks = self.fresh()
        known = self._appeals
        if marks is None or known is None or known[0] != marks.appeals:
            return None
        return known[1].get(code, frozenset())

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class SchemeView(Protocol):
    """The states of one scheme at one mark and day, as the use cases ask about them."""

    @property
    def date(self) -> str:
        """The date of evaluation, ``YYYY-MM-DD``."""
        ...

    def decide(self, code: str, action: str) -> Decision | None:
        """May ``code`` do ``action``? None when the scheme does not score ``code``."""
        ...

    def lists(self, code: str) -> list[bool] | None:
        """Whether ``code`` is on each list of the scheme (in its order); None when the
        scheme does not score it."""
        ...

    def states_of(self, code: str, records: pa.Table | None = None) -> EngineStates | None:
        """States in which ``code`` is scored (to explain it), or None. May read the
        ledger (unless given the subject's ``records``): call it off the event loop."""
        ...

    def members(self, k: int) -> set[str]:
        """The codes on list ``k`` of the scheme."""
        ...


class Snapshot(Protocol):
    """Every active scheme at one ledger mark and one day, and the registry."""

    @property
    def mark(self) -> int:
        """The ledger's mark the states were read at (or after)."""
        ...

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, or None."""
        ...

    def scheme(self, scheme: str) -> SchemeView:
        """The states of an active scheme."""
        ...


class States(Protocol):
    """What the use cases read: snapshots, the registry, records and open appeals."""

    def current(self, day: int) -> Snapshot:
        """The snapshot at ``day`` over the ledger as it is now; may read and score it."""
        ...

    def ready(self, day: int) -> Snapshot | None:
        """The snapshot at ``day`` when it is known to be current, without waiting for
        anything (for the event loop); else None, and :meth:`current` is the way."""
        ...

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, or None."""
        ...

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, read from the ledger itself."""
        ...

    def contested(self, code: str) -> frozenset[str]:
        """The subject's records under an open appeal."""
        ...

    def ready_contested(self, code: str) -> frozenset[str] | None:
        """:meth:`contested` when the open appeals are known to be current, else None."""
        ...

    def close(self) -> None:
        """Release what the cache holds open."""
        ...


@dataclass
class Scored:
    """The states of one scheme at one mark and day, with their decider."""

    states: EngineStates
    decider: Decider


class LocalView:
    """A :class:`SchemeView` over states scored in this process."""

    def __init__(self, scored: Scored) -> None:
        self.scored = scored
        self.date = scored.states.date

    def decide(self, code: str, action: str) -> Decision | None:
        if self.scored.states.index(code) is None:
            return None
        return self.scored.decider.may(code, action)

    def lists(self, code: str) -> list[bool] | None:
        i = self.scored.states.index(code)
        if i is None:
            return None
        return [bool(x) for x in self.scored.states.raw.lists[:, i]]

    def states_of(self, code: str, records: pa.Table | None = None) -> EngineStates | None:
        return self.scored.states if self.scored.states.index(code) is not None else None

    def members(self, k: int) -> set[str]:
        states = self.scored.states
        rows = np.flatnonzero(states.raw.lists[k])
        return set(states.codes.take(rows).to_pylist()) if len(rows) else set()


def one_subject(
    active: ActiveScheme, code: str, kind: str, records: pa.Table, day: int
) -> EngineStates | None:
    """The states of one subject from its own records (a subject's state depends on its
    own records alone: a ``ref`` names a record of the same subject), or None when the
    scheme does not score its kind."""
    if kind not in active.scheme.subjects:
        return None
    subjects = pa.table({"code": [code], "kind": [kind]})
    return active.engine.evaluate(active.engine.prepare(subjects, records), day)


@dataclass
class _Ledger:
    """What this process read of the ledger at one mark."""

    mark: int
    subjects: pa.Table
    records: pa.Table
    kinds: dict[str, str] | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict)
    scored: dict[tuple[str, int], Scored] = field(default_factory=dict)


class _LocalSnapshot:
    def __init__(self, ledger: _Ledger, day: int, views: dict[str, LocalView]) -> None:
        self._ledger = ledger
        self.mark = ledger.mark
        self.day = day
        self.date = from_day(day).isoformat()
        self._views = views

    def kind_of(self, code: str) -> str | None:
        kinds = self._ledger.kinds
        assert kinds is not None
        return kinds.get(code)

    def scheme(self, scheme: str) -> LocalView:
        return self._views[scheme]

    def views(self) -> dict[str, LocalView]:
        """Every scheme's view, in the order of the active schemes."""
        return dict(self._views)

    def registry(self) -> pa.Table:
        """The registered subjects (``code``, ``kind``) of the same read."""
        return self._ledger.subjects

    def records(self) -> pa.Table:
        """Every record of the ledger, of the same read."""
        return self._ledger.records


class StateCache:
    """Reads the ledger only when it changed; scores each scheme once per mark and day."""

    def __init__(
        self,
        worker: LedgerWorker,
        schemes: dict[str, ActiveScheme],
        watch: Watch,
    ) -> None:
        self._worker = worker
        self._schemes = schemes
        self._watch = watch
        self._ledger: _Ledger | None = None
        self._snapshots: dict[int, _LocalSnapshot] = {}  # by day, of self._ledger
        self._lock = threading.RLock()

    def mark(self) -> int:
        """The ledger's mark: the last entry recorded in its log of writes."""
        return self._watch.marks().ledger

    def schemes(self) -> list[ActiveScheme]:
        """The active schemes, in their order (that of every snapshot's views)."""
        return list(self._schemes.values())

    def _read(self) -> _Ledger:
        mark = self._watch.marks().ledger
        snap = self._ledger
        if snap is not None and snap.mark == mark:
            return snap
        with self._lock:
            snap = self._ledger
            mark = self._watch.marks().ledger
            if snap is None or snap.mark != mark:

                def read(ledger: Ledger) -> tuple[pa.Table, pa.Table]:
                    return ledger.subjects(), ledger.records()

                subjects, records = self._worker.read(read)
                snap = self._ledger = _Ledger(mark, subjects, records)
                self._snapshots = {}
            return snap

    def scored(self, scheme: str, day: int) -> Scored:
        """The states (and decider) of ``scheme`` at ``day`` over the current ledger."""
        snap = self._read()
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

    def current(self, day: int) -> _LocalSnapshot:
        """Every scheme scored at ``day`` over the ledger as it is now."""
        snap = self._read()
        found = self._snapshots.get(day)
        if found is not None and found.mark == snap.mark:
            return found
        with self._lock:
            while True:
                views = {sid: LocalView(self.scored(sid, day)) for sid in self._schemes}
                self.kind_of("")  # the registry of the same read
                snap = self._read()
                if all(v.scored is snap.scored.get((sid, day)) for sid, v in views.items()):
                    break  # else the ledger moved meanwhile: again
            found = _LocalSnapshot(snap, day, views)
            self._snapshots = {day: found}
            return found

    def ready(self, day: int) -> _LocalSnapshot | None:
        """The snapshot at ``day`` when the marks are fresh and it is scored, else None."""
        marks = self._watch.fresh()
        found = self._snapshots.get(day)
        if marks is None or found is None or found.mark != marks.ledger:
            return None
        return found

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, from the same read of the ledger."""
        snap = self._read()
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
        return self._worker.read(lambda ledger: ledger.records_of(code))

    def contested(self, code: str) -> frozenset[str]:
        """The subject's records under an open appeal."""
        return self._watch.contested(code)

    def ready_contested(self, code: str) -> frozenset[str] | None:
        """:meth:`contested` when the open appeals are known to be current, else None."""
        return self._watch.ready_contested(code)

    def close(self) -> None:
        """Close the connection that reads the marks."""
        self._watch.close()

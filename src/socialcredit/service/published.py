"""States scored once for every process of the server, published as arrays in files.

Scoring a large ledger takes memory and time (at a million subjects and twenty million
records, gigabytes and a minute), and every process answering requests needs the same
states. So the server's supervising process scores the ledger (its
:class:`~socialcredit.service.states.StateCache`) and :class:`Publisher` writes what the
hot paths read, per registered subject, as NumPy arrays in the server's private directory:
the codes (sorted) and kinds of the registry and, for each scheme, whether it scores the
subject, the bitmask of the measures that apply to it and the bitmask of the lists it is
on. The processes answering requests map those files (:class:`PublishedStates`): a few
tens of megabytes shared through the page cache, instead of a scored ledger each.

A publication is made on demand: a process that finds the ledger's mark (or the day) past
the newest publication asks for one (a datagram) and waits for it, so an answer is never
staler than the mark read within the last 50 ms (docs/service.md, "Speed"), as in a single
process. A decision is then the row of the code (a binary search in the sorted codes) and a
bit test done by the engine's own :class:`~socialcredit.engine.decisions.Decider`.

The first publication of a day scores the whole ledger. After a write, only the subjects
the write touched are scored again: a subject's state depends on its own records alone, so
the publisher reads the entries past the mark it published
(:class:`~socialcredit.service.ledger_delta.Delta`), takes the records of the subjects they
name from the ledger it holds (with the new ones), scores those subjects and writes their
rows into a copy of the arrays -- seconds at twenty million records, where reading and
scoring the whole ledger again takes minutes. A write of more than :data:`DELTA_SHARE` of
the ledger, another day, or a delta that cannot be read is scored whole again.

What needs more than the arrays -- an explanation (the portal, a contested decision, an
organization's published records) -- is computed for that one subject from its own records
(:func:`~socialcredit.service.states.one_subject`), with the same kernel: a subject's state
depends on its own records alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import from_day
from socialcredit.engine import States as EngineStates
from socialcredit.engine.decisions import Decider, Decision
from socialcredit.errors import LedgerError
from socialcredit.records import empty_records
from socialcredit.service.errors import FailureLog
from socialcredit.service.ledger_delta import Delta, Entries
from socialcredit.service.ledger_worker import LedgerWorker
from socialcredit.service.schemes import ActiveScheme
from socialcredit.service.states import (
    MARK_SECONDS,
    StateCache,
    Watch,
    one_subject,
)

__all__ = ["DELTA_SHARE", "WAIT_SECONDS", "PublishedStates", "Publisher", "publishable"]

WAIT_SECONDS = 900.0  # the longest a request waits for a publication
KINDS = ("person", "organization")
POINTER = "current"
_ROWS_REMEMBERED = 1 << 17
DELTA_SHARE = 0.25  # a write of more records than this share of the ledger: score it whole
DELTA_LEAST = 100_000  # ... unless it has at most this many records
log = logging.getLogger(__name__)

U64 = npt.NDArray[np.uint64]


def publishable(schemes: dict[str, ActiveScheme]) -> bool:
    """Whether the states of these schemes fit the arrays (64 measures and 64 lists at
    most per scheme); if not, each process scores the ledger itself."""
    return all(len(a.scheme.measures) <= 64 and len(a.scheme.lists) <= 64 for a in schemes.values())


def _codes(values: list[str]) -> npt.NDArray[np.bytes_]:
    """Codes as fixed-width UTF-8 bytes (at least one byte wide)."""
    encoded = [c.encode("utf-8") for c in values]
    width = max((len(c) for c in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def _bits(member: npt.NDArray[np.bool_]) -> U64:
    """Columns of a [k, n] boolean matrix as n bitmasks (bit j: row j)."""
    k, n = member.shape
    out = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        out |= member[j].astype(np.uint64) << np.uint64(j)
    return out


def _grown(values: npt.NDArray[Any], order: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
    """``values`` with zeros for the rows added at the end, in ``order``."""
    more = np.zeros(len(order) - len(values), dtype=values.dtype)
    return np.concatenate([values, more])[order]


class _Published:
    """What the publisher holds of its last publication: the ledger it scored (the
    registry and every record, in memory) and the arrays it wrote."""

    def __init__(
        self,
        mark: int,
        day: int,
        subjects: pa.Table,
        records: pa.Table,
        codes: npt.NDArray[np.bytes_],
        kinds: npt.NDArray[np.int8],
        arrays: list[tuple[U64, U64, npt.NDArray[np.bool_]]],
    ) -> None:
        self.mark = mark
        self.day = day
        self.subjects = subjects
        self.records = records
        self.codes = codes
        self.kinds = kinds
        self.arrays = arrays  # per scheme: applied, lists, scored


class Publisher:
    """In the supervising process: scores the ledger when a process asks, and publishes.

    ``listen`` is the datagram socket on which processes ask; ``where`` the directory of
    the publications; ``database`` the ledger, whose entries past the published mark are
    read to score again only the subjects a write touched (without it, every publication
    scores the whole ledger). One thread does the work; :meth:`close` stops it.
    """

    def __init__(
        self,
        states: StateCache,
        day: Callable[[], int],
        where: Path,
        listen: Path,
        *,
        database: str | None = None,
    ) -> None:
        self._states = states
        self._day = day  # () -> today's day number
        self._where = where
        self._delta = Delta(database) if database is not None else None
        self._last: _Published | None = None
        self.scored_whole = 0  # publications that scored the whole ledger (for tests)
        self._asked = threading.Event()
        self._stop = threading.Event()
        self._published: tuple[int, int] | None = None
        self._generation = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._listener.bind(str(listen))
        threading.Thread(target=self._listen, name="publish-asked", daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="publish", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                if not self._listener.recv(16):
                    return
            except OSError:
                return
            self._asked.set()

    def _run(self) -> None:
        failures = FailureLog(log, "publishing the states failed")
        while not self._stop.is_set():
            self._asked.wait(1.0)
            if self._stop.is_set():
                break
            if not self._asked.is_set():
                continue
            self._asked.clear()
            try:
                self.publish()
                failures.succeeded()
            except Exception as exc:  # the processes keep waiting, and ask again
                failures.failed(exc)

    def publish(self) -> bool:
        """Score the ledger as it is now and publish, unless that was published already;
        whether a publication was made."""
        day = self._day()
        last = self._last
        if last is not None and last.day == day and self._delta is not None:
            if self._states.mark() == last.mark:
                return False
            most = max(DELTA_LEAST, int(last.records.num_rows * DELTA_SHARE))
            entries = self._delta.since(last.mark, most=most)
            if entries is not None:
                if entries.mark <= last.mark:
                    return False
                self._last = None  # (if scoring fails, the next one scores it whole)
                started = time.monotonic()
                done = self._advance(last, entries)
                self._write(done)
                self._last = done
                log.info(
                    "published mark %d: %d record(s) since mark %d scored again in %.1f s",
                    entries.mark,
                    entries.records.num_rows,
                    last.mark,
                    time.monotonic() - started,
                )
                return True
        snap = self._states.current(day)
        if self._published == (snap.mark, day):
            return False
        self.scored_whole += 1
        registry = snap.registry()
        codes = _codes(registry["code"].to_pylist())
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        kinds = np.array([KINDS.index(k) for k in registry["kind"].to_pylist()], dtype=np.int8)[
            order
        ]
        arrays = []
        for view in snap.views().values():
            states = view.scored.states
            rows = np.searchsorted(codes, _codes(states.codes.to_pylist()))
            applied = np.zeros(len(codes), dtype=np.uint64)
            lists = np.zeros(len(codes), dtype=np.uint64)
            scored = np.zeros(len(codes), dtype=np.bool_)
            if len(rows):
                applied[rows] = view.scored.decider.bits
                lists[rows] = _bits(states.raw.lists)
                scored[rows] = True
            arrays.append((applied, lists, scored))
        done = _Published(snap.mark, day, registry, snap.records(), codes, kinds, arrays)
        self._write(done)
        self._last = done
        return True

    def _advance(self, last: _Published, entries: Entries) -> _Published:
        """The publication after ``entries``: the subjects they name scored again, with
        all their records, and their rows written into the arrays (new subjects added)."""
        subjects, records = last.subjects, last.records
        codes, kinds, arrays = last.codes, last.kinds, last.arrays
        if entries.subjects.num_rows:
            subjects = pa.concat_tables([subjects, entries.subjects.cast(subjects.schema)])
            added = _codes(entries.subjects["code"].to_pylist())
            joined = np.concatenate([codes, added])  # the wider of the two widths
            order = np.argsort(joined, kind="stable")
            codes = joined[order]
            more = np.array(
                [KINDS.index(k) for k in entries.subjects["kind"].to_pylist()], dtype=np.int8
            )
            kinds = np.concatenate([kinds, more])[order]
            arrays = [(_grown(a, order), _grown(b, order), _grown(c, order)) for a, b, c in arrays]
        else:
            arrays = [(a.copy(), b.copy(), c.copy()) for a, b, c in arrays]
        if entries.records.num_rows:
            records = pa.concat_tables([records, entries.records.cast(records.schema)])
        touched = pc.unique(
            pa.concat_arrays(
                [
                    entries.records["subject"].combine_chunks(),
                    entries.subjects["code"].combine_chunks(),
                ]
            )
        )
        theirs = records.filter(pc.is_in(records["subject"], value_set=touched))
        who = subjects.filter(pc.is_in(subjects["code"], value_set=touched))
        for active, (applied, lists, scored) in zip(self._states.schemes(), arrays, strict=True):
            states = active.engine.evaluate(active.engine.prepare(who, theirs), last.day)
            if not len(states):
                continue
            rows = np.searchsorted(codes, _codes(states.codes.to_pylist()))
            applied[rows] = Decider(states).bits
            lists[rows] = _bits(states.raw.lists)
            scored[rows] = True
        return _Published(entries.mark, last.day, subjects, records, codes, kinds, arrays)

    def _write(self, done: _Published) -> None:
        """Write a publication and point to it."""
        self._generation += 1
        name = f"gen-{self._generation}"
        tmp = self._where / f"{name}.tmp"
        tmp.mkdir()
        np.save(tmp / "codes.npy", done.codes)
        np.save(tmp / "kinds.npy", done.kinds)
        schemes = []
        for j, (active, (applied, lists, scored)) in enumerate(
            zip(self._states.schemes(), done.arrays, strict=True)
        ):
            np.save(tmp / f"applied-{j}.npy", applied)
            np.save(tmp / f"lists-{j}.npy", lists)
            np.save(tmp / f"scored-{j}.npy", scored)
            schemes.append({"scheme": active.id, "date": from_day(done.day).isoformat()})
        meta = {"mark": done.mark, "day": done.day, "schemes": schemes, "kinds": list(KINDS)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        tmp.rename(self._where / name)
        pointer = self._where / f"{POINTER}.tmp"
        pointer.write_text(name)
        os.replace(pointer, self._where / POINTER)
        self._published = (done.mark, done.day)
        for old in self._where.glob("gen-*"):  # the one before stays, for a late reader
            if old.name not in (name, f"gen-{self._generation - 1}"):
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._asked.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._delta is not None:
            self._delta.close()


class _Rows:
    """What :class:`Decider` asks of its states: the row of a code, and the scheme."""

    def __init__(self, publication: _Publication, j: int, scheme_id: str) -> None:
        self._publication = publication
        self._scored = publication.scored[j]
        self.scheme_id = scheme_id

    def index(self, code: str) -> int | None:
        i = self._publication.row(code)
        return i if i is not None and self._scored[i] else None


class _Publication:
    """One publication, mapped."""

    def __init__(self, where: Path, schemes: dict[str, ActiveScheme]) -> None:
        meta = json.loads((where / "meta.json").read_text())
        self.mark = int(meta["mark"])
        self.day = int(meta["day"])
        self.kinds = tuple(meta["kinds"])
        self.codes = np.load(where / "codes.npy", mmap_mode="r")
        self.kind = np.load(where / "kinds.npy", mmap_mode="r")
        self.width = self.codes.dtype.itemsize
        self._rows: dict[str, int | None] = {}
        self.views: dict[str, PublishedView] = {}
        self.scored: list[npt.NDArray[np.bool_]] = []
        for j, entry in enumerate(meta["schemes"]):
            sid = entry["scheme"]
            self.scored.append(np.load(where / f"scored-{j}.npy", mmap_mode="r"))
            self.views[sid] = PublishedView(
                self,
                j,
                schemes[sid],
                entry["date"],
                np.load(where / f"applied-{j}.npy", mmap_mode="r"),
                np.load(where / f"lists-{j}.npy", mmap_mode="r"),
            )

    def row(self, code: str) -> int | None:
        """The row of a registered code (a binary search, remembered for the codes asked
        about most), or None."""
        rows = self._rows
        if code in rows:
            return rows[code]
        key = code.encode("utf-8")
        found: int | None = None
        if key and len(key) <= self.width and not key.endswith(b"\x00"):
            i = int(np.searchsorted(self.codes, key))
            if i < len(self.codes) and self.codes[i] == key:
                found = i
        if len(rows) >= _ROWS_REMEMBERED:
            rows.clear()
        rows[code] = found
        return found

    def kind_of(self, code: str) -> str | None:
        i = self.row(code)
        return None if i is None else self.kinds[int(self.kind[i])]


class PublishedView:
    """A :class:`~socialcredit.service.states.SchemeView` over published arrays."""

    def __init__(
        self,
        publication: _Publication,
        j: int,
        active: ActiveScheme,
        date: str,
        applied: U64,
        lists: U64,
    ) -> None:
        self._publication = publication
        self._active = active
        self._scored = publication.scored[j]
        self._lists = lists
        self._list_ids = [spec.id for spec in active.scheme.lists]
        self.date = date
        self.ledger: LedgerWorker | None = None  # set by PublishedStates
        empty = active.engine.prepare(
            pa.table({"code": pa.array([], pa.string()), "kind": pa.array([], pa.string())}),
            _EMPTY_RECORDS,
        )
        self._decider = Decider(active.engine.evaluate(empty, publication.day))
        # the engine's decider, over the published bitmasks and rows
        self._decider.bits = applied
        self._decider.states = cast(EngineStates, _Rows(publication, j, active.id))

    def decide(self, code: str, action: str) -> Decision | None:
        if self._decider.states.index(code) is None:
            return None
        return self._decider.may(code, action)

    def lists(self, code: str) -> list[bool] | None:
        i = self._decider.states.index(code)
        if i is None:
            return None
        bits = int(self._lists[i])
        return [bool(bits >> k & 1) for k in range(len(self._list_ids))]

    def states_of(self, code: str, records: pa.Table | None = None) -> EngineStates | None:
        kind = self._publication.kind_of(code)
        if kind is None or self._decider.states.index(code) is None:
            return None
        if records is None:
            assert self.ledger is not None
            records = self.ledger.read(lambda ledger: ledger.records_of(code))
        return one_subject(self._active, code, kind, records, self._publication.day)

    def members(self, k: int) -> set[str]:
        on = np.flatnonzero(
            np.asarray(self._scored) & ((np.asarray(self._lists) >> np.uint64(k)) & 1).astype(bool)
        )
        codes = self._publication.codes
        return {bytes(codes[i]).decode("utf-8") for i in on}


_EMPTY_RECORDS = empty_records()


class _PublishedSnapshot:
    def __init__(self, publication: _Publication) -> None:
        self._publication = publication
        self.mark = publication.mark
        self.day = publication.day
        self.date = from_day(publication.day).isoformat()

    def kind_of(self, code: str) -> str | None:
        return self._publication.kind_of(code)

    def scheme(self, scheme: str) -> PublishedView:
        return self._publication.views[scheme]


class PublishedStates:
    """A :class:`~socialcredit.service.states.States` over the publications of the
    supervising process: ``where`` holds them, ``ask`` is its socket."""

    def __init__(
        self,
        where: Path,
        ask: Path,
        worker: LedgerWorker,
        schemes: dict[str, ActiveScheme],
        watch: Watch,
        day: Callable[[], int],
    ) -> None:
        self._day = day
        self._where = where
        self._ask_at = str(ask)
        self._asker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._asker.setblocking(False)
        self._worker = worker
        self._schemes = schemes
        self._watch = watch
        self._lock = threading.Lock()
        self._name: str | None = None
        self._snapshot: _PublishedSnapshot | None = None
        self._pointer_read = -1.0

    def _latest(self, *, force: bool = False) -> _PublishedSnapshot | None:
        """The newest publication (the pointer read at most every 50 ms unless forced)."""
        now = time.monotonic()
        if not force and now - self._pointer_read < MARK_SECONDS:
            return self._snapshot
        with self._lock:
            try:
                name = (self._where / POINTER).read_text()
            except FileNotFoundError:
                name = None
            self._pointer_read = now
            if name is not None and name != self._name:
                publication = _Publication(self._where / name, self._schemes)
                for view in publication.views.values():
                    view.ledger = self._worker
                self._snapshot = _PublishedSnapshot(publication)
                self._name = name
            return self._snapshot

    def _ask(self) -> None:
        with contextlib.suppress(OSError):
            self._asker.sendto(b"?", self._ask_at)

    @staticmethod
    def _covers(snap: _PublishedSnapshot | None, mark: int, day: int) -> bool:
        return snap is not None and snap.mark >= mark and snap.day >= day

    def current(self, day: int) -> _PublishedSnapshot:
        """The publication covering the ledger's mark and ``day``; asks for one and waits
        when there is none yet."""
        mark = self._watch.marks().ledger
        snap = self._latest()
        if self._covers(snap, mark, day):
            assert snap is not None
            return snap
        deadline = time.monotonic() + WAIT_SECONDS
        asked = 0.0
        while True:
            self._watch.marks()  # a server outdated meanwhile is told so (Outdated)
            snap = self._latest(force=True)
            if self._covers(snap, mark, day):
                assert snap is not None
                return snap
            now = time.monotonic()
            if now > deadline:
                raise LedgerError("the states of the ledger were not published in time")
            if now - asked > 1.0:  # ask again now and then, in case a datagram was lost
                self._ask()
                asked = now
            time.sleep(0.005)

    def ready(self, day: int) -> _PublishedSnapshot | None:
        marks = self._watch.fresh()
        snap = self._snapshot
        if marks is None or not self._covers(snap, marks.ledger, day):
            return None
        return snap

    def kind_of(self, code: str) -> str | None:
        return self.current(self._day()).kind_of(code)

    def records_of(self, code: str) -> pa.Table:
        return self._worker.read(lambda ledger: ledger.records_of(code))

    def contested(self, code: str) -> frozenset[str]:
        return self._watch.contested(code)

    def ready_contested(self, code: str) -> frozenset[str] | None:
        return self._watch.ready_contested(code)

    def close(self) -> None:
        self._asker.close()
        self._watch.close()

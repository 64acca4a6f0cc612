"""The ledger interface: a registry of subjects and an append-only, hash-chained ledger.

:class:`Ledger` is what the rest of the product sees; :mod:`socialcredit.store.sqlite`
implements it on an SQLite file, and a PostgreSQL store implements the same hooks. The
checks are shared (:mod:`socialcredit.store.checks`) and run here, inside the store's
write transaction, so every backend accepts and refuses exactly the same batches, and a
refused batch leaves the ledger as it was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import InvalidInput, LedgerError
from socialcredit.records import RECORD_FIELDS
from socialcredit.store.checks import (
    SubjectsCheck,
    as_mask,
    check_batch,
    check_subjects,
    conform_records,
    conform_subjects,
    shown_code,
    sort_problems,
)
from socialcredit.store.files import Loaded
from socialcredit.store.origin import Origin

__all__ = [
    "AppendResult",
    "Batch",
    "Found",
    "Guard",
    "Ledger",
    "Query",
    "SubjectIndex",
    "SubjectsAdded",
    "VerifyReport",
]


Query = Callable[[str], list[tuple[Any, ...]]]
"""Runs a statement that takes no parameter and gives its rows."""
Guard = Callable[[Query], None]
"""Called inside an append's write transaction (:meth:`Ledger.append`): raises to refuse it."""


class AppendResult(NamedTuple):
    """What :meth:`Ledger.append` did: records appended, and records skipped because an
    identical record was already in the ledger (or earlier in the batch)."""

    appended: int
    duplicates_skipped: int
    subjects_added: int = 0  # subjects registered with the batch


@dataclass(frozen=True)
class Found:
    """What :meth:`Ledger.look_up` found for a batch: the ids it looked for (the batch's
    ids and the ids its refs name), the ledger's records among them (with each one's
    entry, ``seq``), and the ledger's last entry then (``as_of``) with its hash
    (``head``)."""

    ids: pa.Array
    rows: pa.Table
    as_of: int
    head: bytes

    def records(self) -> pa.Table:
        """The records found, canonical columns."""
        return self.rows.select(list(RECORD_FIELDS))


RECORDS_PER_BATCH = (
    "SELECT b.source, (SELECT count(*) FROM records AS r WHERE r.seq BETWEEN b.first_seq "
    "AND b.last_seq) FROM batches AS b ORDER BY b.batch"
)
"""Each write's source and how many records it appended, in the order of the log."""


class Batch(NamedTuple):
    """One write to the ledger: its number, where it came from, its first and last entry,
    and when it was committed (UTC, ISO 8601). The log of batches is not part of the
    chain, but its heads are checked by :meth:`Ledger.verify`."""

    batch: int
    source: str
    first_seq: int
    last_seq: int
    appended_at: str


class SubjectsAdded(NamedTuple):
    """What :meth:`Ledger.add_subjects` did: subjects registered, and subjects skipped
    because they were already registered with the same kind."""

    added: int
    already_present: int


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`Ledger.verify`.

    ``ok`` is true when every entry's hash matches its content and its place in the
    chain, and the store's own ways of finding entries agree with them (an SQLite
    ledger's table of records by subject). Otherwise ``first_bad`` is the sequence number
    of the first entry that fails, ``key`` its record id or subject code (None for a
    missing entry), and ``reason`` says
    what is wrong. ``entries_checked`` counts the entries read; ``head`` is the hex hash of
    the last entry (compare it with a copy kept elsewhere to detect a cut-off tail).
    """

    ok: bool
    entries_checked: int
    first_bad: int | None = None
    reason: str = ""
    key: str | None = None
    head: str = ""


class SubjectIndex:
    """The code, entry and kind of every registered subject, kept in memory by a store.

    Subjects are only ever appended, so what was read stays true: :meth:`add` takes the
    entries registered since :attr:`mark` (the last entry read), and :meth:`among` finds
    a batch's codes with one hash of the smaller side, instead of a query of the subjects'
    index per code (a tenth of a second per 100,000 codes). Kinds are kept as small
    numbers into :attr:`kind_names`. After a rollback, :meth:`cut` drops the entries read
    inside the transaction.
    """

    def __init__(self) -> None:
        self.codes = pa.array([], pa.string())
        self.seqs = pa.array([], pa.int64())
        self.kinds = np.empty(0, np.int8)
        self.kind_names: list[str] = []
        self.mark = 0

    def add(self, seqs: pa.Array, codes: pa.Array, kinds: pa.Array) -> None:
        """Append the entries registered after :attr:`mark`, in sequence order."""
        if not len(seqs):
            return
        names = pc.unique(kinds).to_pylist()
        self.kind_names += [name for name in names if name not in self.kind_names]
        numbers = pc.index_in(kinds, value_set=pa.array(self.kind_names, pa.string()))
        self.codes = pa.concat_arrays([self.codes, codes.cast(pa.string())])
        self.seqs = pa.concat_arrays([self.seqs, seqs.cast(pa.int64())])
        self.kinds = np.concatenate([self.kinds, numbers.to_numpy().astype(np.int8)])
        self.mark = int(seqs[-1].as_py())

    def cut(self, mark: int) -> None:
        """Forget the entries after ``mark`` (read inside a transaction rolled back)."""
        if mark >= self.mark:
            return
        keep = int(np.searchsorted(self.seqs.to_numpy(), mark, side="right"))
        self.codes, self.seqs = self.codes.slice(0, keep), self.seqs.slice(0, keep)
        self.kinds = self.kinds[:keep]
        self.mark = mark

    def among(self, codes: pa.Array | pa.ChunkedArray, *, kinds: bool = False) -> pa.Table:
        """The registered subjects among ``codes`` (distinct): ``code``, ``seq``, and
        ``kind`` when asked for.

        The set to look codes up in is hashed anew on every call, so it is built from the
        smaller side: usually the batch's codes, and every registered code is looked up
        among them."""
        if isinstance(codes, pa.ChunkedArray):
            codes = codes.combine_chunks()
        if len(self.codes) <= len(codes):
            position = pc.index_in(codes, value_set=self.codes)
            found = pc.is_valid(position)
            rows = pc.filter(position, found).to_numpy()
            codes = codes.filter(found)
        else:
            rows = np.flatnonzero(pc.is_in(self.codes, value_set=codes).to_numpy(False))
            codes = self.codes.take(rows)
        table = pa.table({"code": codes, "seq": self.seqs.take(rows)})
        if kinds:
            names = pa.array(self.kind_names, pa.string())
            table = table.append_column("kind", names.take(self.kinds[rows]))
        return table


class Ledger(ABC):
    """A registry of subjects and an append-only, hash-chained ledger of their records.

    Writing: :meth:`add_subjects` and :meth:`append` check a whole batch first, then write
    it in one transaction, or raise :class:`~socialcredit.errors.InvalidInput` listing
    every problem and write nothing. Both are idempotent: what is already there, identical,
    is skipped. Nothing is ever updated or deleted; a correction is a new record whose
    ``ref`` names the record it voids.

    Reading returns canonical Arrow tables (``socialcredit.records``), in ledger order.
    """

    _subjects: SubjectIndex  # set by each store when it opens

    # -- writing ------------------------------------------------------------------------

    def add_subjects(
        self,
        subjects: pa.Table | Loaded,
        *,
        source: str | None = None,
        origin: Origin | None = None,
        opaque_codes: bool = False,
    ) -> SubjectsAdded:
        """Register subjects (``code``, ``kind``); return how many were added and skipped.

        Each code is checked for its kind (see :func:`~socialcredit.store.checks.
        check_subjects`; ``opaque_codes`` as there) and stored in normal form. A code
        already registered with the same kind is skipped; with another kind it is a problem
        naming the code, and nothing is registered. ``subjects`` is a table, or what
        :func:`~socialcredit.store.files.load_subjects` returned, whose origin then names
        the file's lines in messages; for a table, ``origin`` may do so.
        """
        subjects, source, origin = _unpack(subjects, source, origin, "<subjects>")
        check = self._checked_subjects(subjects, source, origin, opaque_codes)
        with self._transaction():
            return self._register(check, source)

    def _checked_subjects(
        self, subjects: pa.Table, source: str, origin: Origin | None, opaque_codes: bool
    ) -> SubjectsCheck:
        table = conform_subjects(subjects, source=source)
        return check_subjects(
            table, _origin(origin, source, table.num_rows), opaque_codes=opaque_codes
        )

    def _register(self, check: SubjectsCheck, source: str) -> SubjectsAdded:
        """Register checked subjects; call it inside a transaction."""
        problems = list(check.problems)
        registered = self._registered(check.table.column("code"), kinds=True)
        position = pc.index_in(check.table.column("code"), value_set=registered["code"])
        there = as_mask(pc.is_valid(position))
        kinds = registered["kind"].take(position)
        other = np.flatnonzero(there & as_mask(pc.not_equal(kinds, check.table["kind"])))
        for i in other:
            code = check.table["code"][int(i)].as_py()
            kind = kinds[int(i)].as_py()
            problems.append(
                check.origin.problem(
                    int(i),
                    "kind",
                    f"subject {shown_code(code, 'person')} is already registered as "
                    f"{kind}; a subject's kind never changes",
                )
            )
        if problems:
            raise InvalidInput(sort_problems(problems), what=source)
        new = check.table.filter(pa.array(~there))
        if new.num_rows:
            self._write_subjects(new, source=source)
        return SubjectsAdded(new.num_rows, int(there.sum()))

    def append(
        self,
        records: pa.Table | Loaded,
        *,
        source: str | None = None,
        origin: Origin | None = None,
        subjects: pa.Table | None = None,
        opaque_codes: bool = False,
        found: Found | None = None,
        guard: Guard | None = None,
    ) -> AppendResult:
        """Append a batch of records, all or nothing; return how many went in and were skipped.

        The whole batch is checked against the ledger first (:func:`~socialcredit.store.
        checks.check_batch`): a problem anywhere raises :class:`InvalidInput` listing every
        problem, and nothing is written. A record identical to one already in the ledger is
        skipped, so importing the same file twice is harmless.

        ``records`` is a table, or what :func:`~socialcredit.store.files.load_records`
        returned: then problems name the file's lines. ``source`` names the batch in
        messages and in the ledger's log of batches (default: the file's name, or
        ``<table>``); ``origin`` gives the place of a table's rows when it has one.
        ``subjects`` (``code``, ``kind``; ``opaque_codes`` as for :meth:`add_subjects`) are
        registered in the same transaction, first: a batch refused registers none of them.
        ``found`` is what :meth:`look_up` returned for these records (or for a batch they
        were taken from): when no entry was appended since, the ledger does not look their
        ids up again. ``guard`` is called first inside the write transaction (no other
        writer of the ledger can commit until this one ends), with a function that runs a
        query there: an error it raises refuses the batch, and nothing is written.
        """
        records, source, origin = _unpack(records, source, origin, "<table>")
        table = conform_records(records, source=source)
        origin = _origin(origin, source, table.num_rows)
        joining = (
            None
            if subjects is None or not subjects.num_rows
            else self._checked_subjects(subjects, f"{source} (subjects)", None, opaque_codes)
        )
        mark = self._subjects.mark
        try:
            result = self._append(table, source, origin, joining, found, guard)
        except BaseException:
            self._subjects.cut(mark)  # subjects read inside the rolled-back transaction
            raise
        if result.appended:
            self._appended(result.appended)
        return result

    def _appended(self, added: int) -> None:  # noqa: B027 (a hook, empty by default)
        """Called once a batch that added ``added`` records is committed: the store's
        upkeep after a write (nothing by default)."""

    def _append(
        self,
        table: pa.Table,
        source: str,
        origin: Origin,
        joining: SubjectsCheck | None,
        found: Found | None,
        guard: Guard | None = None,
    ) -> AppendResult:
        with self._transaction():
            if guard is not None:
                guard(self._query)
            # what was found still holds if nothing was appended since (entries are never
            # changed: the same last entry, with the same hash, is the same ledger) and it
            # looked for every id needed
            if found is not None and self._head() != (found.as_of + 1, found.head):
                found = None
            added = self._register(joining, source) if joining is not None else None
            ids = _ids_named(table)
            if found is not None and pc.all(pc.is_in(ids, found.ids)).as_py():
                existing = found.rows.filter(pc.is_in(found.rows["id"], value_set=ids))
            else:
                existing = self._existing(ids)
            codes = pc.unique(table.column("subject").drop_null())
            subjects = self._registered(codes)
            unknown = pc.filter(codes, pc.invert(pc.is_in(codes, value_set=subjects["code"])))
            if len(unknown):  # their upper-case forms, to hint at a lower-case letter
                upper = self._registered(pc.unique(pc.utf8_upper(unknown)))
                subjects = pa.concat_tables([subjects, upper.select(subjects.column_names)])
            check = check_batch(table, origin=origin, ledger=existing, subjects=subjects)
            if check.problems:
                raise InvalidInput(check.problems, what=source)
            new = (
                table
                if len(check.keep) == table.num_rows
                else table.take(pa.array(check.keep, pa.int64()))
            )
            if new.num_rows:
                self._write_records(new, subjects=subjects, existing=existing, source=source)
        return AppendResult(new.num_rows, check.duplicates, added.added if added else 0)

    # -- reading ------------------------------------------------------------------------

    def look_up(self, records: pa.Table | Loaded) -> Found:
        """The ledger's records among the ids of ``records`` (a batch as :meth:`append`
        takes it) and the ids their refs name, as :meth:`append` needs them: given back
        to it, they spare it looking again."""
        table, source, _ = _unpack(records, None, None, "<table>")
        ids = _ids_named(conform_records(table, source=source))
        with self._reading():
            following, head = self._head()
            return Found(ids, self._existing(ids), following - 1, head)

    def warm(self) -> None:
        """Read what every write and look-up reads first, the registry's index of codes
        (:class:`SubjectIndex`; a second or so at a million subjects): a server process
        calls it as it starts, so that its first batch takes no longer than the next."""
        with self._reading():
            self._subject_index()

    def find(self, ids: list[str]) -> pa.Table:
        """The records among ``ids`` that the ledger holds: canonical columns, any order."""
        with self._reading():
            found = self._existing(pa.array(ids, pa.string()))
        return found.select(list(RECORD_FIELDS))

    def kinds(self, codes: list[str]) -> dict[str, str]:
        """The kind of each registered code among ``codes`` (unregistered ones are absent)."""
        with self._reading():
            found = self._registered(pa.array(codes, pa.string()), kinds=True)
        return dict(zip(found["code"].to_pylist(), found["kind"].to_pylist(), strict=True))

    def kinds_of(self, codes: pa.Array) -> pa.Array:
        """The kind of each of ``codes`` (distinct), null where it is not registered."""
        with self._reading():
            found = self._registered(codes, kinds=True)
        return found["kind"].combine_chunks().take(pc.index_in(codes, value_set=found["code"]))

    @abstractmethod
    def subjects(self) -> pa.Table:
        """All registered subjects (``code``, ``kind``), in order of registration."""

    @abstractmethod
    def records(self) -> pa.Table:
        """All records, canonical schema, in ledger order."""

    @abstractmethod
    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, canonical schema, in ledger order."""

    @abstractmethod
    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, or None when the code is not registered."""

    @abstractmethod
    def batches(self) -> list[Batch]:
        """The log of writes, oldest first."""

    def sources(self, ids: list[str]) -> dict[str, str]:
        """The source of the write that appended each record among ``ids`` that the ledger
        holds (who sent it, as the log of batches names it)."""
        with self._reading():
            found = self._existing(pa.array(ids, pa.string()))
            sources = self.sources_of(found["seq"]).to_pylist()
        return dict(zip(found["id"].to_pylist(), sources, strict=True))

    def sources_of(self, seqs: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The source of the write that appended each of the entries ``seqs``, as the log
        of batches names it; an entry that no write covers is an error."""
        given = np.asarray(pc.fill_null(seqs, 0).to_numpy(zero_copy_only=False), np.int64)
        distinct = np.unique(given)
        with self._reading():
            found = self._sources_of(distinct)
        missing = [int(seq) for seq, source in zip(distinct, found, strict=True) if source is None]
        if missing:
            raise LedgerError(f"no write in the log of batches covers entry {missing[0]}")
        sources = np.array(found, dtype=object)
        return pa.array(sources[np.searchsorted(distinct, given)], pa.string())

    def record_sources(self) -> pa.Array:
        """The source of the write that appended each record, in ledger order: what
        :meth:`records` gives, row for row (a ledger appended to since gives more rows, at
        the end). Read off the log of batches: how many records each write appended."""
        with self._reading():
            counts = [(str(source), int(n)) for source, n in self._query(RECORDS_PER_BATCH)]
        if not counts:
            return pa.array([], pa.string())
        names = pa.array([source for source, _ in counts], pa.string())
        each = np.array([n for _, n in counts], np.int64)
        indices = np.repeat(np.arange(len(counts), dtype=np.int32), each)
        return pa.DictionaryArray.from_arrays(pa.array(indices), names).cast(pa.string())

    def holdings(self) -> tuple[set[str], set[str]]:
        """The record types the ledger holds a record of, and the kinds of its subjects."""
        with self._reading():
            types = self._query("SELECT name FROM types")
            kinds = self._query("SELECT DISTINCT kind FROM subjects")
        return {str(t) for (t,) in types}, {str(k) for (k,) in kinds}

    @abstractmethod
    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a statement that takes no parameter."""

    @abstractmethod
    def verify(self) -> VerifyReport:
        """Recompute the whole hash chain and report the first entry that fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connection; the object is unusable afterwards."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- hooks for a backend ------------------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """One write transaction, exclusive of other writers: committed when the block
        ends normally, rolled back when it raises."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[None]:
        """One read transaction (one snapshot across statements), or the transaction
        already open."""

    @abstractmethod
    def _subjects_since(self, mark: int) -> tuple[pa.Array, pa.Array, pa.Array]:
        """The entry (``int64``), code and kind of each subject registered after entry
        ``mark``, in sequence order."""

    def _subject_index(self) -> SubjectIndex:
        """The store's :class:`SubjectIndex`, brought up to date; call it inside a
        transaction."""
        index = self._subjects
        index.add(*self._subjects_since(index.mark))
        return index

    def _registered(self, codes: pa.Array | pa.ChunkedArray, *, kinds: bool = False) -> pa.Table:
        """The registered subjects among ``codes`` (distinct): ``code``, ``seq``, and
        ``kind`` when asked for; call it inside a transaction."""
        return self._subject_index().among(codes, kinds=kinds)

    @abstractmethod
    def _existing(self, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The ledger's records whose id is among ``ids``: at least the canonical columns
        and ``seq``."""

    @abstractmethod
    def _sources_of(self, seqs: npt.NDArray[np.int64]) -> list[str | None]:
        """The source of the write that appended each of ``seqs`` (distinct, sorted), or
        None where no write covers it."""

    @abstractmethod
    def _head(self) -> tuple[int, bytes]:
        """The next sequence number, and the hash of the last entry."""

    @abstractmethod
    def _write_subjects(self, subjects: pa.Table, *, source: str) -> None:
        """Append checked, new subjects as entries of the chain."""

    @abstractmethod
    def _write_records(
        self, records: pa.Table, *, subjects: pa.Table, existing: pa.Table, source: str
    ) -> None:
        """Append checked, new records as entries of the chain. ``subjects`` and
        ``existing`` are what :meth:`_registered` and :meth:`_existing` returned for the
        batch (every subject is there; every ``ref`` is in ``existing`` or the batch)."""


def entry_numbers(
    records: pa.Table, first: int, subjects: pa.Table, existing: pa.Table
) -> tuple[npt.NDArray[np.int64], pa.Array, pa.Array]:
    """How a checked batch is stored, the same on every store: the sequence numbers of its
    entries (from ``first``), the entry of each record's subject (``subjects``: code, seq),
    and the entry each ``ref`` names, in the batch or in the ledger (``existing``: id, seq),
    null where there is no ref."""
    seqs = np.arange(first, first + records.num_rows, dtype=np.int64)
    subject = subjects["seq"].take(pc.index_in(records["subject"], value_set=subjects["code"]))
    ref = records["ref"]
    if ref.null_count == len(ref):  # no ref at all: nothing to look up
        return seqs, subject, pa.nulls(len(ref), pa.int64())
    ref_seq = pc.add(pc.index_in(ref, value_set=records["id"].combine_chunks()), first)
    if existing.num_rows:
        in_ledger = existing["seq"].take(pc.index_in(ref, value_set=existing["id"]))
        ref_seq = pc.coalesce(ref_seq, in_ledger)
    return seqs, subject, ref_seq


def _ids_named(records: pa.Table) -> pa.Array:
    """The distinct ids of a batch's records and of the records their refs name."""
    return pc.unique(
        pa.chunked_array(
            [*records.column("id").chunks, *records.column("ref").chunks], pa.string()
        ).drop_null()
    )


def _unpack(
    given: pa.Table | Loaded, source: str | None, origin: Origin | None, default: str
) -> tuple[pa.Table, str, Origin | None]:
    if isinstance(given, Loaded):
        origin = origin or given.origin
        return given.table, source or given.origin.source, origin
    return given, source or default, origin


def _origin(origin: Origin | None, source: str, n: int) -> Origin:
    if origin is None:
        return Origin.rows(source, n)
    if len(origin) != n:
        raise ValueError(f"origin has {len(origin)} rows, the table {n}")
    return origin

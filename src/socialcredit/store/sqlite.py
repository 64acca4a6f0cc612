"""The ledger in one SQLite file: append-only, hash-chained, durable.

Layout (schema version 3)::

    meta      (key, value)                      format, schema version, hash encoding
    subjects  (seq, code, kind, hash, link)     one entry per registered subject
    records   (seq, id, subject, type, occurred_at, recorded_at, amount, ref, hash, link)
    records_by_subject (subject, seq)           a row per record, sorted by subject
    records_by_subject_recent (seq, subject)    the rows of the latest records
    types     (code, name)                      record types, numbered as first seen
    batches   (batch, source, first_seq, last_seq, head, appended_at)   one per write

``seq`` numbers the entries of both tables in one sequence (see
:mod:`socialcredit.store.chain`). In ``records``, ``subject`` is the ``seq`` of the
subject's entry, ``type`` a code of ``types``, ``ref`` the ``seq`` of the referenced
record, dates whole days since 1970-01-01 (:mod:`socialcredit.days`); ``hash`` is the
entry's SHA-256 and ``link`` the first 8 bytes of the previous entry's hash. Indexes:
records by id (unique) and by ref.

``records_by_subject`` and ``records_by_subject_recent`` find the records of a subject.
The first is keyed by (subject, seq); the second, keyed by seq and indexed by subject,
gets the rows of each batch in the transaction that appends the records, at its end. Once
the recent rows span a ``_MERGE_SHARE``-th of the entries before them, that transaction
moves them into the first in key order and makes the second afresh: a batch of records of
random subjects would otherwise land on nearly every page of a large table keyed by
subject, and rewrite it all. The chain's hashes do not cover them;
:meth:`SqliteLedger.verify` checks that together they hold exactly one row per record,
with the record's subject.

Schema version 1 had an index on ``records (subject)`` instead of those tables, version 2
no recent rows. Opening a file of version 1 or 2 upgrades it in place, in one
transaction: (from 1) the index is dropped, ``records_by_subject`` made and filled from
the records; (from 2) the empty ``records_by_subject_recent`` made; ``schema_version`` set
to 3 and the time of each step kept as ``upgraded_to_2_at`` and ``upgraded_to_3_at`` in
``meta``. Entries and the chain are unchanged.

Every table refuses UPDATE and DELETE (triggers that abort), the file is in WAL mode with
``synchronous=FULL``, and each write is one transaction: a batch is durable once
:meth:`~socialcredit.store.base.Ledger.append` returns, and a failed batch leaves no
trace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import LedgerError
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.store.base import (
    Batch,
    Ledger,
    SubjectIndex,
    VerifyReport,
    entry_numbers,
)
from socialcredit.store.chain import (
    HASH_ENCODING,
    chain,
    check_hash_encoding,
    links,
    next_entry,
    record_payloads,
    subject_payloads,
)
from socialcredit.store.sqlite_scan import (
    Names,
    read_names,
    read_subject_table,
    read_subjects,
    records_table,
    scan_records,
    scan_subjects,
    select_records,
)
from socialcredit.store.verify import ChainWalk, Entries

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

FORMAT = "socialcredit-ledger"
SCHEMA_VERSION = 3

_TABLES = ("meta", "subjects", "types", "records", "records_by_subject", "batches")


def _append_only(table: str, verb: str) -> str:
    return (
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never changed or "
        f"deleted; a correction is a new record whose ref names the old one'); END"
    )


_BY_SUBJECT = (
    "CREATE TABLE records_by_subject (subject INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (subject, seq)) WITHOUT ROWID"
)
# The records from ``seq`` on, sorted: appended to the side table in key order.
_FILL_BY_SUBJECT = (
    "INSERT INTO records_by_subject SELECT subject, seq FROM records WHERE seq >= ? "
    "ORDER BY subject, seq"
)
# The rows of the latest records, kept apart until they are a share of the whole (keyed
# by seq: a batch is appended at the end; its index by subject is small).
_RECENT = (
    "CREATE TABLE records_by_subject_recent (seq INTEGER PRIMARY KEY, subject INTEGER NOT NULL)",
    "CREATE INDEX records_by_subject_recent_subject ON records_by_subject_recent (subject)",
    _append_only("records_by_subject_recent", "update"),
    _append_only("records_by_subject_recent", "delete"),
)
_FILL_RECENT = (
    "INSERT INTO records_by_subject_recent (seq, subject) SELECT seq, subject FROM records "
    "WHERE seq >= ?"
)
# Moving the recent rows into the side table, in key order, and starting afresh (the
# table is dropped: a DELETE is refused, as on every other table).
_MERGE_RECENT = (
    "INSERT INTO records_by_subject SELECT subject, seq FROM records_by_subject_recent "
    "ORDER BY subject, seq",
    "DROP TABLE records_by_subject_recent",
    *_RECENT,
)
_MERGE_SHARE = 16  # recent rows are moved once they span 1/16 of the entries before them
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE subjects (seq INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, "
    "kind TEXT NOT NULL, hash BLOB NOT NULL, link INTEGER NOT NULL)",
    "CREATE TABLE types (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "subject INTEGER NOT NULL, type INTEGER NOT NULL, occurred_at INTEGER NOT NULL, "
    "recorded_at INTEGER NOT NULL, amount INTEGER NOT NULL, ref INTEGER, "
    "hash BLOB NOT NULL, link INTEGER NOT NULL)",
    _BY_SUBJECT,
    *_RECENT,
    "CREATE INDEX records_by_ref ON records (ref) WHERE ref IS NOT NULL",
    "CREATE TABLE batches (batch INTEGER PRIMARY KEY, source TEXT NOT NULL, "
    "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, head BLOB NOT NULL, "
    "appended_at TEXT NOT NULL)",
    *(_append_only(table, verb) for table in _TABLES for verb in ("update", "delete")),
)
# Schema version 1 to 2, in one transaction: the side table replaces the index (and is
# then filled with every record, by _FILL_BY_SUBJECT).
# (An index and a table share one namespace: the index goes first.)
_UPGRADE_1_TO_2 = (
    "DROP INDEX records_by_subject",
    _BY_SUBJECT,
    _append_only("records_by_subject", "update"),
    _append_only("records_by_subject", "delete"),
    "DROP TRIGGER meta_no_update",
    "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    _append_only("meta", "update"),
)
# Schema version 2 to 3: the table of recent rows by subject, empty.
_UPGRADE_2_TO_3 = (
    *_RECENT,
    "DROP TRIGGER meta_no_update",
    "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
    _append_only("meta", "update"),
)
_PAGE_SIZE = 16384
CACHE_KIB = 131072  # the page cache of each connection to a ledger file, KiB
_BUSY_MS = 10000
_SCAN = 500_000  # entries per chunk when reading the whole ledger
_READERS = min(4, os.cpu_count() or 1)  # threads reading chunks
_CHUNK = 20_000  # records hashed at a time while the previous chunk is inserted
# Python's sqlite3 binds int, str and bytearray directly but sends None and bytes through
# its adapter lookup, which costs more than the insert itself: a missing ref is bound as 0
# (no entry has sequence number 0) and hashes as bytearrays. A batch without any ref binds
# no ref at all (one parameter fewer per row).
_INSERT_RECORD = (
    "INSERT INTO records (seq, id, subject, type, occurred_at, recorded_at, amount, ref, "
    "hash, link) VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0), ?, ?)"
)
_INSERT_RECORD_NO_REF = (
    "INSERT INTO records (seq, id, subject, type, occurred_at, recorded_at, amount, ref, "
    "hash, link) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
)


class SqliteLedger(Ledger):
    """A ledger in an SQLite file. Make one with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._subjects = SubjectIndex()

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path) -> SqliteLedger:
        """Create a new, empty ledger file; an existing file is never overwritten."""
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path} already exists: open it, or choose a new file name")
        db = _connect(path, "rwc")
        try:
            db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("hash_encoding", HASH_ENCODING),
                    ("created_at", _now()),
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return cls(path, db)

    @classmethod
    def open(cls, path: str | Path) -> SqliteLedger:
        """Open an existing ledger file, checking that it is one, of this schema version.

        A file of schema version 1 or 2 is upgraded to version 3 in place (see the module).
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(
                f"no ledger at {path}: the file does not exist; create a ledger first"
            )
        db = _connect(path, "rw")
        try:
            # The header is read through SQLite, never by opening the file here: closing
            # any other descriptor of the file drops every POSIX lock this process holds on
            # it, those of its other connections too; another process closing its last
            # connection could then delete the write-ahead log under them, and what they
            # commit after would be lost.
            _check_header(db, path)
            meta = _read_meta(db, path)
            if meta.get("format") != FORMAT:
                raise LedgerError(f"{path} is not a socialcredit ledger")
            check_hash_encoding(meta, path)
            version = meta.get("schema_version")
            if version not in (str(SCHEMA_VERSION), "1", "2"):
                raise LedgerError(
                    f"{path} is a ledger of schema version {version}; this version of "
                    f"socialcredit reads schema version {SCHEMA_VERSION} only (and "
                    "upgrades versions 1 and 2)"
                )
            db.execute("PRAGMA journal_mode = WAL")
            if version != str(SCHEMA_VERSION):
                _upgrade(db, path, int(version))
        except BaseException:
            db.close()
            raise
        return cls(path, db)

    def close(self) -> None:
        """Close the file; the ledger object is unusable afterwards."""
        self._db.close()

    # -- reading ------------------------------------------------------------------------

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, or None when the code is not registered."""
        row = self._db.execute("SELECT kind FROM subjects WHERE code = ?", (code,)).fetchone()
        return None if row is None else str(row[0])

    def subjects(self) -> pa.Table:
        """All registered subjects (``code``, ``kind``), in order of registration."""
        return read_subject_table(self._db)

    def records(self) -> pa.Table:
        """All records, canonical schema, in ledger order."""
        inside = self._db.in_transaction  # then other connections would not see it all
        with self._reading():
            last = self._last_seq()
            names = read_names(self._db)
            starts = range(1, last + 1, _SCAN)
            if len(starts) < 2 or _READERS < 2 or inside:
                parts = [scan_records(self._db, lo, lo + _SCAN, names).table for lo in starts]
            else:
                # Entries are never changed, so other connections see the same entries up
                # to ``last``: read chunks in parallel (SQLite works outside the GIL).
                with ThreadPoolExecutor(min(_READERS, len(starts))) as pool:
                    parts = list(pool.map(lambda lo: self._scan_apart(lo, last, names), starts))
        if not parts:
            return RECORDS_SCHEMA.empty_table()
        return pa.concat_tables(parts).combine_chunks()

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, canonical schema, in ledger order."""
        table = select_records(
            self._db,
            "r.seq IN (SELECT b.seq FROM records_by_subject AS b WHERE b.subject = (SELECT "
            "seq FROM subjects WHERE code = ?1) UNION ALL SELECT n.seq FROM "
            "records_by_subject_recent AS n WHERE n.subject = (SELECT seq FROM subjects "
            "WHERE code = ?1)) ORDER BY r.seq",
            (code,),
        )
        return table.drop_columns(["seq"])

    def batches(self) -> list[Batch]:
        """The log of writes, oldest first."""
        rows = self._db.execute(
            "SELECT batch, source, first_seq, last_seq, appended_at FROM batches ORDER BY batch"
        ).fetchall()
        return [Batch(*row) for row in rows]

    # -- verifying ----------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute the whole chain; name the first entry that fails, and why.

        Checked, entry by entry in sequence order: the sequence has no gap and no number
        twice; each entry's link matches the previous entry's hash (else the previous entry
        was rewritten); each entry's hash matches its fields (else they were changed); the
        heads recorded in the log of batches match the chain, no entry comes after the last
        one the log records (else it was written behind the ledger's back), and the chain
        reaches that entry (else entries were cut off the end). A stored value of the
        wrong type (text where a number belongs, a hash that is not 32 bytes) fails its
        entry (:mod:`socialcredit.store.sqlite_scan`). Then, the chain
        being sound, that ``records_by_subject`` holds one row per record, with the
        record's subject, and nothing else (else reading by subject would miss records).
        """
        with self._reading():
            logged = self._logged_last()
            last = max(self._last_seq(), logged)
            names = read_names(self._db)
            # A head that is no blob (a changed row) matches no hash: it is named there.
            heads = {
                int(seq): head if isinstance(head, bytes) else b""
                for seq, head in self._db.execute(
                    "SELECT last_seq, head FROM batches WHERE typeof(last_seq) = 'integer'"
                ).fetchall()
            }
            walk = ChainWalk(heads)
            for lo in range(1, last + 1, _SCAN):
                report = walk.check(self._entries(lo, lo + _SCAN, names))
                if report is not None:
                    return report
            report = walk.finish(logged)
            return self._check_by_subject(report) if report.ok else report

    def _check_by_subject(self, sound: VerifyReport) -> VerifyReport:
        """Check ``records_by_subject`` and its recent rows against the records of a sound
        chain: every record has its row (subject, seq) in one of the two, and there are as
        many rows as records (so no other). Each record is one lookup in each table's key,
        in ledger order; the first record without its row, or else the first row without
        its record, or a row in both tables, is named."""
        (records,) = self._db.execute("SELECT count(*) FROM records").fetchone()
        (listed,) = self._db.execute(
            "SELECT (SELECT count(*) FROM records_by_subject) + "
            "(SELECT count(*) FROM records_by_subject_recent)"
        ).fetchone()
        missing = self._db.execute(
            "SELECT r.seq, r.id, r.subject FROM records AS r WHERE NOT EXISTS (SELECT 1 "
            "FROM records_by_subject AS b WHERE b.subject = r.subject AND b.seq = r.seq) "
            "AND NOT EXISTS (SELECT 1 FROM records_by_subject_recent AS n "
            "WHERE n.seq = r.seq AND n.subject = r.subject) ORDER BY r.seq LIMIT 1"
        ).fetchone()
        if missing is None and records == listed:
            return sound
        stray = self._db.execute(
            "SELECT seq, subject FROM (SELECT subject, seq FROM records_by_subject UNION ALL "
            "SELECT subject, seq FROM records_by_subject_recent) AS b WHERE NOT EXISTS "
            "(SELECT 1 FROM records AS r WHERE r.seq = b.seq AND r.subject = b.subject) "
            "ORDER BY seq LIMIT 1"
        ).fetchone()
        table = (
            "records_by_subject, the table that finds records by subject, disagrees with the "
            "records (the chain is intact): "
        )
        if missing is not None and (stray is None or missing[0] <= stray[0]):
            seq, key, subject = missing
            reason = (
                f"it has no row for entry {seq} (record {key!r}) under its subject (entry "
                f"{subject}); rows were deleted or changed, and reading the records of that "
                "subject would miss it"
            )
        elif stray is not None:
            seq, subject = stray
            row = self._db.execute("SELECT id FROM records WHERE seq = ?", (seq,)).fetchone()
            key = None if row is None else str(row[0])
            what = "no record" if key is None else f"record {key!r}, of another subject"
            reason = (
                f"it lists entry {seq} under subject entry {subject}, but entry {seq} is "
                f"{what}: rows were added or changed, and reading the records of subject "
                f"entry {subject} would give a wrong record"
            )
        else:  # every record has its row and no row is stray: some row is there twice
            twice = self._db.execute(
                "SELECT n.seq FROM records_by_subject_recent AS n WHERE EXISTS (SELECT 1 "
                "FROM records_by_subject AS b WHERE b.subject = n.subject AND b.seq = n.seq) "
                "ORDER BY n.seq LIMIT 1"
            ).fetchone()
            if twice is None:  # as many rows as records, each once: cannot be
                raise AssertionError("records_by_subject: counts differ, yet every row matches")
            seq = int(twice[0])
            row = self._db.execute("SELECT id FROM records WHERE seq = ?", (seq,)).fetchone()
            key = str(row[0])
            reason = (
                f"it lists entry {seq} (record {key!r}) twice, among the recent rows and the "
                f"others; reading the records of its subject would give it twice"
            )
        return VerifyReport(False, sound.entries_checked, seq, table + reason, key, sound.head)

    # -- hooks --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"cannot write to {self.path}: {exc}") from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read transaction: one consistent snapshot across several statements."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _subjects_since(self, mark: int) -> tuple[pa.Array, pa.Array, pa.Array]:
        seqs, codes, kinds = read_subjects(self._db, mark)
        assert kinds is not None
        return pa.array(seqs, pa.int64()), codes, kinds

    def _existing(self, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        # First the few ids that are there (the unique index answers alone), then their rows.
        found = self._db.execute(
            "SELECT r.seq FROM json_each(?) AS j JOIN records AS r ON r.id = j.value",
            (json.dumps(ids.to_pylist()),),
        ).fetchall()
        if not found:
            return records_table([])
        return select_records(
            self._db,
            "r.seq IN (SELECT value FROM json_each(?))",
            (json.dumps([seq for (seq,) in found]),),
        )

    def _write_subjects(self, subjects: pa.Table, *, source: str) -> None:
        first, previous = self._head()
        seqs = np.arange(first, first + subjects.num_rows, dtype=np.int64)
        hashes = chain(previous, subject_payloads(seqs, subjects))
        self._db.executemany(
            "INSERT INTO subjects (seq, code, kind, hash, link) VALUES (?, ?, ?, ?, ?)",
            zip(
                seqs.tolist(),
                subjects.column("code").to_pylist(),
                subjects.column("kind").to_pylist(),
                map(bytearray, hashes),
                links(previous, hashes),
                strict=True,
            ),
        )
        self._log(source, int(seqs[0]), int(seqs[-1]), hashes[-1])

    def _write_records(
        self, records: pa.Table, *, subjects: pa.Table, existing: pa.Table, source: str
    ) -> None:
        first, previous = self._head()
        n = records.num_rows
        seqs, subject, ref_seq = entry_numbers(records, first, subjects, existing)
        with_refs = ref_seq.null_count < n
        # Numbers go to Python through NumPy (much faster than Arrow's to_pylist).
        numbers = [
            _ints(subject),
            self._type_codes(records.column("type")),
            _days(records.column("occurred_at")),
            _days(records.column("recorded_at")),
            _ints(records.column("amount")),
        ]
        if with_refs:
            numbers.append(_ints(pc.fill_null(ref_seq, 0)))
        ids = records.column("id")
        head = [previous]

        def chunks() -> Iterator[Iterator[tuple[object, ...]]]:
            for lo in range(0, n, _CHUNK):
                hi = min(lo + _CHUNK, n)
                part_seqs = seqs[lo:hi]
                hashes = chain(head[0], record_payloads(part_seqs, records.slice(lo, hi - lo)))
                # A lazy zip of ready lists: the inserting thread walks it in C, and zip
                # reuses its tuple once the row is bound.
                yield zip(
                    part_seqs.tolist(),
                    ids.slice(lo, hi - lo).to_pylist(),
                    *(column[lo:hi].tolist() for column in numbers),
                    map(bytearray, hashes),
                    links(head[0], hashes),
                    strict=True,
                )
                head[0] = hashes[-1]

        sql = _INSERT_RECORD if with_refs else _INSERT_RECORD_NO_REF
        _insert_overlapped(self._db, sql, chunks())
        self._db.execute(_FILL_RECENT, (int(seqs[0]),))
        self._merge_if_due()
        self._log(source, int(seqs[0]), int(seqs[-1]), head[0])

    def _merge_if_due(self) -> None:
        """Move the recent rows by subject into ``records_by_subject`` once they span a
        ``_MERGE_SHARE``-th of the entries before them (call it inside a transaction)."""
        first, last = self._db.execute(
            "SELECT min(seq), max(seq) FROM records_by_subject_recent"
        ).fetchone()
        if first is not None and (last - first + 1) * _MERGE_SHARE >= first:
            for statement in _MERGE_RECENT:
                self._db.execute(statement)

    # -- helpers ------------------------------------------------------------------------

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql).fetchall())

    def _sources_of(self, seqs: npt.NDArray[np.int64]) -> list[str | None]:
        out: list[str | None] = [None] * len(seqs)
        (batches,) = self._db.execute("SELECT coalesce(max(batch), 0) FROM batches").fetchone()
        i = 0
        while i < len(seqs):
            found = self._batch_of(int(seqs[i]), int(batches))
            if found is None:
                i += 1
                continue
            last, source = found
            j = int(np.searchsorted(seqs, last, side="right"))  # the write's other entries
            out[i:j] = [source] * (j - i)
            i = j
        return out

    def _batch_of(self, seq: int, batches: int) -> tuple[int, str] | None:
        # Writes are logged in the order of their entries (one writer at a time), so the
        # ranges grow with the batch number, the table's key: a binary search over it (up
        # to the last batch, ``batches``), one key lookup a step, with no index on the
        # ranges.
        lo, hi = 1, batches
        while lo <= hi:
            mid = (lo + hi) // 2
            row = self._db.execute(
                "SELECT batch, first_seq, last_seq, source FROM batches WHERE batch >= ? "
                "ORDER BY batch LIMIT 1",
                (mid,),
            ).fetchone()
            if row is None or row[0] > hi or seq < row[1]:
                hi = mid - 1
            elif seq > row[2]:
                lo = int(row[0]) + 1
            else:
                return int(row[2]), str(row[3])
        return None

    def _head(self) -> tuple[int, bytes]:
        """The next sequence number and the hash of the last entry."""
        return next_entry(lambda sql: self._db.execute(sql).fetchone())

    def _last_seq(self) -> int:
        row = self._db.execute(
            "SELECT max(ifnull((SELECT max(seq) FROM records), 0), "
            "ifnull((SELECT max(seq) FROM subjects), 0))"
        ).fetchone()
        return int(row[0])

    def _logged_last(self) -> int:
        # (a last entry that is no integer, in a changed row, is no entry logged)
        row = self._db.execute(
            "SELECT ifnull(max(last_seq), 0) FROM batches WHERE typeof(last_seq) = 'integer'"
        ).fetchone()
        return int(row[0])

    def _log(self, source: str, first: int, last: int, head: bytes) -> None:
        self._db.execute(
            "INSERT INTO batches (source, first_seq, last_seq, head, appended_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (source, first, last, head, _now()),
        )

    def _type_codes(self, names: pa.ChunkedArray) -> npt.NDArray[np.int64]:
        """The codes of record types, registering the types not seen before."""
        known = dict(self._db.execute("SELECT name, code FROM types").fetchall())
        new = [name for name in pc.unique(names).to_pylist() if name not in known]
        if new:
            start = max(known.values(), default=0) + 1
            added = list(zip(new, range(start, start + len(new)), strict=True))
            self._db.executemany("INSERT INTO types (name, code) VALUES (?, ?)", added)
            known.update(added)
        position = pc.index_in(names, value_set=pa.array(list(known), pa.string()))
        codes = np.array(list(known.values()), dtype=np.int64)
        out: npt.NDArray[np.int64] = codes[_ints(position)]
        return out

    def _scan_apart(self, lo: int, last: int, names: Names) -> pa.Table:
        """Records of one chunk, up to entry ``last``, read on a connection of its own, for
        another thread (its snapshot may hold later entries, of subjects not in ``names``)."""
        db = _connect(self.path, "ro")
        try:
            db.execute("BEGIN")
            return scan_records(db, lo, min(lo + _SCAN, last + 1), names).table
        finally:
            db.close()

    def _entries(self, lo: int, hi: int, names: Names) -> Entries:
        """Entries lo <= seq < hi of both tables, in sequence order, with payloads."""
        records = scan_records(self._db, lo, hi, names, hashes=True)
        subjects = scan_subjects(self._db, lo, hi)
        seq = np.concatenate([records.seq, subjects.seq])
        payloads: list[bytes | None] = [
            *record_payloads(records.seq, records.table),
            *subject_payloads(subjects.seq, subjects.table),
        ]
        for i in np.flatnonzero(records.dangling):  # a ref to no record: a changed field
            payloads[int(i)] = None
        keys = [*records.table.column("id").to_pylist(), *subjects.table.column("code").to_pylist()]
        kinds = ["record"] * len(records.seq) + ["subject"] * len(subjects.seq)
        digests = [*records.hashes, *subjects.hashes]
        links = np.concatenate([records.links, subjects.links])
        order = np.argsort(seq, kind="stable")
        faults: dict[int, tuple[str, str]] = {}
        if records.faults or subjects.faults:  # by place: a number used twice has two
            stored = [records.faults.get(n) for n in records.seq.tolist()]
            stored += [subjects.faults.get(n) for n in subjects.seq.tolist()]
            faults = {k: f for k, i in enumerate(order.tolist()) if (f := stored[i]) is not None}
        return Entries(
            seq[order].tolist(),
            [payloads[i] for i in order],
            [keys[i] for i in order],
            [kinds[i] for i in order],
            [digests[i] for i in order],
            links[order].tolist(),
            faults,
        )


def _insert_overlapped(
    db: sqlite3.Connection, sql: str, chunks: Iterator[Iterator[tuple[object, ...]]]
) -> None:
    """Insert rows made chunk by chunk in a helper thread, while SQLite inserts the last
    chunk (it releases the interpreter lock while it works): hashing overlaps inserting.
    An error in the helper is raised here, so the caller's transaction rolls back."""
    handoff: queue.Queue[Iterator[tuple[object, ...]] | None] = queue.Queue(2)
    stop = threading.Event()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            for rows in chunks:
                if stop.is_set():
                    return
                handoff.put(rows)
        except BaseException as exc:  # handed to the inserting thread, which raises it
            failed.append(exc)
        handoff.put(None)

    helper = threading.Thread(target=produce, name="ledger-hashing", daemon=True)
    helper.start()
    try:
        # The chunks are chained in C: no Python code runs per row on this thread.
        db.executemany(sql, itertools.chain.from_iterable(iter(handoff.get, None)))
    finally:
        stop.set()
        while helper.is_alive():  # unblock a helper waiting to hand over a chunk
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        helper.join()
    if failed:  # the rows inserted so far are rolled back with the transaction
        raise failed[0]


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open {path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    except sqlite3.DatabaseError as exc:
        db.close()
        if "not a database" in str(exc):
            raise LedgerError(f"{path} is not a ledger: it is not an SQLite database") from None
        raise LedgerError(f"cannot open {path}: {exc}") from exc
    return db


def _upgrade(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Upgrade a ledger file of an earlier schema version to this one, in one transaction."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise LedgerError(
            f"cannot upgrade {path} from schema version {version} to {SCHEMA_VERSION} (it is "
            f"opened for writing): {exc}"
        ) from exc
    try:
        # read again: another process may have upgraded it in the meantime
        (found,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(found)
        if version == 1:
            for statement in _UPGRADE_1_TO_2:
                db.execute(statement)
            db.execute(_FILL_BY_SUBJECT, (0,))  # every record, sorted, as a batch's are
            db.execute("INSERT INTO meta (key, value) VALUES ('upgraded_to_2_at', ?)", (_now(),))
        if version <= 2:
            for statement in _UPGRADE_2_TO_3:
                db.execute(statement)
            db.execute("INSERT INTO meta (key, value) VALUES ('upgraded_to_3_at', ?)", (_now(),))
    except BaseException as exc:
        db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise LedgerError(
                f"cannot upgrade {path} from schema version {version} to {SCHEMA_VERSION}: {exc}"
            ) from exc
        raise
    db.execute("COMMIT")


def _check_header(db: sqlite3.Connection, path: Path) -> None:
    """Refuse an empty file (:func:`_connect` refuses any other that is not a database)."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    if not pages:
        raise LedgerError(f"{path} is not a ledger: it is not an SQLite database")


def _read_meta(db: sqlite3.Connection, path: Path) -> dict[str, str]:
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        raise LedgerError(f"{path} is not a socialcredit ledger: it has no meta table") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _days(dates: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    days = pc.cast(dates, pa.int32()).to_numpy()
    return np.asarray(days, dtype=np.int64)


def _ints(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return np.asarray(values.to_numpy(), dtype=np.int64)

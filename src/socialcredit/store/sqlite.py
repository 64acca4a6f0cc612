"""The ledger in one SQLite file: append-only, hash-chained, durable.

Layout (schema version 1)::

    meta      (key, value)                      format, schema version, hash encoding
    subjects  (seq, code, kind, hash, link)     one entry per registered subject
    records   (seq, id, subject, type, occurred_at, recorded_at, amount, ref, hash, link)
    types     (code, name)                      record types, numbered as first seen
    batches   (batch, source, first_seq, last_seq, head, appended_at)   one per write

``seq`` numbers the entries of both tables in one sequence (see
:mod:`socialcredit.store.chain`). In ``records``, ``subject`` is the ``seq`` of the
subject's entry, ``type`` a code of ``types``, ``ref`` the ``seq`` of the referenced
record, dates whole days since 1970-01-01 (:mod:`socialcredit.days`); ``hash`` is the
entry's SHA-256 and ``link`` the first 8 bytes of the previous entry's hash. Indexes:
records by id (unique), by subject and by ref.

Every table refuses UPDATE and DELETE (triggers that abort), the file is in WAL mode with
``synchronous=FULL``, and each write is one transaction: a batch is durable once
:meth:`~socialcredit.store.base.Ledger.append` returns, and a failed batch leaves no
trace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import LedgerError
from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.store.base import Ledger, VerifyReport
from socialcredit.store.chain import GENESIS, chain, link_of, record_payloads, subject_payloads

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

FORMAT = "socialcredit-ledger"
SCHEMA_VERSION = 1
HASH_ENCODING = "sha256-netstrings-1"

_TABLES = ("meta", "subjects", "types", "records", "batches")
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE subjects (seq INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, "
    "kind TEXT NOT NULL, hash BLOB NOT NULL, link INTEGER NOT NULL)",
    "CREATE TABLE types (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "subject INTEGER NOT NULL, type INTEGER NOT NULL, occurred_at INTEGER NOT NULL, "
    "recorded_at INTEGER NOT NULL, amount INTEGER NOT NULL, ref INTEGER, "
    "hash BLOB NOT NULL, link INTEGER NOT NULL)",
    "CREATE INDEX records_by_subject ON records (subject)",
    "CREATE INDEX records_by_ref ON records (ref) WHERE ref IS NOT NULL",
    "CREATE TABLE batches (batch INTEGER PRIMARY KEY, source TEXT NOT NULL, "
    "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, head BLOB NOT NULL, "
    "appended_at TEXT NOT NULL)",
    *(
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never changed or "
        f"deleted; a correction is a new record whose ref names the old one'); END"
        for table in _TABLES
        for verb in ("update", "delete")
    ),
)
_PAGE_SIZE = 16384
_CACHE_KIB = 131072
_BUSY_MS = 10000
_SCAN = 1_000_000  # entries per chunk when reading the whole ledger
_CHUNK = 8192  # records hashed at a time while the previous chunk is inserted
_SEP = "\x1f"  # separates text values in group_concat; control characters are refused
# Python's sqlite3 binds int, str and bytearray directly but sends None and bytes through
# its adapter lookup, which costs more than the insert itself: a missing ref is bound as 0
# (no entry has sequence number 0) and hashes as bytearrays.
_INSERT_RECORD = (
    "INSERT INTO records (seq, id, subject, type, occurred_at, recorded_at, amount, ref, "
    "hash, link) VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0), ?, ?)"
)
_RECORD_COLUMNS = (
    "r.seq, r.id, s.code, t.name, r.occurred_at, r.recorded_at, r.amount, rr.id "
    "FROM records AS r JOIN subjects AS s ON s.seq = r.subject "
    "JOIN types AS t ON t.code = r.type LEFT JOIN records AS rr ON rr.seq = r.ref"
)


class SqliteLedger(Ledger):
    """A ledger in an SQLite file. Make one with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

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
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("format", FORMAT),
                ("schema_version", str(SCHEMA_VERSION)),
                ("hash_encoding", HASH_ENCODING),
                ("created_at", _now()),
            ])
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return cls(path, db)

    @classmethod
    def open(cls, path: str | Path) -> SqliteLedger:
        """Open an existing ledger file, checking that it is one, of this schema version."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no ledger at {path}: the file does not exist; create a ledger "
                              "first")
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise LedgerError(f"{path} is not a ledger: it is not an SQLite database")
        db = _connect(path, "rw")
        try:
            meta = _read_meta(db, path)
            if meta.get("format") != FORMAT:
                raise LedgerError(f"{path} is not a socialcredit ledger")
            version = meta.get("schema_version")
            if version != str(SCHEMA_VERSION):
                raise LedgerError(
                    f"{path} is a ledger of schema version {version}; this version of "
                    f"socialcredit reads schema version {SCHEMA_VERSION} only"
                )
            db.execute("PRAGMA journal_mode = WAL")
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
        rows = self._db.execute("SELECT code, kind FROM subjects ORDER BY seq").fetchall()
        codes, kinds = zip(*rows, strict=True) if rows else ((), ())
        return pa.table({"code": pa.array(codes, pa.string()),
                         "kind": pa.array(kinds, pa.string())}, schema=SUBJECTS_SCHEMA)

    def records(self) -> pa.Table:
        """All records, canonical schema, in ledger order."""
        with self._reading():
            last = self._last_seq()
            names = self._names()
            parts = [
                self._scan(lo, lo + _SCAN, names).table for lo in range(1, last + 1, _SCAN)
            ]
        if not parts:
            return RECORDS_SCHEMA.empty_table()
        return pa.concat_tables(parts).combine_chunks()

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, canonical schema, in ledger order."""
        rows = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} WHERE r.subject = "
            "(SELECT seq FROM subjects WHERE code = ?) ORDER BY r.seq", (code,)
        ).fetchall()
        return _records_table(rows).drop_columns(["seq"])

    def batches(self) -> list[tuple[int, str, int, int, str]]:
        """The log of writes: (batch, source, first entry, last entry, when), oldest first."""
        rows = self._db.execute(
            "SELECT batch, source, first_seq, last_seq, appended_at FROM batches ORDER BY batch"
        ).fetchall()
        return [tuple(row) for row in rows]

    # -- verifying ----------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute the whole chain; name the first entry that fails, and why.

        Checked, entry by entry in sequence order: the sequence has no gap and no number
        twice; each entry's link matches the previous entry's hash (else the previous entry
        was rewritten); each entry's hash matches its fields (else they were changed); the
        heads recorded in the log of batches match the chain, and the chain reaches the
        last entry the log records (else entries were cut off the end).
        """
        with self._reading():
            last = max(self._last_seq(), self._logged_last())
            names = self._names()
            heads = dict(self._db.execute("SELECT last_seq, head FROM batches").fetchall())
            walk = _Walk(heads)
            for lo in range(1, last + 1, _SCAN):
                entries = self._entries(lo, lo + _SCAN, names)
                report = walk.check(entries)
                if report is not None:
                    return report
        logged = self._logged_last()
        if walk.checked < logged:
            return VerifyReport(
                False, walk.checked, walk.checked + 1,
                f"entries {walk.checked + 1} to {logged} are missing: the ledger ends at "
                f"entry {walk.checked}, but its log of batches records entries up to "
                f"{logged} (the end of the ledger was cut off)", None, walk.previous.hex(),
            )
        return VerifyReport(True, walk.checked, head=walk.previous.hex())

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

    def _registered(self, codes: pa.Array | pa.ChunkedArray, *, kinds: bool = False) -> pa.Table:
        codes = _combined(codes)
        if kinds:
            rows = self._db.execute(
                "SELECT s.seq, s.kind FROM json_each(?) AS j "
                "LEFT JOIN subjects AS s ON s.code = j.value ORDER BY j.key",
                (json.dumps(codes.to_pylist()),),
            ).fetchall()
            seqs, found_kinds = zip(*rows, strict=True) if rows else ((), ())
            table = pa.table({"code": codes, "seq": pa.array(seqs, pa.int64()),
                              "kind": pa.array(found_kinds, pa.string())})
        else:
            # The unique index on code holds the seq: no need to read the table itself.
            rows = self._db.execute(
                "SELECT (SELECT seq FROM subjects WHERE code = j.value) FROM json_each(?) AS j "
                "ORDER BY j.key", (json.dumps(codes.to_pylist()),),
            ).fetchall()
            seqs = pa.array([seq for (seq,) in rows], pa.int64())
            table = pa.table({"code": codes, "seq": seqs})
        return table.filter(pc.is_valid(table["seq"]))

    def _existing(self, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        # First the few ids that are there (the unique index answers alone), then their rows.
        found = self._db.execute(
            "SELECT r.seq FROM json_each(?) AS j JOIN records AS r ON r.id = j.value",
            (json.dumps(ids.to_pylist()),),
        ).fetchall()
        if not found:
            return _records_table([])
        rows = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} WHERE r.seq IN (SELECT value FROM json_each(?))",
            (json.dumps([seq for (seq,) in found]),),
        ).fetchall()
        return _records_table(rows)

    def _write_subjects(self, subjects: pa.Table, *, source: str) -> None:
        first, previous = self._head()
        seqs = np.arange(first, first + subjects.num_rows, dtype=np.int64)
        hashes = chain(previous, subject_payloads(seqs, subjects))
        self._db.executemany(
            "INSERT INTO subjects (seq, code, kind, hash, link) VALUES (?, ?, ?, ?, ?)",
            zip(seqs.tolist(), subjects.column("code").to_pylist(),
                subjects.column("kind").to_pylist(), map(bytearray, hashes),
                _links(previous, hashes), strict=True),
        )
        self._log(source, int(seqs[0]), int(seqs[-1]), hashes[-1])

    def _write_records(
        self, records: pa.Table, *, subjects: pa.Table, existing: pa.Table, source: str
    ) -> None:
        first, previous = self._head()
        n = records.num_rows
        seqs = np.arange(first, first + n, dtype=np.int64)
        subject = subjects["seq"].take(pc.index_in(records["subject"], value_set=subjects["code"]))
        ref = records["ref"]
        ref_seq = pc.add(pc.index_in(ref, value_set=records["id"].combine_chunks()), first)
        if existing.num_rows:
            in_ledger = existing["seq"].take(pc.index_in(ref, value_set=existing["id"]))
            ref_seq = pc.coalesce(ref_seq, in_ledger)
        columns = pa.table({
            "seq": seqs,
            "subject": subject,
            "type": self._type_codes(records.column("type")),
            "occurred_at": _days(records.column("occurred_at")),
            "recorded_at": _days(records.column("recorded_at")),
            "ref": pc.fill_null(ref_seq, 0),
        })
        head = [previous]

        def chunks() -> Iterator[list[tuple[object, ...]]]:
            for lo in range(0, n, _CHUNK):
                part, numbers = records.slice(lo, _CHUNK), columns.slice(lo, _CHUNK)
                part_seqs = seqs[lo:lo + _CHUNK]
                hashes = chain(head[0], record_payloads(part_seqs, part))
                yield list(zip(
                    part_seqs.tolist(),
                    part.column("id").to_pylist(),
                    numbers.column("subject").to_pylist(),
                    numbers.column("type").to_pylist(),
                    numbers.column("occurred_at").to_pylist(),
                    numbers.column("recorded_at").to_pylist(),
                    part.column("amount").to_pylist(),
                    numbers.column("ref").to_pylist(),
                    map(bytearray, hashes),
                    _links(head[0], hashes),
                    strict=True,
                ))
                head[0] = hashes[-1]

        _insert_overlapped(self._db, _INSERT_RECORD, chunks())
        self._log(source, int(seqs[0]), int(seqs[-1]), head[0])

    # -- helpers ------------------------------------------------------------------------

    def _head(self) -> tuple[int, bytes]:
        """The next sequence number and the hash of the last entry."""
        best = (0, GENESIS)
        for table in ("records", "subjects"):
            row = self._db.execute(
                f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
            if row is not None and row[0] > best[0]:
                best = (int(row[0]), bytes(row[1]))
        return best[0] + 1, best[1]

    def _last_seq(self) -> int:
        row = self._db.execute(
            "SELECT max(ifnull((SELECT max(seq) FROM records), 0), "
            "ifnull((SELECT max(seq) FROM subjects), 0))").fetchone()
        return int(row[0])

    def _logged_last(self) -> int:
        row = self._db.execute("SELECT ifnull(max(last_seq), 0) FROM batches").fetchone()
        return int(row[0])

    def _log(self, source: str, first: int, last: int, head: bytes) -> None:
        self._db.execute(
            "INSERT INTO batches (source, first_seq, last_seq, head, appended_at) "
            "VALUES (?, ?, ?, ?, ?)", (source, first, last, head, _now()),
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

    def _names(self) -> _Names:
        """Subject codes and type names by their numbers, for reading records."""
        subject_rows = self._db.execute("SELECT seq, code FROM subjects ORDER BY seq").fetchall()
        seqs, codes = zip(*subject_rows, strict=True) if subject_rows else ((), ())
        type_rows = self._db.execute("SELECT code, name FROM types").fetchall()
        size = max((code for code, _ in type_rows), default=0) + 1
        names: list[str | None] = [None] * size
        for code, name in type_rows:
            names[code] = name
        return _Names(np.array(seqs, dtype=np.int64), pa.array(codes, pa.string()),
                      pa.array(names, pa.string()))

    def _scan(self, lo: int, hi: int, names: _Names, *, hashes: bool = False) -> _Scan:
        """The records of entries lo <= seq < hi, read column-wise."""
        extra = ", group_concat(hex(hash), ''), group_concat(link)" if hashes else ""
        row = self._db.execute(
            "SELECT count(*), group_concat(seq), group_concat(id, char(31)), "
            "group_concat(subject), group_concat(type), group_concat(occurred_at), "
            "group_concat(recorded_at), group_concat(amount), "
            f"group_concat(ifnull(ref, '')){extra} FROM records WHERE seq >= ? AND seq < ?",
            (lo, hi),
        ).fetchone()
        count = int(row[0])
        if count == 0:
            return _Scan.empty()
        seq = _split_ints(row[1])
        ids = _split(row[2], _SEP)
        columns = [_split_ints(text) for text in row[3:8]]
        ref_text = _split(row[8], ",")
        if len(ids) != count or len(ref_text) != count or len(seq) != count:
            return self._scan_slowly(lo, hi, names, hashes=hashes)
        ref_seq = _ints_or_null(ref_text)
        subject_seq, type_code, occurred, recorded, amount = columns
        table = pa.Table.from_arrays([
            ids.cast(pa.string()),
            names.subject(subject_seq),
            names.type(type_code),
            _dates(occurred),
            _dates(recorded),
            pa.array(amount, pa.int64()),
            self._ids_of(ref_seq, seq, ids),
        ], schema=RECORDS_SCHEMA)
        if not hashes:
            return _Scan(seq, table)
        digests = bytes.fromhex(row[9])
        return _Scan(seq, table, [digests[i:i + 32] for i in range(0, len(digests), 32)],
                     _split_ints(row[10]))

    def _scan_slowly(self, lo: int, hi: int, names: _Names, *, hashes: bool) -> _Scan:
        """As :meth:`_scan`, row by row: for values holding the separator (a tampered file)."""
        rows = self._db.execute(
            "SELECT seq, id, subject, type, occurred_at, recorded_at, amount, ref, hash, link "
            "FROM records WHERE seq >= ? AND seq < ? ORDER BY seq", (lo, hi)).fetchall()
        cols = list(zip(*rows, strict=True))
        seq = np.array(cols[0], dtype=np.int64)
        ids = pa.array(cols[1], pa.string())
        ref_seq = pa.array(cols[7], pa.int64())
        table = pa.Table.from_arrays([
            ids,
            names.subject(np.array(cols[2], dtype=np.int64)),
            names.type(np.array(cols[3], dtype=np.int64)),
            _dates(np.array(cols[4], dtype=np.int64)),
            _dates(np.array(cols[5], dtype=np.int64)),
            pa.array(cols[6], pa.int64()),
            self._ids_of(ref_seq, seq, ids),
        ], schema=RECORDS_SCHEMA)
        if not hashes:
            return _Scan(seq, table)
        return _Scan(seq, table, [bytes(h) for h in cols[8]], np.array(cols[9], np.int64))

    def _ids_of(self, refs: pa.Array, seq: npt.NDArray[np.int64], ids: pa.Array) -> pa.Array:
        """The record ids of the entries ``refs`` (null stays null)."""
        if refs.null_count == len(refs):
            return pa.nulls(len(refs), pa.string())
        wanted = np.asarray(pc.fill_null(refs, -1).to_numpy(), dtype=np.int64)
        position = np.clip(np.searchsorted(seq, wanted), 0, len(seq) - 1)
        here = seq[position] == wanted
        out = pc.if_else(pa.array(here), ids.take(pa.array(position)), pa.scalar(None, ids.type))
        elsewhere = np.flatnonzero(~here & (wanted >= 0))
        if len(elsewhere):
            targets = np.unique(wanted[elsewhere])
            found = dict(self._db.execute(
                "SELECT seq, id FROM records WHERE seq IN (SELECT value FROM json_each(?))",
                (json.dumps(targets.tolist()),)).fetchall())
            looked = [found.get(int(s)) for s in wanted[elsewhere]]
            out = _put(out, elsewhere, looked)
        return out.cast(pa.string())

    def _entries(self, lo: int, hi: int, names: _Names) -> _Entries:
        """Entries lo <= seq < hi of both tables, in sequence order, with payloads."""
        records = self._scan(lo, hi, names, hashes=True)
        rows = self._db.execute(
            "SELECT seq, code, kind, hash, link FROM subjects WHERE seq >= ? AND seq < ? "
            "ORDER BY seq", (lo, hi)).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 5
        subject_seq = np.array(cols[0], dtype=np.int64)
        subjects = pa.table({"code": pa.array(cols[1], pa.string()),
                             "kind": pa.array(cols[2], pa.string())})
        seq = np.concatenate([records.seq, subject_seq])
        payloads = [*record_payloads(records.seq, records.table),
                    *subject_payloads(subject_seq, subjects)]
        keys = [*records.table.column("id").to_pylist(), *cols[1]]
        kinds = ["record"] * len(records.seq) + ["subject"] * len(subject_seq)
        digests = [*records.hashes, *(bytes(h) for h in cols[3])]
        links = np.concatenate([records.links, np.array(cols[4], dtype=np.int64)])
        order = np.argsort(seq, kind="stable")
        return _Entries(
            seq[order].tolist(), [payloads[i] for i in order], [keys[i] for i in order],
            [kinds[i] for i in order], [digests[i] for i in order], links[order].tolist(),
        )


# -- pieces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    """Subject codes by subject entry, type names by type code."""

    subject_seqs: npt.NDArray[np.int64]
    subject_codes: pa.Array
    type_names: pa.Array

    def subject(self, seqs: npt.NDArray[np.int64]) -> pa.Array:
        if len(self.subject_seqs) == 0:
            return pa.nulls(len(seqs), pa.string())
        position = np.clip(np.searchsorted(self.subject_seqs, seqs), 0,
                           len(self.subject_seqs) - 1)
        found = self.subject_seqs[position] == seqs
        codes = self.subject_codes.take(pa.array(position))
        return pc.if_else(pa.array(found), codes, pa.scalar(None, pa.string()))

    def type(self, codes: npt.NDArray[np.int64]) -> pa.Array:
        inside = (codes >= 0) & (codes < len(self.type_names))
        names = self.type_names.take(pa.array(np.where(inside, codes, 0)))
        return pc.if_else(pa.array(inside), names, pa.scalar(None, pa.string()))


@dataclass(frozen=True)
class _Scan:
    seq: npt.NDArray[np.int64]
    table: pa.Table
    hashes: Sequence[bytes] = ()
    links: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def empty(cls) -> _Scan:
        return cls(np.zeros(0, dtype=np.int64), RECORDS_SCHEMA.empty_table())


@dataclass(frozen=True)
class _Entries:
    seq: list[int]
    payloads: list[bytes | None]
    keys: list[str]
    kinds: list[str]
    hashes: list[bytes]
    links: list[int]


class _Walk:
    """The state of :meth:`SqliteLedger.verify` along the chain."""

    def __init__(self, heads: dict[int, bytes]) -> None:
        self.heads = heads
        self.previous = GENESIS
        self.checked = 0

    def check(self, entries: _Entries) -> VerifyReport | None:
        sha256 = hashlib.sha256
        for k, seq in enumerate(entries.seq):
            expected = self.checked + 1
            key, kind = entries.keys[k], entries.kinds[k]
            name = f"entry {seq} ({kind} {key!r})"
            if seq != expected:
                if seq > expected:
                    return self._bad(expected, None, (
                        f"gap in the sequence: entry {expected} is missing (the entries go "
                        f"from {expected - 1} to {seq}): it was deleted"))
                return self._bad(seq, key, f"sequence number {seq} is used twice")
            if entries.links[k] != link_of(self.previous):
                return self._bad(seq, key, (
                    f"broken link: {name} is not chained to the hash entry {seq - 1} has "
                    f"now; entry {seq - 1} was rewritten, or the link of entry {seq} changed"))
            payload = entries.payloads[k]
            if payload is None:
                return self._bad(seq, key, (
                    f"content hash mismatch: {name} refers to a subject, type or record "
                    "that does not exist; its fields were changed"))
            digest = sha256(self.previous + payload).digest()
            if digest != entries.hashes[k]:
                return self._bad(seq, key, (
                    f"content hash mismatch: the fields of {name} do not match its hash; "
                    "they were changed after it was appended"))
            head = self.heads.get(seq)
            if head is not None and bytes(head) != digest:
                return self._bad(seq, key, (
                    f"{name} does not match the hash the log of batches recorded for it: "
                    "the chain up to here was rewritten"))
            self.previous = digest
            self.checked += 1
        return None

    def _bad(self, seq: int, key: str | None, reason: str) -> VerifyReport:
        return VerifyReport(False, self.checked, seq, reason, key, self.previous.hex())


def _insert_overlapped(
    db: sqlite3.Connection, sql: str, chunks: Iterator[list[tuple[object, ...]]]
) -> None:
    """Insert rows made chunk by chunk in a helper thread, while SQLite inserts the last
    chunk (it releases the interpreter lock while it works): hashing overlaps inserting.
    An error in the helper is raised here, so the caller's transaction rolls back."""
    handoff: queue.Queue[list[tuple[object, ...]] | BaseException | None] = queue.Queue(2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for rows in chunks:
                if stop.is_set():
                    return
                handoff.put(rows)
        except BaseException as exc:  # handed to the inserting thread, which raises it
            handoff.put(exc)
            return
        handoff.put(None)

    def rows() -> Iterator[tuple[object, ...]]:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item

    helper = threading.Thread(target=produce, name="ledger-hashing", daemon=True)
    helper.start()
    try:
        db.executemany(sql, rows())
    finally:
        stop.set()
        while helper.is_alive():  # unblock a helper waiting to hand over a chunk
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        helper.join()


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open {path}: {exc}") from exc
    db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    return db


def _read_meta(db: sqlite3.Connection, path: Path) -> dict[str, str]:
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        raise LedgerError(f"{path} is not a socialcredit ledger: it has no meta table") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _links(previous: bytes, hashes: list[bytes]) -> list[int]:
    """The link of each entry: the first 8 bytes of the hash before it, as a signed int."""
    joined = np.frombuffer(previous + b"".join(hashes[:-1]), dtype=">i8")
    out: list[int] = joined[::4].tolist()
    return out


def _days(dates: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    days = pc.cast(dates, pa.int32()).to_numpy()
    return np.asarray(days, dtype=np.int64)


def _dates(days: npt.NDArray[np.int64]) -> pa.Array:
    return pa.array(days.astype(np.int32)).cast(pa.date32())


def _ints(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return np.asarray(values.to_numpy(), dtype=np.int64)


def _split(text: str, separator: str) -> pa.Array:
    parts = pc.split_pattern(pa.array([text], pa.large_string()), separator)
    flat: pa.Array = pc.list_flatten(parts)
    return flat


def _split_ints(text: str) -> npt.NDArray[np.int64]:
    return np.asarray(pc.cast(_split(text, ","), pa.int64()).to_numpy(), dtype=np.int64)


def _ints_or_null(values: pa.Array) -> pa.Array:
    empty = pc.equal(values, "")
    cleaned = pc.if_else(empty, pa.scalar(None, values.type), values)
    out: pa.Array = pc.cast(cleaned, pa.int64())
    return out


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def _put(values: pa.Array, positions: npt.NDArray[np.int64], items: list[str | None]) -> pa.Array:
    out = values.to_pylist()
    for position, item in zip(positions.tolist(), items, strict=True):
        out[position] = item
    return pa.array(out, pa.string())


def _records_table(rows: list[tuple[object, ...]]) -> pa.Table:
    """A canonical table (with ``seq`` first) from rows of ``_RECORD_COLUMNS``."""
    cols: list[Sequence[object]] = (
        list(zip(*rows, strict=True)) if rows else [() for _ in range(8)]
    )
    arrays = [
        pa.array(cols[0], pa.int64()),
        pa.array(cols[1], pa.string()),
        pa.array(cols[2], pa.string()),
        pa.array(cols[3], pa.string()),
        pa.array(cols[4], pa.int32()).cast(pa.date32()),
        pa.array(cols[5], pa.int32()).cast(pa.date32()),
        pa.array(cols[6], pa.int64()),
        pa.array(cols[7], pa.string()),
    ]
    return pa.Table.from_arrays(
        arrays, schema=pa.schema([pa.field("seq", pa.int64()), *RECORDS_SCHEMA])
    )

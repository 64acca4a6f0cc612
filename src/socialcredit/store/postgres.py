"""The ledger in a PostgreSQL schema: append-only, hash-chained, durable.

A ledger is one schema of a database (default ``socialcredit``), so one database holds as
many ledgers as it has schemas. Its target is a connection string, with the schema as a
``schema`` parameter of a URL::

    postgresql://user@host:5432/dbname?schema=town

Layout (schema version 1), as in :mod:`socialcredit.store.sqlite`::

    meta      (key, value)                      format, schema version, hash encoding
    subjects  (seq, code, kind, hash, link)     one entry per registered subject
    records   (seq, id, subject, type, occurred_at, recorded_at, amount, ref, hash, link)
    types     (code, name)                      record types, numbered as first seen
    batches   (batch, source, first_seq, last_seq, head, appended_at)   one per write

``seq`` numbers the entries of both tables in one sequence, and the hash chain is the one
of :mod:`socialcredit.store.chain`: the same entries have the same hashes in either store.
In ``records``, ``subject`` is the ``seq`` of the subject's entry, ``type`` a code of
``types``, ``ref`` the ``seq`` of the referenced record, the dates are ``date``; ``hash``
is the entry's SHA-256 and ``link`` the first 8 bytes of the previous entry's hash.
Indexes: records by id (unique), by subject and by ref; no two batches cover the same
entry (an exclusion constraint on their ranges).

Every table refuses UPDATE, DELETE and TRUNCATE: a trigger (PL/pgSQL) raises
``integrity_constraint_violation`` before the statement touches a row. Each write is one
transaction, committed with ``synchronous_commit = on``, so a batch is durable once
:meth:`~socialcredit.store.base.Ledger.append` returns and a failed batch leaves no trace.
Writers serialize on the chain's head: a write first takes a transaction-scoped advisory
lock keyed by the ledger's schema, and only then reads the head, so two writers never
chain to the same entry (the lock needs no privilege beyond connecting, so a writer may
hold INSERT and SELECT on the tables and nothing more). Readers take no lock: they read
one snapshot (REPEATABLE READ).

Records go in with ``COPY ... FROM STDIN (FORMAT BINARY)``, laid out column-wise by
:mod:`socialcredit.store.postgres_binary` while the server takes in the previous chunk;
they come back as one ``bytea`` per column and chunk, turned into Arrow arrays without a
Python object per row.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg.errors
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.copy import QueuedLibpqWriter

from socialcredit.errors import LedgerError
from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.store.backends import is_postgres_url
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
from socialcredit.store.postgres_binary import (
    PG_EPOCH_DAYS,
    SIGNATURE,
    TRAILER,
    copy_rows,
    fixed,
    ints,
    strings,
    text_array,
    varying,
)
from socialcredit.store.sqlite_scan import Names, dangling
from socialcredit.store.verify import ChainWalk, Entries

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "WRITERS_LOCK", "PostgresLedger"]

FORMAT = "socialcredit-ledger"
SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "socialcredit"
MAX_SCHEMA_BYTES = 63
"""The longest name PostgreSQL keeps whole (NAMEDATALEN - 1)."""

log = logging.getLogger(__name__)

ANALYZE_AT_LEAST = 10_000
"""Batches smaller than this never refresh the planner's statistics."""

_TABLES = ("meta", "subjects", "types", "records", "batches")
_APPEND_ONLY = (
    "' is append-only: rows are never changed or deleted; a correction is a new record "
    "whose ref names the old one'"
)
_SCHEMA = (
    "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
    'CREATE TABLE subjects (seq bigint PRIMARY KEY, code text COLLATE "C" NOT NULL UNIQUE, '
    "kind text NOT NULL, hash bytea NOT NULL, link bigint NOT NULL)",
    'CREATE TABLE types (code integer PRIMARY KEY, name text COLLATE "C" NOT NULL UNIQUE)',
    'CREATE TABLE records (seq bigint PRIMARY KEY, id text COLLATE "C" NOT NULL UNIQUE, '
    "subject bigint NOT NULL, type integer NOT NULL, occurred_at date NOT NULL, "
    "recorded_at date NOT NULL, amount bigint NOT NULL, ref bigint, "
    "hash bytea NOT NULL, link bigint NOT NULL)",
    "CREATE INDEX records_by_subject ON records (subject)",
    "CREATE INDEX records_by_ref ON records (ref) WHERE ref IS NOT NULL",
    "CREATE TABLE batches (batch bigint PRIMARY KEY, source text NOT NULL, "
    "first_seq bigint NOT NULL, last_seq bigint NOT NULL, head bytea NOT NULL, "
    "appended_at timestamptz NOT NULL, CHECK (first_seq <= last_seq), "
    "EXCLUDE USING gist (int8range(first_seq, last_seq, '[]') WITH &&))",
    "CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', "
    f"MESSAGE = TG_TABLE_NAME || {_APPEND_ONLY}; END $$",
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
        for table in _TABLES
    ),
)
WRITERS_LOCK = 0x5C1ED6E5  # first key of the advisory lock of writers; the second is the schema
_SCAN = 250_000  # entries per chunk when reading the whole ledger
_READERS = min(4, os.cpu_count() or 1)  # connections reading chunks at once
_CHUNK = 25_000  # records hashed at a time while the server takes in the previous chunk
_TEXT_ARRAY_OID = 1009
_COPY_RECORDS = (
    "COPY records (seq, id, subject, type, occurred_at, recorded_at, amount, ref, hash, "
    "link) FROM STDIN (FORMAT BINARY)"
)
_COPY_SUBJECTS = "COPY subjects (seq, code, kind, hash, link) FROM STDIN (FORMAT BINARY)"

_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Target:
    """Where a ledger is: the connection string (without the schema) and the schema."""

    conninfo: str
    schema: str

    def __str__(self) -> str:
        try:
            params = conninfo_to_dict(self.conninfo)
        except psycopg.ProgrammingError:
            params = {}
        user = f"{params['user']}@" if params.get("user") else ""
        host = quote(str(params.get("host") or params.get("hostaddr") or ""), safe=":[],")
        port = f":{params['port']}" if params.get("port") else ""
        dbname = str(params.get("dbname") or "")
        return f"postgresql://{user}{host}{port}/{dbname}?{urlencode({'schema': self.schema})}"


def _target(dsn: str, schema: str | None) -> _Target:
    """The connection string and schema of a target; the URL's ``schema`` parameter is
    the schema unless ``schema`` is given."""
    conninfo = dsn
    if is_postgres_url(dsn):
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query, keep_blank_values=True)
        named = [value for key, value in query if key == "schema"]
        if named:
            if schema is not None and schema != named[-1]:
                raise ValueError(f"two schemas: {named[-1]!r} in the URL, {schema!r} given")
            schema = named[-1]
            rest = [(key, value) for key, value in query if key != "schema"]
            conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise LedgerError(f"not a PostgreSQL connection string: {exc}") from None
    schema = DEFAULT_SCHEMA if schema is None else schema
    if not schema or "\x00" in schema:
        raise LedgerError(f"{schema!r} is not a schema name")
    if schema.startswith("pg_"):
        raise LedgerError(
            f"{schema!r} is not a schema name: names beginning with pg_ are PostgreSQL's"
        )
    if len(schema.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise LedgerError(
            f"schema name {schema!r} has {len(schema.encode('utf-8'))} bytes: PostgreSQL keeps "
            f"at most {MAX_SCHEMA_BYTES} (it would shorten it, and two names would open one ledger)"
        )
    return _Target(conninfo, schema)


class _TextArray:
    """A ``text[]`` parameter already in binary form (see :func:`text_array`)."""

    __slots__ = ("data",)

    def __init__(self, values: pa.Array | pa.ChunkedArray) -> None:
        values = values.drop_null()  # and text with NUL, which no PostgreSQL text holds
        self.data = text_array(values.filter(pc.invert(pc.match_substring(values, "\x00"))))


class _TextArrayDumper(Dumper):
    oid = _TEXT_ARRAY_OID
    format = pq.Format.BINARY

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


@dataclass(frozen=True)
class _Rows:
    """Columns of rows read in sequence order: numbers as int64, texts as Arrow arrays."""

    n: int
    numbers: dict[str, _Ints]
    texts: dict[str, pa.Array]


class PostgresLedger(Ledger):
    """A ledger in a PostgreSQL schema. Make one with :meth:`create`, reopen it with
    :meth:`open`; ``schema`` is its schema and ``where`` names it in messages (a URL
    without password)."""

    def __init__(self, target: _Target, connection: psycopg.Connection[Any], oid: int) -> None:
        self.schema = target.schema
        self.where = str(target)
        self._target = target
        self._oid = oid
        self._db = connection
        self._lock = (WRITERS_LOCK, int4(oid))
        self._subjects = SubjectIndex()

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, dsn: str, *, schema: str | None = None) -> PostgresLedger:
        """Create a new, empty ledger in a new schema; an existing schema is never used."""
        target = _target(dsn, schema)
        db = _connect(target)
        try:
            with db.transaction():
                try:
                    db.execute(f"CREATE SCHEMA {_quoted(target.schema)}")
                except (psycopg.errors.DuplicateSchema, psycopg.errors.UniqueViolation):
                    raise LedgerError(
                        f"{target} already exists: open it, or choose a new schema"
                    ) from None
                for statement in _SCHEMA:
                    db.execute(statement)
                with db.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO meta (key, value) VALUES (%s, %s)",
                        [
                            ("format", FORMAT),
                            ("schema_version", str(SCHEMA_VERSION)),
                            ("hash_encoding", HASH_ENCODING),
                            ("created_at", _now()),
                        ],
                    )
            oid = _schema_oid(db, target.schema)
            assert oid is not None
        except BaseException:
            db.close()
            raise
        return cls(target, db, oid)

    @classmethod
    def open(cls, dsn: str, *, schema: str | None = None) -> PostgresLedger:
        """Open an existing ledger, checking that it is one, of this schema version."""
        target = _target(dsn, schema)
        db = _connect(target)
        try:
            oid = _schema_oid(db, target.schema)
            if oid is None:
                raise LedgerError(
                    f"no ledger at {target}: the schema {target.schema!r} does "
                    "not exist; create a ledger first"
                )
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            except psycopg.errors.UndefinedTable:
                raise LedgerError(
                    f"{target} is not a socialcredit ledger: it has no meta table"
                ) from None
            if meta.get("format") != FORMAT:
                raise LedgerError(f"{target} is not a socialcredit ledger")
            check_hash_encoding(meta, target)
            version = meta.get("schema_version")
            if version != str(SCHEMA_VERSION):
                raise LedgerError(
                    f"{target} is a ledger of schema version {version}; this version of "
                    f"socialcredit reads schema version {SCHEMA_VERSION} only"
                )
        except BaseException:
            db.close()
            raise
        return cls(target, db, oid)

    def close(self) -> None:
        """Close the connection; the ledger object is unusable afterwards."""
        self._db.close()

    # -- reading ------------------------------------------------------------------------

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered subject, or None when the code is not registered."""
        if "\x00" in code:
            return None
        row = self._db.execute("SELECT kind FROM subjects WHERE code = %s", (code,)).fetchone()
        return None if row is None else str(row[0])

    def subjects(self) -> pa.Table:
        """All registered subjects (``code``, ``kind``), in order of registration."""
        rows = self._read("subjects", {"seq": "int8"}, {"code": "text", "kind": "text"})
        return pa.table(
            {"code": rows.texts["code"], "kind": rows.texts["kind"]}, schema=SUBJECTS_SCHEMA
        )

    def records(self) -> pa.Table:
        """All records, canonical schema, in ledger order."""
        inside = self._db.info.transaction_status != pq.TransactionStatus.IDLE
        with self._reading():
            last = self._last_seq()
            names = self._names()
            starts = range(1, last + 1, _SCAN)
            parts = None
            if len(starts) > 1 and _READERS > 1 and not inside:
                parts = self._chunks_in_parallel(starts, names)
            if parts is None:
                parts = [self._chunk(lo, names) for lo in starts]
            if not parts:
                return RECORDS_SCHEMA.empty_table()
            seq = np.concatenate([part.seq for part in parts])
            table = pa.concat_tables([part.table for part in parts]).combine_chunks()
            refs = np.concatenate([part.refs for part in parts])
            return _with_refs(table, self._ids_of(refs, seq, _array(table.column("id"))))

    def _chunk(self, lo: int, names: Names) -> _Scan:
        return self._scan("seq >= %s AND seq < %s", (lo, lo + _SCAN), names)

    def _chunks_in_parallel(self, starts: range, names: Names) -> list[_Scan] | None:
        """Chunks read on connections of their own, in parallel, all on this transaction's
        snapshot (the server reads each in a process of its own); None when the server
        takes no more connections."""
        row = self._db.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        readers = min(_READERS, len(starts))
        try:
            with ThreadPoolExecutor(readers) as pool:
                done = dict(
                    kv
                    for group in pool.map(
                        lambda k: self._chunks_apart(starts[k::readers], names, str(row[0])),
                        range(readers),
                    )
                    for kv in group
                )
        except _NoConnection:
            return None
        return [done[lo] for lo in starts]

    def _chunks_apart(
        self, starts: Sequence[int], names: Names, snapshot: str
    ) -> list[tuple[int, _Scan]]:
        """Chunks of records read on a connection of its own, on the snapshot given."""
        if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
            raise LedgerError(f"unexpected snapshot name from PostgreSQL: {snapshot!r}")
        try:
            connection = _connect(self._target)
        except LedgerError as exc:
            raise _NoConnection from exc
        helper = PostgresLedger(self._target, connection, self._oid)
        try:
            with helper._db.transaction():
                helper._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                helper._db.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                return [(lo, helper._chunk(lo, names)) for lo in starts]
        finally:
            helper.close()

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, canonical schema, in ledger order: one statement
        (its own snapshot), as this is what a lookup of one subject waits for."""
        if "\x00" in code:
            return RECORDS_SCHEMA.empty_table()
        rows = self._db.execute(_RECORDS_OF, (code,)).fetchall()
        ids, types, occurred, recorded, amounts, refs = (
            [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 6
        )
        return pa.Table.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array([code] * len(rows), pa.string()),
                pa.array(types, pa.string()),
                pa.array(occurred, pa.date32()),
                pa.array(recorded, pa.date32()),
                pa.array(amounts, pa.int64()),
                pa.array(refs, pa.string()),
            ],
            schema=RECORDS_SCHEMA,
        )

    def batches(self) -> list[Batch]:
        """The log of writes, oldest first."""
        rows = self._db.execute(
            "SELECT batch, source, first_seq, last_seq, appended_at FROM batches ORDER BY batch"
        ).fetchall()
        return [
            Batch(batch, source, first, last, at.astimezone(dt.UTC).isoformat(timespec="seconds"))
            for batch, source, first, last, at in rows
        ]

    # -- verifying ----------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute the whole chain; name the first entry that fails, and why.

        The checks of :meth:`socialcredit.store.sqlite.SqliteLedger.verify`, on one
        snapshot of the ledger.
        """
        with self._reading():
            logged = self._logged_last()
            last = max(self._last_seq(), logged)
            names = self._names()
            heads = {
                int(seq): bytes(head)
                for seq, head in self._db.execute("SELECT last_seq, head FROM batches").fetchall()
            }
            walk = ChainWalk(heads)
            for lo in range(1, last + 1, _SCAN):
                report = walk.check(self._entries(lo, lo + _SCAN, names))
                if report is not None:
                    return report
        return walk.finish(logged)

    # -- hooks --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(self._db.transaction())
                # Writers queue here; the head is read only once the lock is held.
                self._db.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", self._lock)
            except psycopg.OperationalError as exc:
                raise LedgerError(f"cannot write to {self.where}: {exc}") from exc
            yield

    def _appended(self, added: int) -> None:
        """Planner statistics kept up with bulk writes: after a batch of at least
        ``ANALYZE_AT_LEAST`` records that grew the records by a fifth or more (the first
        ones into an empty ledger, say), ``ANALYZE`` them, so that a server without
        autovacuum does not plan every lookup of a subject's records as a scan of them
        all. The batch is already durable: a failure here is only logged."""
        if added < ANALYZE_AT_LEAST:
            return
        try:
            row = self._db.execute(
                "SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass"
            ).fetchone()
            known = float(row[0]) if row else -1.0  # -1: never analyzed
            if known < 0 or added >= 0.2 * known:
                self._db.execute("ANALYZE records, subjects")
        except psycopg.Error:
            log.warning("ANALYZE after a batch of %d records failed", added, exc_info=True)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read transaction: one snapshot across several statements."""
        if self._db.info.transaction_status != pq.TransactionStatus.IDLE:
            yield
            return
        with self._db.transaction():
            self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _subjects_since(self, mark: int) -> tuple[pa.Array, pa.Array, pa.Array]:
        new = self._read(
            "subjects", {"seq": "int8"}, {"code": "text", "kind": "text"}, "seq > %s", (mark,)
        )
        return pa.array(new.numbers["seq"], pa.int64()), new.texts["code"], new.texts["kind"]

    def _existing(self, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        index = self._subject_index()
        names = Names(_ints(index.seqs), index.codes, self._type_names())
        # IN a subquery, not = ANY(array): the planner joins it to the index, one probe
        # per id; it planned = ANY of 100,000 ids as a parallel scan of every record, 6 times
        # slower at 20 million records
        scan = self._scan("id IN (SELECT unnest(%b))", (_TextArray(ids),), names)
        ids = _array(scan.table.column("id"))
        table = _with_refs(scan.table, self._ids_of(scan.refs, scan.seq, ids))
        return table.add_column(0, "seq", pa.array(scan.seq, pa.int64()))

    def _write_subjects(self, subjects: pa.Table, *, source: str) -> None:
        first, previous = self._head()
        n = subjects.num_rows
        seqs = np.arange(first, first + n, dtype=np.int64)
        hashes = chain(previous, subject_payloads(seqs, subjects))
        rows = copy_rows(
            [
                fixed(seqs, ">i8"),
                varying(subjects.column("code")),
                varying(subjects.column("kind")),
                fixed(_digests(hashes), "V32"),
                fixed(links(previous, hashes), ">i8"),
            ],
            n,
        )
        with self._db.cursor() as cursor, cursor.copy(_COPY_SUBJECTS) as copy:
            copy.write(SIGNATURE + rows + TRAILER)
        self._log(source, first, first + n - 1, hashes[-1])

    def _write_records(
        self, records: pa.Table, *, subjects: pa.Table, existing: pa.Table, source: str
    ) -> None:
        first, head = self._head()
        n = records.num_rows
        seqs, subject, ref_seq = entry_numbers(records, first, subjects, existing)
        has_ref = np.asarray(pc.is_valid(ref_seq).to_numpy(zero_copy_only=False), np.bool_)
        numbers = {
            "subject": _ints(subject),
            "type": self._type_codes(records.column("type")),
            "occurred_at": _days(records.column("occurred_at")) - PG_EPOCH_DAYS,
            "recorded_at": _days(records.column("recorded_at")) - PG_EPOCH_DAYS,
            "amount": _ints(records.column("amount")),
            "ref": _ints(pc.fill_null(ref_seq, 0)),
        }
        with (
            self._db.cursor() as cursor,
            cursor.copy(_COPY_RECORDS, writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            copy.write(SIGNATURE)
            for lo in range(0, n, _CHUNK):
                hi = min(lo + _CHUNK, n)
                part = records.slice(lo, hi - lo)
                hashes = chain(head, record_payloads(seqs[lo:hi], part))
                copy.write(
                    copy_rows(
                        [
                            fixed(seqs[lo:hi], ">i8"),
                            varying(part.column("id")),
                            fixed(numbers["subject"][lo:hi], ">i8"),
                            fixed(numbers["type"][lo:hi], ">i4"),
                            fixed(numbers["occurred_at"][lo:hi], ">i4"),
                            fixed(numbers["recorded_at"][lo:hi], ">i4"),
                            fixed(numbers["amount"][lo:hi], ">i8"),
                            fixed(numbers["ref"][lo:hi], ">i8", valid=has_ref[lo:hi]),
                            fixed(_digests(hashes), "V32"),
                            fixed(links(head, hashes), ">i8"),
                        ],
                        hi - lo,
                    )
                )
                head = hashes[-1]
            copy.write(TRAILER)
        self._log(source, first, first + n - 1, head)

    # -- helpers ------------------------------------------------------------------------

    def _read(
        self,
        table: str,
        numbers: dict[str, str],
        texts: dict[str, str],
        where: str = "TRUE",
        params: Sequence[object] = (),
    ) -> _Rows:
        """Columns of the rows of ``table`` matching ``where``, in sequence order.

        ``numbers`` maps expressions to ``int8`` or ``int4``, ``texts`` to ``text`` or
        ``bytea``; the first number must be ``seq``. Each column comes back as one
        ``bytea``, the values' binary forms laid end to end, so no row is a Python object;
        ``int4`` values (and the lengths of the texts) go two to a ``bigint``, as each
        aggregate costs about as much as the next however small its values.
        """
        wide = [expression for expression, kind in numbers.items() if kind == "int8"]
        narrow = [expression for expression, kind in numbers.items() if kind == "int4"]
        first_length = len(narrow)
        narrow += [f"octet_length({expression})" for expression in texts]
        if len(narrow) % 2:
            narrow.append("0")
        aggregates = ["count(*)"]
        aggregates += [f"string_agg(int8send({expression}), ''::bytea)" for expression in wide]
        aggregates += [
            f"string_agg(int8send((({high})::int8 << 32) | (({low})::int8 & 4294967295)), "
            "''::bytea)"
            for high, low in zip(narrow[::2], narrow[1::2], strict=True)
        ]
        aggregates += [
            f"string_agg({'textsend' if kind == 'text' else ''}({expression}), ''::bytea)"
            for expression, kind in texts.items()
        ]
        # No ORDER BY: sorting on the server costs more than the whole read, and the rows
        # mostly come in order already (they were appended in order); all the columns come
        # in one same order, which ``seq`` tells, so they are put in order here.
        query = f"SELECT {', '.join(aggregates)} FROM {table} WHERE {where}"
        with self._db.cursor(binary=True) as cursor:
            row = cursor.execute(query, params).fetchone()
        assert row is not None
        n = int(row[0])
        values = iter(row[1:])
        what = f"{table}.{', '.join([*numbers, *texts])}"
        out = _Rows(n, {}, {})
        for expression in wide:
            out.numbers[expression] = ints(next(values), ">i8", n, what)
        unpacked: list[_Ints] = []
        for _ in range(len(narrow) // 2):
            packed = ints(next(values), ">i8", n, what)
            unpacked += [
                packed >> 32,
                (packed & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64),
            ]
        for expression, value in zip(narrow, unpacked, strict=False):
            if expression in numbers:
                out.numbers[expression] = value
        for k, (expression, kind) in enumerate(texts.items()):
            lengths = unpacked[first_length + k]
            out.texts[expression] = strings(lengths, next(values), what, binary=kind == "bytea")
        seq = next(iter(out.numbers.values()))
        if n > 1 and (np.diff(seq) <= 0).any():
            order = np.argsort(seq, kind="stable")
            out.numbers.update({key: value[order] for key, value in out.numbers.items()})
            out.texts.update({key: value.take(pa.array(order)) for key, value in out.texts.items()})
        return out

    def _scan(
        self, where: str, params: Sequence[object], names: Names, *, hashes: bool = False
    ) -> _Scan:
        """Records matching ``where``, in sequence order, with refs still entry numbers."""
        numbers = {
            "seq": "int8",
            "subject": "int8",
            "type": "int4",
            "occurred_at - DATE '1970-01-01'": "int4",
            "recorded_at - DATE '1970-01-01'": "int4",
            "amount": "int8",
            "coalesce(ref, 0)": "int8",
        }
        texts = {"id": "text"}
        if hashes:
            numbers["link"] = "int8"
            texts["hash"] = "bytea"
        rows = self._read("records", numbers, texts, where, params)
        column = rows.numbers
        table = pa.Table.from_arrays(
            [
                rows.texts["id"],
                names.subject(column["subject"]),
                names.type(column["type"]),
                _dates(column["occurred_at - DATE '1970-01-01'"]),
                _dates(column["recorded_at - DATE '1970-01-01'"]),
                pa.array(column["amount"], pa.int64()),
                pa.nulls(rows.n, pa.string()),
            ],
            schema=RECORDS_SCHEMA,
        )
        return _Scan(
            column["seq"],
            table,
            column["coalesce(ref, 0)"],
            rows.texts.get("hash"),
            column.get("link"),
        )

    def _ids_of(self, refs: _Ints, seq: _Ints, ids: pa.Array) -> pa.Array:
        """The record ids of entries ``refs`` (0 for none, which stays null): looked up
        among the records ``seq``/``ids`` first, then in the ledger."""
        if not refs.any():
            return pa.nulls(len(refs), pa.string())
        position = np.clip(np.searchsorted(seq, refs), 0, len(seq) - 1)
        here = seq[position] == refs
        out = pc.if_else(pa.array(here), ids.take(pa.array(position)), pa.scalar(None, pa.string()))
        elsewhere = ~here & (refs != 0)
        if elsewhere.any():
            targets = np.unique(refs[elsewhere])
            found = self._read(
                "records",
                {"seq": "int8"},
                {"id": "text"},
                "seq IN (SELECT unnest(%s::int8[]))",
                (targets.tolist(),),
            )
            if found.n:
                at = np.clip(np.searchsorted(found.numbers["seq"], refs), 0, found.n - 1)
                there = elsewhere & (found.numbers["seq"][at] == refs)
                out = pc.if_else(pa.array(there), found.texts["id"].take(pa.array(at)), out)
        result: pa.Array = out.cast(pa.string())
        return result

    def _names(self) -> Names:
        """All subject codes and type names, for reading records."""
        rows = self._read("subjects", {"seq": "int8"}, {"code": "text"})
        return Names(rows.numbers["seq"], rows.texts["code"], self._type_names())

    def _type_names(self) -> pa.Array:
        rows = self._db.execute("SELECT code, name FROM types").fetchall()
        size = max((code for code, _ in rows), default=0) + 1
        names: list[str | None] = [None] * size
        for code, name in rows:
            names[code] = name
        return pa.array(names, pa.string())

    def _entries(self, lo: int, hi: int, names: Names) -> Entries:
        """Entries lo <= seq < hi of both tables, in sequence order, with payloads."""
        where = "seq >= %s AND seq < %s"
        scan = self._scan(where, (lo, hi), names, hashes=True)
        ids = _array(scan.table.column("id"))
        named = self._ids_of(scan.refs, scan.seq, ids)
        records = _with_refs(scan.table, named)
        subjects = self._read(
            "subjects",
            {"seq": "int8", "link": "int8"},
            {"code": "text", "kind": "text", "hash": "bytea"},
            where,
            (lo, hi),
        )
        subject_seq = subjects.numbers["seq"]
        seq = np.concatenate([scan.seq, subject_seq])
        payloads: list[bytes | None] = [
            *record_payloads(scan.seq, records),
            *subject_payloads(
                subject_seq,
                pa.table({"code": subjects.texts["code"], "kind": subjects.texts["kind"]}),
            ),
        ]
        # a stored ref naming no record reads as none: a changed field all the same
        refs = pa.array(scan.refs, pa.int64(), mask=scan.refs == 0)
        for i in np.flatnonzero(dangling(refs, named)):
            payloads[int(i)] = None
        keys = [*ids.to_pylist(), *subjects.texts["code"].to_pylist()]
        kinds = ["record"] * len(scan.seq) + ["subject"] * len(subject_seq)
        record_hashes = scan.hashes.to_pylist() if scan.hashes is not None else []
        digests = [*record_hashes, *subjects.texts["hash"].to_pylist()]
        record_links = scan.links if scan.links is not None else np.zeros(0, np.int64)
        all_links = np.concatenate([record_links, subjects.numbers["link"]])
        order = np.argsort(seq, kind="stable")
        return Entries(
            seq[order].tolist(),
            [payloads[i] for i in order],
            [keys[i] for i in order],
            [kinds[i] for i in order],
            [digests[i] for i in order],
            all_links[order].tolist(),
        )

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql).fetchall())

    def _sources_of(self, seqs: npt.NDArray[np.int64]) -> list[str | None]:
        # one statement; the exclusion constraint's index on the ranges finds each entry
        rows = self._db.execute(
            "SELECT s.seq, b.source FROM unnest(%s::bigint[]) AS s (seq) JOIN batches AS b "
            "ON int8range(b.first_seq, b.last_seq, '[]') @> s.seq",
            ([int(x) for x in seqs],),
        ).fetchall()
        found = {int(seq): str(source) for seq, source in rows}
        return [found.get(int(seq)) for seq in seqs]

    def _head(self) -> tuple[int, bytes]:
        """The next sequence number and the hash of the last entry."""
        return next_entry(lambda sql: self._db.execute(sql).fetchone())

    def _last_seq(self) -> int:
        row = self._db.execute(
            "SELECT greatest(coalesce((SELECT max(seq) FROM records), 0), "
            "coalesce((SELECT max(seq) FROM subjects), 0))"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _logged_last(self) -> int:
        row = self._db.execute("SELECT coalesce(max(last_seq), 0) FROM batches").fetchone()
        assert row is not None
        return int(row[0])

    def _log(self, source: str, first: int, last: int, head: bytes) -> None:
        self._db.execute(
            "INSERT INTO batches (batch, source, first_seq, last_seq, head, appended_at) "
            "SELECT coalesce(max(batch), 0) + 1, %s, %s, %s, %s, "
            "date_trunc('second', clock_timestamp()) FROM batches",
            (source, first, last, head),
        )

    def _type_codes(self, names: pa.ChunkedArray) -> _Ints:
        """The codes of record types, registering the types not seen before."""
        known = dict(self._db.execute("SELECT name, code FROM types").fetchall())
        new = [name for name in pc.unique(names).to_pylist() if name not in known]
        if new:
            start = max(known.values(), default=0) + 1
            added = list(zip(new, range(start, start + len(new)), strict=True))
            with self._db.cursor() as cursor:
                cursor.executemany("INSERT INTO types (name, code) VALUES (%s, %s)", added)
            known.update(added)
        position = pc.index_in(names, value_set=pa.array(list(known), pa.string()))
        codes = np.array(list(known.values()), dtype=np.int64)
        out: _Ints = codes[_ints(position)]
        return out


class _NoConnection(Exception):
    """A reader could not connect."""


@dataclass(frozen=True)
class _Scan:
    """Records read: their entry numbers, the canonical table (refs not yet filled in),
    the entry numbers of their refs (0 for none) and, when asked for, hashes and links."""

    seq: _Ints
    table: pa.Table
    refs: _Ints
    hashes: pa.Array | None = None
    links: _Ints | None = None


_RECORDS_OF = (
    "SELECT r.id, t.name, r.occurred_at, r.recorded_at, r.amount, e.id "
    "FROM subjects AS s JOIN records AS r ON r.subject = s.seq "
    "JOIN types AS t ON t.code = r.type LEFT JOIN records AS e ON e.seq = r.ref "
    "WHERE s.code = %s ORDER BY r.seq"
)


def _connect(target: _Target) -> psycopg.Connection[Any]:
    try:
        db = psycopg.connect(
            target.conninfo,
            autocommit=True,
            client_encoding="UTF8",
            fallback_application_name="socialcredit",
        )
    except psycopg.Error as exc:
        raise LedgerError(f"cannot connect to {target}: {exc}") from None
    try:
        db.execute("SET synchronous_commit TO on")
        db.execute(f"SET search_path TO {_quoted(target.schema)}, pg_catalog")
        db.adapters.register_dumper(_TextArray, _TextArrayDumper)
    except BaseException:
        db.close()
        raise
    return db


def _schema_oid(db: psycopg.Connection[Any], schema: str) -> int | None:
    row = db.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return None if row is None else int(row[0])


def int4(oid: int) -> int:
    """An object id (unsigned, 32 bits) as the signed ``int4`` an advisory lock's key
    takes."""
    return oid - (1 << 32) if oid >= 1 << 31 else oid


def _quoted(name: str) -> str:
    """An identifier in double quotes, as SQL spells any name."""
    return '"' + name.replace('"', '""') + '"'


def _with_refs(table: pa.Table, refs: pa.Array) -> pa.Table:
    return table.set_column(6, RECORDS_SCHEMA.field("ref"), refs)


def _digests(hashes: list[bytes]) -> npt.NDArray[np.void]:
    return np.frombuffer(b"".join(hashes), dtype="V32")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _days(dates: pa.ChunkedArray) -> _Ints:
    return np.asarray(pc.cast(dates, pa.int32()).to_numpy(), dtype=np.int64)


def _dates(days: _Ints) -> pa.Array:
    return pa.array(days.astype(np.int32)).cast(pa.date32())


def _array(values: pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)


def _ints(values: pa.Array | pa.ChunkedArray) -> _Ints:
    return np.asarray(values.to_numpy(), dtype=np.int64)

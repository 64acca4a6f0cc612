"""The service's own tables, beside the ledger: one small connection for SQLite or PostgreSQL.

:class:`ServiceDB` runs plain SQL written with ``?`` placeholders on either store; its
methods are safe to call from several threads (one lock per connection). :func:`upgrade`
applies the migrations of :mod:`socialcredit.store.migrations`; :func:`open_service_db`
refuses a database whose tables are behind the code, naming the command that fixes it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from socialcredit.errors import LedgerError
from socialcredit.store.backends import create_ledger, is_postgres_url, open_ledger, printable
from socialcredit.store.migrations import MIGRATIONS, latest
from socialcredit.store.postgres_binary import SIGNATURE, TRAILER, copy_rows, fixed, varying
from socialcredit.store.sqlite import CACHE_KIB

__all__ = ["ServiceDB", "Upgrade", "open_service_db", "upgrade"]

Row = tuple[Any, ...]

_BUSY_MS = 10000
ANALYZE_FRACTION = 0.2  # rows changed, against the rows known, that call for ANALYZE

log = logging.getLogger(__name__)


class ServiceDB:
    """A connection to the service tables of one database (``sqlite`` or ``postgres``)."""

    def __init__(self, where: str, dialect: str, connection: Any) -> None:
        self.where = where
        self.dialect = dialect
        self._db = connection
        self._lock = threading.RLock()
        self._depth = 0
        self.cache: dict[str, Any] = {}  # what use cases remember of this database
        self.writes = 0  # statements and transactions that may have written, through here
        self._lockfile: BinaryIO | None = None
        self._url: str | None = None  # PostgreSQL: where to connect again
        self._schema_key: int | None = None  # PostgreSQL: the schema, as a lock's key

    @classmethod
    def connect(cls, target: str | Path) -> ServiceDB:
        """Connect to the database of the ledger at ``target`` (a file or a URL)."""
        if is_postgres_url(target):
            return cls._postgres(str(target))
        path = Path(target)
        if not path.is_file():
            raise LedgerError(
                f"no ledger at {path}: run `socialcredit db upgrade --database {path}` to create it"
            )
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            db.execute("PRAGMA synchronous = FULL")
            # a REPLACE deletes the row it replaces: with recursive triggers, the delete
            # triggers of the append-only tables refuse it, as they refuse a DELETE
            db.execute("PRAGMA recursive_triggers = ON")
            # the ledger's page cache: with SQLite's default of 2 MB, the service's indexes
            # (tens of MB after a million records) were read again from the file on every
            # batch, and writing a batch's notices took twice as long
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open {path}: {exc}") from None
        return cls(str(path), "sqlite", db)

    @classmethod
    def _postgres(cls, url: str) -> ServiceDB:
        import psycopg

        from socialcredit.store.postgres import _connect, _target

        target = _target(url, None)
        db = _connect(target)
        try:
            row = db.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (target.schema,)
            ).fetchone()
        except psycopg.Error as exc:
            db.close()
            raise LedgerError(f"cannot read {target}: {exc}") from None
        if row is None:
            db.close()
            raise LedgerError(
                f"no ledger at {target}: run `socialcredit db upgrade --database URL` to create it"
            )
        made = cls(str(target), "postgres", db)
        made._url = url
        return made

    def _live(self) -> Any:
        """The connection, connected again first when PostgreSQL's was lost (between
        transactions: one that breaks in the middle is the caller's error)."""
        if self._url is not None and self._depth == 0 and (self._db.closed or self._db.broken):
            from socialcredit.store.postgres import _connect, _target

            self._db = _connect(_target(self._url, None))
        return self._db

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
            if self._lockfile is not None:
                self._lockfile.close()

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    def one_of(
        self, column: str, values: Sequence[str] | Sequence[int], type: str = "text"
    ) -> tuple[str, tuple[Any, ...]]:
        """A condition that ``column`` is one of ``values`` (of PostgreSQL's ``type``), and
        its one parameter: the values as one array, read by a subquery the planner joins
        (an index lookup per value, or one pass over a hash of them), never a list of
        placeholders that PostgreSQL compares row by row -- 5,000 comparisons a row when
        its statistics of the table are out of date."""
        if self.dialect == "sqlite":
            return f"{column} IN (SELECT value FROM json_each(?))", (json.dumps(list(values)),)
        return f"{column} IN (SELECT unnest(?::{type}[]))", (list(values),)

    def take_turn(self, lock_class: int) -> None:
        """Inside a write transaction: wait until no other transaction of these tables
        holds the turn of ``lock_class``, and hold it until this one ends (PostgreSQL: a
        transaction-scoped advisory lock keyed by the class and the schema). SQLite's
        write transactions already take turns: nothing to do."""
        if self.dialect != "postgres":
            return
        assert self._depth, "take_turn belongs inside a transaction"
        if self._schema_key is None:
            from socialcredit.store.postgres import int4

            row = self.one("SELECT current_schema()::regnamespace::oid::bigint")
            assert row is not None
            self._schema_key = int4(int(row[0]))
        self.execute(
            "SELECT pg_advisory_xact_lock(?::int4, ?::int4)", (lock_class, self._schema_key)
        )

    def hold_ledger(self) -> None:
        """Inside a write transaction: wait until no writer of the ledger in this database
        is writing, and keep every other one waiting until this transaction ends
        (PostgreSQL: the advisory lock that the ledger's writers take; on SQLite a write
        transaction of the file already does)."""
        if self.dialect != "postgres":
            return
        from socialcredit.store.postgres import WRITERS_LOCK

        self.take_turn(WRITERS_LOCK)

    def keep_statistics(self) -> list[str]:
        """PostgreSQL: ``ANALYZE`` each service table whose rows changed by a fifth or more
        (and by at least ``ANALYZE_AT_LEAST`` rows) since its statistics were taken, and
        ``VACUUM`` those that hold as many dead rows (rows changed or deleted: webhook
        deliveries once done, members leaving a list), as autovacuum does; the tables
        analyzed. A server without autovacuum otherwise keeps the statistics the tables
        had when they were empty, and plans joins over them as a scan of one table for
        each row of the other (the dispatcher's read of the pending notices ran for more
        than ten minutes after a million records were sent); and it keeps every dead row
        in the indexes, which each read of the pending rows went through again (5 s a
        round, when the outbox had 300,000 delivered rows). Nothing on SQLite, or inside a
        transaction; a failure is only logged."""
        if self.dialect != "postgres":
            return []
        import psycopg

        from socialcredit.store.postgres import ANALYZE_AT_LEAST

        with self._lock:
            if self._depth:
                return []
            try:
                rows = (
                    self._live()
                    .execute(
                        "SELECT s.relname, s.n_mod_since_analyze, c.reltuples, s.n_dead_tup "
                        "FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid "
                        "WHERE s.schemaname = current_schema() AND s.relname LIKE 'svc%'"
                    )
                    .fetchall()
                )

                def due(count: int, known: float) -> bool:
                    return count >= ANALYZE_AT_LEAST and (
                        known < 0 or count >= ANALYZE_FRACTION * known
                    )

                stale = sorted(str(row[0]) for row in rows if due(int(row[1]), float(row[2])))
                dead = sorted(str(row[0]) for row in rows if due(int(row[3]), float(row[2])))
                for table in dead:  # VACUUM runs alone, one table at a time
                    self._live().execute(f'VACUUM (ANALYZE) "{table}"')
                rest = [table for table in stale if table not in dead]
                if rest:
                    self._live().execute("ANALYZE " + ", ".join(f'"{t}"' for t in rest))
                stale = sorted({*stale, *dead})
            except psycopg.Error:
                log.warning("ANALYZE of the service tables failed", exc_info=True)
                return []
        return stale

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        with self._lock:
            rows = self._live().execute(self._sql(sql), tuple(params)).fetchall()
            return [tuple(r) for r in rows]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        with self._lock:
            row = self._live().execute(self._sql(sql), tuple(params)).fetchone()
            return None if row is None else tuple(row)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        with self._lock:
            self.writes += 1
            cursor = self._live().execute(self._sql(sql), tuple(params))
            return int(cursor.rowcount)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row."""
        if not rows:
            return
        with self._lock:
            self.writes += 1
            if self.dialect == "sqlite":
                self._db.executemany(sql, [tuple(r) for r in rows])
            else:
                with self._live().cursor() as cursor:
                    cursor.executemany(self._sql(sql), [tuple(r) for r in rows])

    def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows into ``table``: PostgreSQL's COPY, SQLite's prepared insert."""
        names = ", ".join(columns)
        with self._lock:
            self.writes += 1
            if self.dialect == "sqlite":
                marks = ", ".join("?" * len(columns))
                self._db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            else:
                with (
                    self._live().cursor() as cursor,
                    cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)

    def copy_table(self, table: str, rows: pa.Table) -> None:
        """Insert the rows of an Arrow table (text and ``bigint`` columns, named as the
        table's) into ``table``: PostgreSQL's binary COPY laid out column by column, with
        no Python object per value; SQLite's prepared insert."""
        if not rows.num_rows:
            return
        if self.dialect == "sqlite":
            columns = [rows[name].to_pylist() for name in rows.column_names]
            self.copy(table, rows.column_names, zip(*columns, strict=True))
            return
        laid = []
        for column in rows.columns:
            if pa.types.is_integer(column.type):
                valid = None
                if column.null_count:
                    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), np.bool_)
                values = column.cast(pa.int64()).fill_null(0).to_numpy()  # refuses overflow
                laid.append(fixed(values, ">i8", valid))
            else:
                laid.append(varying(column))
        data = SIGNATURE + copy_rows(laid, rows.num_rows) + TRAILER
        names = ", ".join(rows.column_names)
        with self._lock:
            self.writes += 1
            with (
                self._live().cursor() as cursor,
                cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(data)

    def copy_new(self, table: str, rows: pa.Table, key: Sequence[str]) -> int:
        """Insert the rows of ``rows`` (as :meth:`copy_table`) whose ``key`` is not in
        ``table`` yet, inside a transaction; how many were new. PostgreSQL copies them all
        at once under a savepoint, and only if one of them is there already (another
        writer's, committed first) copies them to a temporary table and inserts from it
        those that are not; SQLite inserts each unless it is there."""
        if not rows.num_rows:
            return 0
        assert self._depth, "copy_new belongs inside a transaction"
        names = ", ".join(rows.column_names)
        skip = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        if self.dialect == "sqlite":
            marks = ", ".join("?" * rows.num_columns)
            columns = [column.to_pylist() for column in rows.columns]
            with self._lock:
                self.writes += 1
                before = self._db.total_changes
                self._db.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks}) {skip}",
                    zip(*columns, strict=True),
                )
                return int(self._db.total_changes - before)
        from psycopg.errors import UniqueViolation

        with self._lock:
            try:
                with self._db.transaction():  # nested: a savepoint
                    self.copy_table(table, rows)
                return int(rows.num_rows)
            except UniqueViolation:
                pass
            staging = f"{table}_new"
            self.execute(f"DROP TABLE IF EXISTS pg_temp.{staging}")
            self.execute(
                f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {names} "
                f"FROM {table} WITH NO DATA"
            )
            self.copy_table(staging, rows)
            return self.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {skip}"
            )

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT into a table with an ``id`` key; the new row's id."""
        self.writes += 1
        row = self.one(sql + " RETURNING id", params)
        assert row is not None
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[ServiceDB]:
        """One write transaction, committed when the block ends normally. Other threads
        wait for it; a nested block joins the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            db = self._live()
            self._depth = 1
            try:
                if self.dialect == "sqlite":
                    yield from self._sqlite_transaction()
                else:
                    with db.transaction():
                        yield self
            finally:
                self._depth = 0
                self.writes += 1

    @contextmanager
    def reading(self) -> Iterator[ServiceDB]:
        """One read transaction: every query in the block sees the same committed state
        (SQLite: a deferred transaction; PostgreSQL: repeatable read, read only)."""
        with self._lock:
            if self.dialect == "sqlite":
                self._db.execute("BEGIN")
                try:
                    yield self
                finally:
                    self._db.execute("COMMIT")
            else:
                with self._db.transaction():
                    self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield self

    def _sqlite_transaction(self) -> Iterator[ServiceDB]:
        with self._writers():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _writers(self) -> Iterator[None]:
        """Write transactions of the service tables take turns across processes by a lock
        on a file beside the database (``-svclock``), on which a waiting process sleeps
        until the lock is free: SQLite's own wait for its write lock polls with growing
        sleeps, which under a steady stream of small commits from several processes (the
        access log of each server process) lets one of them wait for seconds."""
        if self._lockfile is None:
            try:
                self._lockfile = open(f"{self.where}-svclock", "a+b")  # noqa: SIM115
            except OSError:  # a read-only place: SQLite's own lock alone
                yield
                return
        fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_UN)

    def version(self) -> int:
        """The version of the service tables (0: none yet)."""
        with self._lock:
            if not self._has_table("svc_migrations"):
                return 0
            row = self.one("SELECT max(version) FROM svc_migrations")
            return int(row[0]) if row and row[0] is not None else 0

    def _has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            found = self.one(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        else:
            found = self.one(
                "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?",
                (name,),
            )
        return found is not None


class Upgrade:
    """What :func:`upgrade` did: whether it created the ledger, and the versions applied."""

    def __init__(self, created: bool, before: int, applied: list[int]) -> None:
        self.created = created
        self.before = before
        self.applied = applied

    @property
    def after(self) -> int:
        """The version of the tables now."""
        return self.applied[-1] if self.applied else self.before


def upgrade(target: str | Path, *, to: int | None = None) -> Upgrade:
    """Bring the database at ``target`` to the latest version (or to version ``to``):
    create the ledger when there is none, then apply each missing migration in its own
    transaction."""
    created = False
    try:
        open_ledger(target).close()
    except LedgerError:
        if is_postgres_url(target) or not Path(target).exists():
            try:
                create_ledger(target).close()
                created = True
            except LedgerError:
                raise
        else:
            raise
    db = ServiceDB.connect(target)
    try:
        before = db.version()
        if before > latest():
            raise LedgerError(
                f"{printable(target)} has service tables of version {before}; this version "
                f"of socialcredit knows versions up to {latest()}"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= before or (to is not None and migration.version > to):
                continue
            with db.transaction():
                if migration.version == 1:
                    db.execute(
                        "CREATE TABLE svc_migrations (version integer PRIMARY KEY, "
                        "name text NOT NULL, applied_at text NOT NULL)"
                    )
                for statement in migration.statements(db.dialect):
                    db.execute(statement)
                if before:
                    for statement in migration.upgrading:
                        db.execute(statement, (_now(),))
                db.execute(
                    "INSERT INTO svc_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now()),
                )
            applied.append(migration.version)
        return Upgrade(created, before, applied)
    finally:
        db.close()


def open_service_db(target: str | Path) -> ServiceDB:
    """Connect to the service tables at ``target``, which must be at the latest version."""
    db = ServiceDB.connect(target)
    version = db.version()
    if version != latest():
        db.close()
        raise LedgerError(
            f"the service tables of {printable(target)} are at version {version}, this "
            f"version of socialcredit needs {latest()}: run `socialcredit db upgrade "
            f"--database {printable(target)}` first"
        )
    return db


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

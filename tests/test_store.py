"""Specification of the ledger: socialcredit.store.base, .chain, .checks, .sqlite and
.postgres.

The ledger's tests run on both stores: the ``store`` fixture is a place for one test's
ledger -- a file for SQLite, a schema of its own in the test database for PostgreSQL,
dropped afterwards -- with the raw access an intruder would have. The PostgreSQL server is
``$SOCIALCREDIT_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
when it cannot be reached its tests are skipped, or fail under CI (``CI=true``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import socialcredit.store
from socialcredit.errors import InvalidInput, LedgerError
from socialcredit.ids import ric, uscc
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.store import (
    Ledger,
    Loaded,
    Origin,
    SqliteLedger,
    check_batch,
    create_ledger,
    open_ledger,
    parse_records,
    parse_subjects,
)
from socialcredit.store.chain import GENESIS, chain, link_of, record_payloads, subject_payloads

ORG = "91110000802100433B"  # a standard valid USCC
PERSON = "11010519491231002X"  # a standard valid resident identity number
HEADER = "id,subject,type,occurred_at,recorded_at,amount,ref"
POSTGRES = os.environ.get("SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def records_csv(*lines: str, source: str = "batch.csv") -> Loaded:
    return parse_records(("\n".join([HEADER, *lines]) + "\n").encode(), source=source)


def subjects_table(*pairs: tuple[str, str]) -> pa.Table:
    return pa.table({"code": [c for c, _ in pairs], "kind": [k for _, k in pairs]})


def append(ledger: Ledger, loaded: Loaded) -> socialcredit.store.AppendResult:
    return ledger.append(loaded)


# -- the stores --------------------------------------------------------------------------


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip a test that needs PostgreSQL, or fail it under CI, where it must run."""
    if under_ci():
        pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests must run)")
    pytest.skip(reason)


_reachable: dict[str, str | None] = {}


def postgres_url() -> str:
    """The test database's URL, once it answered; else skip or fail (see ``unavailable``)."""
    if POSTGRES not in _reachable:
        try:
            import psycopg

            psycopg.connect(POSTGRES, connect_timeout=5).close()
            _reachable[POSTGRES] = None
        except Exception as exc:  # psycopg missing, or the server not there
            _reachable[POSTGRES] = f"PostgreSQL at {POSTGRES} is not reachable: {exc}"
    reason = _reachable[POSTGRES]
    if reason is not None:
        unavailable(reason)
    return POSTGRES


class Store:
    """Where one test's ledger lives, and raw access to it as an intruder would have."""

    backend: str
    module: str
    target: str | Path
    refused: type[Exception]  # what the database raises for a refused change

    def create(self) -> Ledger:
        return create_ledger(self.target)

    def open(self) -> Ledger:
        return open_ledger(self.target)

    def occupy(self) -> None:
        """Make the place exist without a ledger in it."""
        raise NotImplementedError

    def not_a_ledger(self) -> None:
        """Make the place a database that is not a ledger."""
        raise NotImplementedError

    def execute(self, *statements: str) -> None:
        """Run statements on a connection of its own, committed together."""
        raise NotImplementedError

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """The rows of one query, on a connection of its own."""
        raise NotImplementedError

    def tamper(self, *statements: str) -> None:
        """Change the ledger as an intruder with write access would: triggers first."""
        raise NotImplementedError

    def blob(self, data: bytes) -> str:
        """A literal of these bytes in the store's SQL."""
        raise NotImplementedError

    def another(self) -> Store:
        """A new, empty place of the same store."""
        raise NotImplementedError

    def drop(self) -> None:
        """Remove the place and everything in it."""


class SqliteStore(Store):
    backend = "sqlite"
    module = "socialcredit.store.sqlite"
    refused = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self.target = self.path = path

    def occupy(self) -> None:
        self.path.write_bytes(b"")

    def not_a_ledger(self) -> None:
        self.execute("CREATE TABLE things (x)")

    def execute(self, *statements: str) -> None:
        db = sqlite3.connect(self.path)
        try:
            for statement in statements:
                db.execute(statement)
            db.commit()
        finally:
            db.close()

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.path)
        try:
            return db.execute(statement).fetchall()
        finally:
            db.close()

    def tamper(self, *statements: str) -> None:
        db = sqlite3.connect(self.path)
        triggers = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        db.close()
        self.execute(*(f"DROP TRIGGER {name}" for (name,) in triggers), *statements)

    def blob(self, data: bytes) -> str:
        return f"x'{data.hex()}'"

    def another(self) -> Store:
        return SqliteStore(self.path.with_name(f"{uuid.uuid4().hex[:12]}.db"))


class PostgresStore(Store):
    backend = "postgres"
    module = "socialcredit.store.postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.schema = f"test_{uuid.uuid4().hex[:16]}"
        self.target = f"{url}?schema={self.schema}"
        self.refused = psycopg.IntegrityError

    def connect(self) -> Any:
        import psycopg

        db = psycopg.connect(self.url, autocommit=True)
        db.execute(f'SET search_path TO "{self.schema}"')
        return db

    def occupy(self) -> None:
        self.execute(f'CREATE SCHEMA "{self.schema}"')

    def not_a_ledger(self) -> None:
        self.execute(f'CREATE SCHEMA "{self.schema}"', "CREATE TABLE things (x int)")

    def execute(self, *statements: str) -> None:
        with self.connect() as db, db.transaction():
            for statement in statements:
                db.execute(statement)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with self.connect() as db:
            return [tuple(row) for row in db.execute(statement).fetchall()]

    def tamper(self, *statements: str) -> None:
        with self.connect() as db:
            triggers = db.execute(
                "SELECT t.tgname, c.relname FROM pg_trigger AS t "
                "JOIN pg_class AS c ON c.oid = t.tgrelid "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND NOT t.tgisinternal",
                (self.schema,),
            ).fetchall()
        self.execute(*(f"DROP TRIGGER {name} ON {table}" for name, table in triggers), *statements)

    def blob(self, data: bytes) -> str:
        return f"'\\x{data.hex()}'::bytea"

    def another(self) -> Store:
        return PostgresStore(self.url)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@contextmanager
def place(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A place for one ledger of ``backend``, removed afterwards."""
    store: Store = (
        SqliteStore(tmp_path / "ledger.db")
        if backend == "sqlite"
        else PostgresStore(postgres_url())
    )
    try:
        yield store
    finally:
        store.drop()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with place(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Store]:
    """A place in the PostgreSQL test database, for the tests of that store alone."""
    with place("postgres", tmp_path) as made:
        yield made


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A place for an SQLite ledger, for the tests of that store alone."""
    return tmp_path / "ledger.db"


def fill(ledger: Ledger) -> Ledger:
    """Two subjects and three records (entries 1-5)."""
    ledger.add_subjects(subjects_table((ORG, "organization"), (PERSON, "person")))
    append(
        ledger,
        records_csv(
            f"r1,{ORG},court.unfulfilled,2024-01-10,,5000,",
            f"r2,{PERSON},traffic.red_light,2024-02-01,2024-02-03,,",
            f"r3,{PERSON},charity.donation,2024-03-01,,300,",
            source="first.csv",
        ),
    )
    return ledger


@pytest.fixture
def ledger(store: Store) -> Iterator[Ledger]:
    """A ledger with two subjects and three records (entries 1-5)."""
    with store.create() as opened:
        yield fill(opened)


def snapshot(ledger: Ledger) -> tuple[object, ...]:
    """Everything a write could change."""
    return (ledger.records(), ledger.subjects(), ledger.verify(), ledger.batches())


def test_public_names() -> None:
    assert sorted(socialcredit.store.__all__) == [
        "AppendResult",
        "Batch",
        "BatchCheck",
        "FileInputs",
        "Ledger",
        "Loaded",
        "Origin",
        "PostgresLedger",
        "SqliteLedger",
        "SubjectsAdded",
        "SubjectsCheck",
        "VerifyReport",
        "check_batch",
        "check_rows",
        "check_subjects",
        "create_ledger",
        "load_records",
        "load_subjects",
        "open_ledger",
        "parse_records",
        "parse_subjects",
        "read_inputs",
        "read_records",
        "read_subjects",
    ]


# -- the hash encoding -------------------------------------------------------------------


def test_payload_encoding_is_the_documented_one() -> None:
    table = pa.Table.from_pylist(
        [
            {
                "id": "r1",
                "subject": ORG,
                "type": "traffic.red_light",
                "occurred_at": dt.date(2024, 3, 1),
                "recorded_at": dt.date(2024, 3, 1),
                "amount": 0,
                "ref": None,
            }
        ],
        schema=RECORDS_SCHEMA,
    )
    assert record_payloads(np.array([7]), table) == [
        b"1:7,6:record,2:r1,18:91110000802100433B,17:traffic.red_light,10:2024-03-01,"
        b"10:2024-03-01,1:0,~"
    ]
    with_ref = table.set_column(6, "ref", pa.array(["r\u00e9"], pa.string()))
    assert record_payloads(np.array([12]), with_ref)[0].endswith(b",1:0,3:r\xc3\xa9,")
    assert subject_payloads(np.array([1]), subjects_table((PERSON, "person"))) == [
        b"1:1,7:subject,18:11010519491231002X,6:person,"
    ]


def test_chain_is_sha256_over_previous_hash_and_payload() -> None:
    payloads = [b"1:1,7:subject,1:A,6:person,", b"1:2,7:subject,1:B,6:person,"]
    first = hashlib.sha256(GENESIS + payloads[0]).digest()
    second = hashlib.sha256(first + payloads[1]).digest()
    assert chain(GENESIS, payloads) == [first, second]


def test_the_chain_of_a_fresh_ledger_is_reproducible(ledger: Ledger) -> None:
    payloads = [
        *subject_payloads(np.array([1, 2]), ledger.subjects()),
        *record_payloads(np.array([3, 4, 5]), ledger.records()),
    ]
    assert ledger.verify().head == chain(GENESIS, payloads)[-1].hex()


# -- opening -----------------------------------------------------------------------------


def test_create_refuses_an_existing_place(store: Store) -> None:
    store.occupy()
    with pytest.raises(LedgerError, match="already exists"):
        store.create()


def test_open_a_missing_ledger(store: Store) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        store.open()


def test_open_a_file_that_is_not_a_database(path: Path) -> None:
    path.write_text("id,subject\n")
    with pytest.raises(LedgerError, match="not an SQLite database"):
        SqliteLedger.open(path)


def test_open_a_database_that_is_not_a_ledger(store: Store) -> None:
    store.not_a_ledger()
    with pytest.raises(LedgerError, match="not a socialcredit ledger"):
        store.open()


def test_open_a_ledger_of_another_schema_version(ledger: Ledger, store: Store) -> None:
    ledger.close()
    store.tamper("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    version = importlib.import_module(store.module).SCHEMA_VERSION
    with pytest.raises(LedgerError, match=rf"schema version 99.*reads schema version {version}"):
        store.open()


def test_the_file_is_durable_wal(path: Path) -> None:
    fill(SqliteLedger.create(path)).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    with SqliteLedger.open(path) as reopened:
        assert reopened._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert reopened.records().num_rows == 3


def test_postgres_commits_durably(pg: Store) -> None:
    fill(pg.create()).close()
    with pg.open() as reopened:
        db = reopened._db  # type: ignore[attr-defined]
        assert db.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert reopened.records().num_rows == 3


def test_postgres_analyzes_after_a_bulk_batch(pg: Store) -> None:
    # a server without autovacuum would otherwise plan by-subject reads as full scans
    from socialcredit.store.postgres import ANALYZE_AT_LEAST

    def statistics(ledger: Ledger) -> float:
        db = ledger._db  # type: ignore[attr-defined]
        row = db.execute("SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass")
        return float(row.fetchone()[0])

    with pg.create() as ledger:
        fill(ledger)  # a small batch: no statistics gathered (-1: never analyzed)
        assert statistics(ledger) == -1
        n = ANALYZE_AT_LEAST
        bulk = pa.table(
            {
                "id": [f"b{i}" for i in range(n)],
                "subject": [PERSON] * n,
                "type": ["traffic.red_light"] * n,
                "occurred_at": pa.array([dt.date(2024, 5, 1)] * n, pa.date32()),
            }
        )
        assert ledger.append(bulk, source="bulk").appended == n
        assert statistics(ledger) == n + 3


def test_an_empty_ledger(store: Store) -> None:
    with store.create() as ledger:
        assert ledger.records().equals(RECORDS_SCHEMA.empty_table())
        assert ledger.subjects().num_rows == 0
        assert ledger.records_of(PERSON).num_rows == 0
        assert ledger.batches() == []
        report = ledger.verify()
        assert report.ok and report.entries_checked == 0
        assert report.head == GENESIS.hex()


def test_create_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="cannot open"):
        SqliteLedger.create(tmp_path / "no" / "such" / "ledger.db")


def test_a_server_that_does_not_answer() -> None:
    if not under_ci():
        pytest.importorskip("psycopg")
    with pytest.raises(LedgerError, match="cannot connect") as caught:
        open_ledger("postgresql://nobody:secret@127.0.0.1:1/none?schema=town&connect_timeout=2")
    assert "postgresql://nobody@127.0.0.1:1/none?schema=town" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_target_picks_the_store(tmp_path: Path) -> None:
    from socialcredit.store.backends import is_postgres_url, printable

    assert is_postgres_url("postgresql://h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("postgresql.ledger")
    assert not is_postgres_url(Path("postgresql://h/db"))
    with create_ledger(tmp_path / "a.ledger") as created:
        assert isinstance(created, SqliteLedger)
    with open_ledger(str(tmp_path / "a.ledger")) as opened:
        assert isinstance(opened, SqliteLedger)
    assert printable("postgresql://me:secret@h:5432/db?schema=x") == (
        "postgresql://me@h:5432/db?schema=x"
    )
    assert printable("postgresql://h/db") == "postgresql://h/db"


def test_the_command_line_takes_a_postgres_url(pg: Store) -> None:
    from typer.testing import CliRunner

    from socialcredit.cli.app import app
    from socialcredit.cli.app import main as _main  # noqa: F401  (registers the commands)

    def run(*args: str, code: int = 0) -> str:
        import socialcredit.cli.ledger_cmds
        import socialcredit.cli.score_cmds  # noqa: F401

        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result.stdout + result.stderr

    url = str(pg.target)
    assert "created ledger" in run("init", url)
    assert "already exists" in run("init", url, code=2)
    run("subjects", "add", ORG, "--kind", "organization", "--ledger", url)
    run(
        "records",
        "add",
        "--id",
        "r1",
        "--subject",
        ORG,
        "--type",
        "court.judgment_unfulfilled",
        "--occurred-at",
        "2025-01-02",
        "--ledger",
        url,
    )
    assert run("ledger", "verify", "--ledger", url).startswith("ok: 2 entries")
    score = run(
        "score", "-s", "court_dishonest_debtors", "--at", "2025-12-31", "--ledger", url, "-f", "csv"
    )
    assert f"{ORG},0,unrated,dishonest_judgment_debtors" in score
    missing = url.replace(pg.schema, pg.schema + "_none")
    assert "does not exist" in run("ledger", "verify", "--ledger", missing, code=2)


def test_a_postgres_url_names_its_schema(pg: Store) -> None:
    from socialcredit.store import PostgresLedger

    assert isinstance(pg.target, str)
    with pg.create() as created:
        assert isinstance(created, PostgresLedger)
        assert created.schema == pg.schema  # type: ignore[attr-defined]
        assert created.where.endswith(f"?schema={pg.schema}")
    with PostgresLedger.open(pg.url, schema=pg.schema) as opened:
        assert opened.verify().ok
    with pytest.raises(ValueError, match="two schemas"):
        PostgresLedger.open(str(pg.target), schema="other")


# -- reading -----------------------------------------------------------------------------


def test_records_come_back_as_appended(ledger: Ledger) -> None:
    more = records_csv(
        f"r4,{ORG},court.fulfilled,2024-04-01,,,r1",
        f"r5,{PERSON},traffic.red_light,2024-04-02,2024-04-09,,",
    )
    append(ledger, more)
    records = ledger.records()
    assert records.schema == RECORDS_SCHEMA
    assert records.column("id").to_pylist() == ["r1", "r2", "r3", "r4", "r5"]
    assert records.slice(3).equals(more.table)
    assert records.column("ref").to_pylist() == [None, None, None, "r1", None]


def test_records_of_one_subject(ledger: Ledger) -> None:
    mine = ledger.records_of(PERSON)
    assert mine.schema == RECORDS_SCHEMA
    assert mine.column("id").to_pylist() == ["r2", "r3"]
    assert mine.column("recorded_at").to_pylist() == [dt.date(2024, 2, 3), dt.date(2024, 3, 1)]
    assert ledger.records_of("nobody").num_rows == 0


def test_subjects_and_kinds(ledger: Ledger) -> None:
    assert ledger.subjects().to_pylist() == [
        {"code": ORG, "kind": "organization"},
        {"code": PERSON, "kind": "person"},
    ]
    assert ledger.kind_of(PERSON) == "person"
    assert ledger.kind_of(ORG) == "organization"
    assert ledger.kind_of("nobody") is None


def test_the_log_of_batches(ledger: Ledger) -> None:
    assert [row[1:4] for row in ledger.batches()] == [("<subjects>", 1, 2), ("first.csv", 3, 5)]


def test_each_record_is_traced_to_the_write_that_appended_it(ledger: Ledger) -> None:
    """Who wrote a record is read from the log of batches, one look-up per write: among
    many writes of one or two records each, and for entries in any order, repeated."""
    for i in range(40):  # writes of 1 and 2 records, each its own batch
        rows = [f"b{i}-{j},{PERSON},traffic.red_light,2024-02-01,,," for j in range(i % 2 + 1)]
        append(ledger, records_csv(*rows, source=f"agency:{i}"))
    batches = ledger.batches()
    assert len(batches) == 42
    want = {f"b{i}-{j}": f"agency:{i}" for i in range(40) for j in range(i % 2 + 1)}
    asked = ["b39-1", "r2", "b0-0", "missing", *want]
    assert ledger.sources(asked) == {"r2": "first.csv", **want}
    seqs = [b.first_seq for b in reversed(batches)] + [b.last_seq for b in batches] + [4]
    assert ledger.sources_of(pa.array(seqs, pa.int64())).to_pylist() == [
        *(b.source for b in reversed(batches)),
        *(b.source for b in batches),
        "first.csv",
    ]
    assert ledger.sources([]) == {}
    with pytest.raises(LedgerError, match="covers entry 999"):
        ledger.sources_of(pa.array([3, 999], pa.int64()))
    # every record's source in ledger order, row for row with records(): the writes'
    # subjects among them count for nothing
    append(ledger, records_csv(f"c1,{PERSON},traffic.red_light,2024-02-01,,,", source="c.csv"))
    other = "91110000600037341L"  # a write that registers a subject among its records
    mixed = records_csv(f"m1,{other},traffic.red_light,2024-02-01,,,", source="m.csv")
    ledger.append(mixed, subjects=subjects_table((other, "organization")))
    ids = ledger.records()["id"].to_pylist()
    traced = dict(zip(ids, ledger.record_sources().to_pylist(), strict=True))
    assert traced == ledger.sources(ids) and (traced["c1"], traced["m1"]) == ("c.csv", "m.csv")


def test_a_file_is_never_logged_as_an_agencys_write(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service reads who sent a record from the source of its write (``agency:`` and
    the agency's name): a file whose name begins so is logged as ``./`` and its name."""
    from socialcredit.store import load_records

    monkeypatch.chdir(tmp_path)
    name = "agency:Traffic police.csv"
    (tmp_path / name).write_text(f"{HEADER}\nf1,{PERSON},traffic.red_light,2024-02-01,,,\n")
    append(ledger, load_records(name))
    assert ledger.batches()[-1].source == f"./{name}"
    assert ledger.sources(["f1"]) == {"f1": f"./{name}"}


def test_warm_reads_the_registry_index_a_first_batch_would(store: Store) -> None:
    """A server process warms its ledger as it starts: the index of codes every write and
    look-up reads is then in memory, and the first batch reads only what is newer."""
    with store.create() as ledger:
        fill(ledger)
    with store.open() as ledger:
        assert ledger._subjects.mark == 0  # nothing read yet
        ledger.warm()
        index = ledger._subjects
        assert (index.mark, sorted(index.codes.to_pylist())) == (2, sorted([ORG, PERSON]))
        ledger.add_subjects(subjects_table((OTHER, "organization")))
        assert ledger.kinds([OTHER, PERSON]) == {OTHER: "organization", PERSON: "person"}
        assert ledger._subjects.mark == 6


def test_read_back_across_scan_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{store.module}._SCAN", 3)
    monkeypatch.setattr(f"{store.module}._READERS", 2)  # chunks read in parallel
    with store.create() as ledger:
        ledger.add_subjects(subjects_table((ORG, "organization")))
        append(ledger, records_csv(*(f"r{i},{ORG},a.b,2024-01-01,,{i}," for i in range(5))))
        ledger.add_subjects(subjects_table((PERSON, "person")))
        append(
            ledger,
            records_csv(
                *(f"q{i},{PERSON},a.b,2024-01-01,,,{f'q{i - 1}' if i else ''}" for i in range(5)),
                f"x1,{ORG},a.c,2024-01-02,,,r0",
            ),
        )
        records = ledger.records()
        assert records.column("id").to_pylist() == [
            *(f"r{i}" for i in range(5)),
            *(f"q{i}" for i in range(5)),
            "x1",
        ]
        assert records.column("ref").to_pylist() == [
            None,
            None,
            None,
            None,
            None,
            None,
            "q0",
            "q1",
            "q2",
            "q3",
            "r0",
        ]
        assert ledger.verify().ok


def test_postgres_reads_on_one_connection_when_it_gets_no_more(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socialcredit.store.postgres as backend

    monkeypatch.setattr(backend, "_SCAN", 2)
    monkeypatch.setattr(backend, "_READERS", 2)
    with pg.create() as ledger:
        fill(ledger)
        parallel = ledger.records()

        def refuse(target: object) -> None:
            raise LedgerError("too many connections")

        monkeypatch.setattr(backend, "_connect", refuse)
        assert ledger.records().equals(parallel)
        assert parallel.column("id").to_pylist() == ["r1", "r2", "r3"]


def test_rows_stored_out_of_order_are_read_in_ledger_order(ledger: Ledger, store: Store) -> None:
    # A rewritten row moves to the end of a PostgreSQL table, so a scan meets it last.
    store.tamper(
        "UPDATE records SET amount = amount WHERE id IN ('r1', 'r2')",
        "UPDATE subjects SET kind = kind WHERE seq = 1",
    )
    assert ledger.records().column("id").to_pylist() == ["r1", "r2", "r3"]
    assert ledger.records_of(PERSON).column("id").to_pylist() == ["r2", "r3"]
    assert ledger.subjects().column("code").to_pylist() == [ORG, PERSON]
    report = ledger.verify()
    assert report.ok and report.entries_checked == 5


def test_records_hashed_in_several_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{store.module}._CHUNK", 7)
    rows = [
        f"r{i},{ORG},a.b,2024-01-{i % 28 + 1:02d},,{i},{f'r{i - 1}' if i % 3 else ''}"
        for i in range(100)
    ]
    loaded = records_csv(*rows)
    with store.create() as ledger:
        ledger.add_subjects(subjects_table((ORG, "organization")))
        assert ledger.append(loaded) == (100, 0, 0)
        assert ledger.records().equals(loaded.table)
        report = ledger.verify()
        assert report.ok and report.entries_checked == 101


def test_read_back_of_values_holding_the_separator(ledger: Ledger, store: Store) -> None:
    store.tamper("UPDATE records SET id = 'r\x1f2' WHERE id = 'r2'")
    assert ledger.records().column("id").to_pylist() == ["r1", "r\x1f2", "r3"]
    assert ledger.verify().first_bad == 4


def test_subjects_holding_the_separator_are_read_back(ledger: Ledger, store: Store) -> None:
    """A code or kind holding the separator of the column-wise read (a tampered file) is
    read row by row, whole: records of that subject are still found and named."""
    store.tamper(
        f"UPDATE subjects SET kind = 'pers\x1fon' WHERE code = '{PERSON}'",
        f"UPDATE subjects SET code = 'X\x1fY' WHERE code = '{ORG}'",
    )
    with store.open() as fresh:
        assert fresh.kinds(["X\x1fY", PERSON, ORG]) == {
            "X\x1fY": "organization",
            PERSON: "pers\x1fon",
        }
        assert fresh.records()["subject"].to_pylist()[0] == "X\x1fY"


def test_read_back_of_any_text(store: Store) -> None:
    """Texts come back byte for byte: other scripts, backslashes, commas, quotes."""
    odd = ["r\\1", "r,2", "r'3", 'r"4', "\u8bb0\u5f555", "r\u00e96", "r 7", "r\U0001f6008"]
    table = pa.table(
        {
            "id": odd,
            "subject": [ORG] * len(odd),
            "type": ["a.b-c", "A_1.x9"] * 4,  # types are dotted names (checked)
            "occurred_at": pa.array([dt.date(1969, 12, 31), dt.date(2024, 2, 29)] * 4),
            "amount": pa.array([0, 2**62, 1, 7] * 2, pa.int64()),
            "ref": [None, "r\\1", None, "r,2", None, None, "r'3", None],
        }
    )
    with store.create() as ledger:
        ledger.add_subjects(subjects_table((ORG, "organization")))
        assert ledger.append(table, source="odd") == (8, 0, 0)
        records = ledger.records()
        assert records.column("id").to_pylist() == odd
        assert records.column("type").to_pylist() == table.column("type").to_pylist()
        assert records.column("ref").to_pylist() == table.column("ref").to_pylist()
        assert records.column("occurred_at").to_pylist()[:2] == [
            dt.date(1969, 12, 31),
            dt.date(2024, 2, 29),
        ]
        assert records.column("amount").to_pylist()[:2] == [0, 2**62]
        assert ledger.records_of(ORG).equals(records)
        assert ledger.append(table, source="odd") == (0, 8, 0)
        assert ledger.verify().ok


# -- writing -----------------------------------------------------------------------------


def test_reimporting_a_batch_changes_nothing(ledger: Ledger) -> None:
    before = snapshot(ledger)
    result = append(
        ledger,
        records_csv(
            f"r1,{ORG},court.unfulfilled,2024-01-10,,5000,",
            f"r2,{PERSON},traffic.red_light,2024-02-01,2024-02-03,,",
            f"r3,{PERSON},charity.donation,2024-03-01,,300,",
        ),
    )
    assert result == (0, 3, 0)
    assert snapshot(ledger) == before


def test_an_overlapping_batch_appends_only_what_is_new(ledger: Ledger) -> None:
    loaded = records_csv(
        f"r3,{PERSON},charity.donation,2024-03-01,,300,",
        f"r4,{PERSON},charity.donation,2024-03-02,,100,",
        f"r4,{PERSON},charity.donation,2024-03-02,,100,",
    )
    assert loaded.repeats == 1  # the file's own repeat is dropped when it is read
    assert append(ledger, loaded) == (1, 1, 0)
    assert ledger.records().column("id").to_pylist() == ["r1", "r2", "r3", "r4"]


def test_repeats_within_a_table_are_skipped_and_counted(ledger: Ledger) -> None:
    row = records_csv(f"r4,{PERSON},charity.donation,2024-03-02,,100,").table
    old = records_csv(f"r3,{PERSON},charity.donation,2024-03-01,,300,").table
    assert ledger.append(pa.concat_tables([row, old, row, row]), source="t") == (1, 3, 0)
    assert ledger.records().column("id").to_pylist() == ["r1", "r2", "r3", "r4"]


def test_refs_resolve_across_batches_and_within_one(ledger: Ledger) -> None:
    append(
        ledger,
        records_csv(
            f"r5,{PERSON},appeal.upheld,2024-03-05,,,r4",  # names a record later in the batch
            f"r4,{PERSON},traffic.red_light,2024-03-04,,,",
            f"r6,{ORG},court.fulfilled,2024-03-06,,,r1",  # names a record of an earlier batch
        ),
    )
    refs = dict(
        zip(
            ledger.records().column("id").to_pylist(),
            ledger.records().column("ref").to_pylist(),
            strict=True,
        )
    )
    assert refs["r5"] == "r4"
    assert refs["r6"] == "r1"
    assert ledger.records_of(ORG).column("ref").to_pylist() == [None, "r1"]
    assert ledger.verify().ok


def test_a_missing_ref_is_stored_as_null(ledger: Ledger, store: Store) -> None:
    """In a batch without any ref and in one with some, a missing ref is NULL in the
    database and a present one the entry of the record it names."""
    append(ledger, records_csv(f"r4,{PERSON},traffic.red_light,2024-03-04,,,"))
    append(
        ledger,
        records_csv(
            f"r5,{PERSON},appeal.upheld,2024-03-05,,,r4", f"r6,{ORG},court.fulfilled,2024-03-06,,,"
        ),
    )
    seq_of = dict(store.query("SELECT id, seq FROM records"))
    assert store.query("SELECT id, ref FROM records ORDER BY seq") == [
        ("r1", None),
        ("r2", None),
        ("r3", None),
        ("r4", None),
        ("r5", seq_of["r4"]),
        ("r6", None),
    ]
    assert store.query("SELECT count(*) FROM records WHERE ref = 0") == [(0,)]


@pytest.mark.parametrize("registered", [3, 40])
def test_subjects_are_found_in_a_registry_smaller_or_larger_than_the_batch(
    store: Store, registered: int
) -> None:
    """A batch naming three subjects, against a registry of those three or of many more:
    each record goes to its own subject, and a record of an unregistered one is refused."""
    codes = ric.generate(
        np.random.default_rng(registered),
        41,
        born_from=dt.date(1950, 1, 1),
        born_to=dt.date(2000, 12, 31),
    )
    named, unregistered = codes[:3], codes[40]
    with store.create() as ledger:
        ledger.add_subjects(subjects_table(*((c, "person") for c in codes[:registered])))
        batch = [
            f"x{i},{code},a.b,2024-01-01,,,{f'x{i - 3}' if i >= 3 else ''}"
            for i, code in enumerate(named * 2)
        ]
        with pytest.raises(InvalidInput) as caught:
            append(ledger, records_csv(*batch, f"x6,{unregistered},a.b,2024-01-01,,,"))
        assert [(p.line, p.where) for p in caught.value.problems] == [(8, "subject")]
        assert append(ledger, records_csv(*batch)) == (6, 0, 0)
        for k, code in enumerate(named):
            assert ledger.records_of(code).column("id").to_pylist() == [f"x{k}", f"x{k + 3}"]
        assert ledger.verify().ok
        orgs = uscc.generate(np.random.default_rng(registered), registered)
        ledger.add_subjects(subjects_table(*((c, "organization") for c in orgs)))
        asked = [*named, orgs[0], unregistered, orgs[-1]]
        expected = {c: "person" for c in named} | {
            orgs[0]: "organization",
            orgs[-1]: "organization",
        }
        assert ledger.kinds(asked) == expected
        assert ledger.kinds(codes[:registered] + orgs) == (
            {c: "person" for c in codes[:registered]} | {c: "organization" for c in orgs}
        )


def test_an_empty_batch(ledger: Ledger) -> None:
    before = snapshot(ledger)
    assert ledger.append(RECORDS_SCHEMA.empty_table(), source="empty") == (0, 0, 0)
    assert snapshot(ledger) == before


def test_a_table_without_origin_is_numbered_by_row(ledger: Ledger) -> None:
    table = records_csv(f"r9,{ORG},a.b,2024-01-01,,,", f"r10,{ORG},a.b,2024-01-01,,,r99").table
    with pytest.raises(InvalidInput) as caught:
        ledger.append(table, source="simulator")
    [problem] = caught.value.problems
    assert (problem.source, problem.line, problem.where) == ("simulator", 2, "ref")
    assert problem.message.endswith("(row 2)")


def test_a_table_with_optional_columns_left_out(ledger: Ledger) -> None:
    table = pa.table(
        {
            "id": ["r9"],
            "subject": [ORG],
            "type": ["a.b"],
            "occurred_at": pa.array([dt.date(2024, 5, 1)], pa.date32()),
        }
    )
    assert ledger.append(table, source="t") == (1, 0, 0)
    assert ledger.records().slice(3).to_pylist() == [
        {
            "id": "r9",
            "subject": ORG,
            "type": "a.b",
            "occurred_at": dt.date(2024, 5, 1),
            "recorded_at": dt.date(2024, 5, 1),
            "amount": 0,
            "ref": None,
        }
    ]


def test_a_table_of_the_wrong_shape(ledger: Ledger) -> None:
    table = pa.table(
        {"id": ["r9"], "subject": [ORG], "kind": ["a.b"], "occurred_at": ["2024-05-01"]}
    )
    with pytest.raises(InvalidInput) as caught:
        ledger.append(table, source="t")
    assert sorted(p.where for p in caught.value.problems) == ["kind", "occurred_at", "type"]


def test_a_loaded_file_or_a_table_with_its_origin(ledger: Ledger) -> None:
    loaded = records_csv(f"r9,{ORG},a.b,2024-01-01,,,", "", f"r10,{ORG},a.b,2024-01-01,,,r99")
    for call in (
        lambda: ledger.append(loaded),
        lambda: ledger.append(loaded.table, source="batch.csv", origin=loaded.origin),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        [problem] = caught.value.problems
        assert (problem.source, problem.line, problem.where) == ("batch.csv", 4, "ref")
    assert ledger.append(loaded.table.slice(0, 1), source="named") == (1, 0, 0)
    assert ledger.batches()[-1][1] == "named"


def test_origin_must_match_the_table(ledger: Ledger) -> None:
    loaded = records_csv(f"r9,{ORG},a.b,2024-01-01,,,")
    with pytest.raises(ValueError, match="origin has 2 rows"):
        ledger.append(loaded.table, source="x", origin=Origin.rows("x", 2))


# Each case: a batch appended to the fixture ledger (r1 of ORG; r2, r3 of PERSON), and the
# problems expected: (line, field, fragment of the message).
BAD_BATCHES = [
    (
        "id in the ledger with other content",
        [f"r2,{PERSON},traffic.red_light,2024-02-01,,,"],
        [
            (
                2,
                "id",
                "already in the ledger with other content (recorded_at: the ledger has "
                "2024-02-03, this has 2024-02-01)",
            )
        ],
    ),
    (
        "ref to a record that does not exist",
        [f"r9,{PERSON},appeal.upheld,2024-03-05,,,r404"],
        [(2, "ref", "'r404', which is neither in the ledger nor in this batch")],
    ),
    (
        "ref to a ledger record of another subject",
        [f"r9,{PERSON},appeal.upheld,2024-03-05,,,r1"],
        [(2, "ref", "about another subject")],
    ),
    (
        "ref to a batch record of another subject",
        [f"r9,{ORG},a.b,2024-03-05,,,", f"r10,{PERSON},appeal.upheld,2024-03-05,,,r9"],
        [(3, "ref", "about another subject")],
    ),
    (
        "unregistered subject",
        ["r9,91110000600037341L,a.b,2024-03-05,,,"],
        [(2, "subject", "is not registered")],
    ),
    (
        "unregistered subject, lower case",
        [f"r9,{PERSON.lower()},a.b,2024-03-05,,,"],
        [(2, "subject", "upper-case")],
    ),
    (
        "same id twice in the batch",
        [f"r9,{ORG},a.b,2024-03-05,,,", f"r9,{ORG},a.b,2024-03-06,,,"],
        [(3, "id", "also used on line 2")],
    ),
    (
        "a bad row among good ones",
        [
            f"r9,{ORG},a.b,2024-03-05,,,",
            f"r10,{ORG},a.b,2024-03-05,,,r1",
            f"r11,{PERSON},a.b,2024-03-05,,,r1",
        ],
        [(4, "ref", "about another subject")],
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [c[1:] for c in BAD_BATCHES], ids=[c[0] for c in BAD_BATCHES]
)
def test_a_bad_batch_is_refused_whole(
    ledger: Ledger, rows: list[str], expected: list[tuple[int, str, str]]
) -> None:
    before = snapshot(ledger)
    with pytest.raises(InvalidInput) as caught:
        append(ledger, records_csv(*rows))
    problems = caught.value.problems
    assert [(p.source, p.line, p.where) for p in problems] == [
        ("batch.csv", line, field) for line, field, _ in expected
    ]
    for problem, (_, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
    assert PERSON not in str(caught.value)  # a person's code is never repeated
    assert snapshot(ledger) == before


def test_every_problem_of_a_batch_is_listed(ledger: Ledger) -> None:
    before = snapshot(ledger)
    with pytest.raises(InvalidInput) as caught:
        append(
            ledger,
            records_csv(
                f"r2,{PERSON},traffic.red_light,2024-02-01,,,",
                f"r9,{PERSON},appeal.upheld,2024-03-05,,,r404",
                f"r10,{PERSON},a.b,2024-03-05,,,",
                "r11,nobody,a.b,2024-03-05,,,",
            ),
        )
    assert [(p.line, p.where) for p in caught.value.problems] == [
        (2, "id"),
        (3, "ref"),
        (5, "subject"),
    ]
    assert snapshot(ledger) == before


def test_a_table_is_checked_row_by_row_too(ledger: Ledger) -> None:
    before = snapshot(ledger)
    table = pa.table(
        {
            "id": ["r9", "", "r11", "r12"],
            "subject": [ORG] * 4,
            "type": ["a.b", "a.b", "a\nb", "a.b"],
            "occurred_at": pa.array([dt.date(2024, 3, 5)] * 4, pa.date32()),
            "recorded_at": pa.array([dt.date(2024, 3, 1)] + [dt.date(2024, 3, 5)] * 3, pa.date32()),
            "amount": pa.array([0, 0, 0, -1], pa.int64()),
        }
    )
    with pytest.raises(InvalidInput) as caught:
        ledger.append(table, source="simulator")
    assert [(p.line, p.where) for p in caught.value.problems] == [
        (1, "recorded_at"),
        (2, "id"),
        (3, "type"),
        (4, "amount"),
    ]
    assert snapshot(ledger) == before


def test_registering_subjects_is_idempotent(ledger: Ledger) -> None:
    result = ledger.add_subjects(
        subjects_table(
            (ORG, "organization"),
            (PERSON.lower(), "person"),
            ("91110000600037341L", "organization"),
        )
    )
    assert result == (1, 2)
    assert ledger.subjects().column("code").to_pylist() == [ORG, PERSON, "91110000600037341L"]


def test_a_subject_never_changes_kind(ledger: Ledger) -> None:
    before = snapshot(ledger)
    loaded = parse_subjects(
        b"code,kind\nP-1,person\nP-2,person\n" + ORG.encode() + b",person\n",
        source="subjects.csv",
        opaque_codes=True,
    )
    with pytest.raises(InvalidInput) as caught:
        ledger.add_subjects(loaded, opaque_codes=True)
    [problem] = caught.value.problems
    assert (problem.source, problem.line, problem.where) == ("subjects.csv", 4, "kind")
    assert "already registered as organization" in problem.message
    assert snapshot(ledger) == before


def test_invalid_codes_are_refused(ledger: Ledger) -> None:
    before = snapshot(ledger)
    with pytest.raises(InvalidInput) as caught:
        ledger.add_subjects(
            subjects_table(
                ("91110000600037341L", "organization"), ("91110000600037341M", "organization")
            )
        )
    assert [(p.line, p.where) for p in caught.value.problems] == [(2, "code")]
    assert snapshot(ledger) == before


def test_generated_codes_register(store: Store) -> None:
    rng = np.random.default_rng(3)
    people = ric.generate(rng, 50, born_from=dt.date(1950, 1, 1), born_to=dt.date(2005, 1, 1))
    orgs = uscc.generate(rng, 50)
    with store.create() as ledger:
        added = ledger.add_subjects(
            pa.table({"code": people + orgs, "kind": ["person"] * 50 + ["organization"] * 50})
        )
        assert added == (100, 0)
        assert ledger.kind_of(people[0]) == "person"


def test_two_writers_keep_one_chain(ledger: Ledger, store: Store) -> None:
    with store.open() as other:
        append(other, records_csv(f"r4,{ORG},a.b,2024-01-01,,,"))
        append(ledger, records_csv(f"r5,{ORG},a.b,2024-01-01,,,r4"))
        other.add_subjects(subjects_table(("91110000600037341L", "organization")))
        append(ledger, records_csv("r6,91110000600037341L,a.b,2024-01-01,,,"))
    assert ledger.records().column("id").to_pylist() == ["r1", "r2", "r3", "r4", "r5", "r6"]
    report = ledger.verify()
    assert report.ok and report.entries_checked == 9


def test_binary_copy_rows_write_no_bytes_of_a_null() -> None:
    """PostgreSQL's binary COPY rows: a NULL is a length of -1 and no bytes, even where
    Arrow keeps bytes under the NULL (as ``if_else`` leaves them); each value follows its
    length, and the rows follow a field count."""
    from socialcredit.store.postgres_binary import copy_rows, fixed, varying

    text = pa.array(["aa", "bb", "cc", ""])
    hidden = pc.if_else(pa.array([True, False, True, True]), text, None)
    assert hidden.null_count == 1 and hidden.buffers()[2].size == 6  # "bb" still there
    numbers = np.array([1, 2, 3, 4])

    def field(value: bytes | None) -> bytes:
        return b"\xff\xff\xff\xff" if value is None else len(value).to_bytes(4, "big") + value

    expected = b"".join(
        b"\x00\x02" + field(t) + field(None if n == 2 else n.to_bytes(8, "big", signed=True))
        for t, n in zip([b"aa", None, b"cc", b""], [1, 2, 3, 4], strict=True)
    )
    laid = copy_rows([varying(hidden), fixed(numbers, ">i8", valid=numbers != 2)], 4)
    assert laid == expected
    assert copy_rows([varying(hidden.slice(1))], 3) == b"".join(
        b"\x00\x01" + field(t) for t in [None, b"cc", b""]
    )


def test_kinds_of_codes_registered_or_not(ledger: Ledger) -> None:
    codes = pa.array([PERSON, "91110000600037341L", ORG])
    assert ledger.kinds_of(codes).to_pylist() == ["person", None, "organization"]
    assert ledger.kinds_of(pa.array([], pa.string())).to_pylist() == []


def test_what_a_look_up_found_spares_the_append_looking_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = records_csv(
        f"r1,{ORG},court.unfulfilled,2024-01-10,,5000,",  # there already: skipped
        f"r4,{PERSON},a.b,2024-04-01,,,r3",  # ends a record of the ledger
    )
    found = ledger.look_up(batch.table)
    assert sorted(found.ids.to_pylist()) == ["r1", "r3", "r4"]
    assert sorted(found.records()["id"].to_pylist()) == ["r1", "r3"]
    looked: list[int] = []
    real = type(ledger)._existing
    monkeypatch.setattr(
        type(ledger), "_existing", lambda self, ids: looked.append(len(ids)) or real(self, ids)
    )
    assert ledger.append(batch, found=found) == (1, 1, 0)
    assert looked == []
    assert ledger.records_of(PERSON)["ref"].to_pylist() == [None, None, "r3"]
    assert ledger.verify().ok
    # a table as append takes it: optional columns may be left out
    short = pa.table(
        {"id": ["r1"], "subject": [ORG], "type": ["x"], "occurred_at": [dt.date(2024, 1, 10)]}
    )
    assert ledger.look_up(short).records()["id"].to_pylist() == ["r1"]


def test_a_look_up_outdated_by_another_writer_is_not_trusted(ledger: Ledger, store: Store) -> None:
    """Another writer appends the same record between the look-up and the append: the
    append looks again, and the record is in the ledger once."""
    batch = records_csv(f"r4,{PERSON},a.b,2024-04-01,,,", f"r5,{PERSON},a.b,2024-04-02,,,r4")
    found = ledger.look_up(batch.table)
    assert found.records().num_rows == 0
    with store.open() as other:
        assert other.append(records_csv(f"r4,{PERSON},a.b,2024-04-01,,,")) == (1, 0, 0)
    assert ledger.append(batch, found=found) == (1, 1, 0)
    assert ledger.records()["id"].to_pylist() == ["r1", "r2", "r3", "r4", "r5"]
    with store.open() as other:  # a different record under a taken id is still refused
        other.append(records_csv(f"r6,{PERSON},a.b,2024-04-03,,,"))
    stale = ledger.look_up(records_csv(f"r6,{PERSON},a.b,2024-05-01,,,").table)
    with pytest.raises(InvalidInput, match="r6"):
        ledger.append(records_csv(f"r6,{PERSON},a.b,2024-05-01,,,"), found=stale)
    assert ledger.verify().ok


def test_concurrent_writers_keep_one_chain(ledger: Ledger, store: Store) -> None:
    """Writers in threads, each with a connection of its own, append at once: every batch
    goes in whole, after another, and the chain runs through them all."""
    writers, batches, size = 4, 5, 40
    failures: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        try:
            with store.open() as mine:
                start.wait()
                for b in range(batches):
                    rows = [f"w{w}b{b}n{i},{ORG},a.b,2024-01-01,,{i}," for i in range(size)]
                    assert mine.append(records_csv(*rows)) == (size, 0, 0)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    report = ledger.verify()
    assert report.ok and report.entries_checked == 5 + writers * batches * size
    logged = ledger.batches()[2:]
    assert len(logged) == writers * batches
    assert [(b.first_seq, b.last_seq) for b in logged] == [
        (6 + k * size, 5 + (k + 1) * size) for k in range(writers * batches)
    ]


def test_both_stores_chain_alike(pg: Store, path: Path) -> None:
    """The same entries have the same hashes in either store."""
    heads = []
    for target in (path, pg.target):
        with create_ledger(target) as ledger:
            fill(ledger)
            append(ledger, records_csv(f"r4,{PERSON},appeal.upheld,2024-03-05,,,r2"))
            ledger.add_subjects(subjects_table(("91110000600037341L", "organization")))
            heads.append((ledger.verify(), ledger.records(), ledger.subjects()))
    assert heads[0] == heads[1]
    assert heads[0][0].ok and heads[0][0].entries_checked == 7


# -- the shared checks without a ledger --------------------------------------------------


def test_check_batch_can_keep_unknown_subjects() -> None:
    loaded = records_csv(f"r1,{ORG},a.b,2024-01-01,,,", f"r2,{PERSON},a.b,2024-01-01,,,")
    subjects = subjects_table((ORG, "organization"))
    kept = check_batch(
        loaded.table, origin=loaded.origin, subjects=subjects, unknown_subjects="keep"
    )
    assert kept.ok and kept.keep.tolist() == [0, 1]
    assert (kept.unknown_subjects, kept.unknown_codes) == (1, [PERSON])
    refused = check_batch(loaded.table, origin=loaded.origin, subjects=subjects)
    assert [(p.line, p.where) for p in refused.problems] == [(3, "subject")]


# -- append-only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET amount = 1 WHERE id = 'r1'",
        "DELETE FROM records WHERE id = 'r2'",
        "UPDATE subjects SET kind = 'person'",
        "DELETE FROM subjects",
        "UPDATE types SET name = 'x'",
        "DELETE FROM batches",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        "DELETE FROM meta",
    ],
)
def test_the_database_refuses_changes(ledger: Ledger, store: Store, statement: str) -> None:
    before = snapshot(ledger)
    with pytest.raises(store.refused, match="append-only"):
        store.execute(statement)
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("records", "seq"),
        ("subjects", "seq"),
        ("types", "code"),
        ("batches", "batch"),
        ("meta", "key"),
    ],
)
def test_postgres_refuses_truncate_and_any_change(pg: Store, table: str, column: str) -> None:
    """Statement triggers: a change is refused even when it would touch no row."""
    with pg.create() as ledger:
        fill(ledger)
        before = snapshot(ledger)
        for statement in (
            f"TRUNCATE {table}",
            f"DELETE FROM {table} WHERE false",
            f"UPDATE {table} SET {column} = {column} WHERE false",
        ):
            with pytest.raises(pg.refused, match=f"{table} is append-only"):
                pg.execute(statement)
        assert snapshot(ledger) == before


# -- tampering ---------------------------------------------------------------------------


def test_verify_a_sound_ledger(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok
    assert (report.entries_checked, report.first_bad, report.reason) == (5, None, "")


def test_a_changed_amount_is_named(ledger: Ledger, store: Store) -> None:
    store.tamper("UPDATE records SET amount = 1 WHERE id = 'r3'")
    report = ledger.verify()
    assert not report.ok
    assert (report.first_bad, report.key, report.entries_checked) == (5, "r3", 4)
    assert "content hash mismatch" in report.reason
    assert "entry 5 (record 'r3')" in report.reason


@pytest.mark.parametrize(
    ("statement", "first_bad", "key"),
    [
        ("UPDATE records SET occurred_at = occurred_at - 1 WHERE id = 'r2'", 4, "r2"),
        ("UPDATE types SET name = 'traffic.green_light' WHERE name = 'traffic.red_light'", 4, "r2"),
        ("UPDATE subjects SET kind = 'organization' WHERE code = '11010519491231002X'", 2, PERSON),
        ("UPDATE records SET subject = 1 WHERE id = 'r3'", 5, "r3"),
        ("UPDATE records SET subject = 99 WHERE id = 'r3'", 5, "r3"),
        ("UPDATE records SET hash = {zeros} WHERE id = 'r1'", 3, "r1"),
        ("UPDATE records SET ref = 3 WHERE id = 'r2'", 4, "r2"),
        ("UPDATE records SET ref = 99 WHERE id = 'r2'", 4, "r2"),  # a ref to no entry
        ("UPDATE records SET ref = 1 WHERE id = 'r2'", 4, "r2"),  # to a subject's entry
        ("UPDATE subjects SET code = 'X' WHERE seq = 1", 1, "X"),
    ],
)
def test_other_changes_are_named(
    ledger: Ledger, store: Store, statement: str, first_bad: int, key: str
) -> None:
    store.tamper(statement.format(zeros=store.blob(bytes(32))))
    report = ledger.verify()
    assert (report.ok, report.first_bad, report.key) == (False, first_bad, key)
    assert "content hash mismatch" in report.reason


def test_a_deleted_entry_is_named(ledger: Ledger, store: Store) -> None:
    store.tamper("DELETE FROM records WHERE id = 'r2'")
    report = ledger.verify()
    assert (report.ok, report.first_bad, report.key) == (False, 4, None)
    assert "gap in the sequence: entry 4 is missing" in report.reason


def test_a_rewritten_entry_breaks_the_next_link(ledger: Ledger, store: Store) -> None:
    # The intruder changes r2 and recomputes its hash: r2 itself checks out, but r3 was
    # chained to r2's old hash.
    records = ledger.records()
    subjects_head = chain(GENESIS, subject_payloads(np.array([1, 2]), ledger.subjects()))[-1]
    r1_hash = chain(subjects_head, record_payloads(np.array([3]), records.slice(0, 1)))[0]
    forged = records.slice(1, 1).set_column(5, "amount", pa.array([999], pa.int64()))
    forged_hash = chain(r1_hash, record_payloads(np.array([4]), forged))[0]
    store.tamper(
        f"UPDATE records SET amount = 999, hash = {store.blob(forged_hash)} WHERE id = 'r2'"
    )
    report = ledger.verify()
    assert (report.ok, report.first_bad, report.key) == (False, 5, "r3")
    assert "broken link" in report.reason


def test_a_cut_off_end_is_named(ledger: Ledger, store: Store) -> None:
    store.tamper("DELETE FROM records WHERE id = 'r3'")
    report = ledger.verify()
    assert (report.ok, report.first_bad) == (False, 5)
    assert "cut off" in report.reason


def test_a_rechained_ledger_contradicts_the_log_of_batches(ledger: Ledger, store: Store) -> None:
    # The intruder rewrites r3 and recomputes every hash and link after it: only the
    # heads kept in the log of batches betray it.
    records = ledger.records()
    head = chain(
        GENESIS,
        [
            *subject_payloads(np.array([1, 2]), ledger.subjects()),
            *record_payloads(np.array([3, 4]), records.slice(0, 2)),
        ],
    )[-1]
    forged = records.slice(2, 1).set_column(5, "amount", pa.array([1], pa.int64()))
    forged_hash = chain(head, record_payloads(np.array([5]), forged))[0]
    store.tamper(f"UPDATE records SET amount = 1, hash = {store.blob(forged_hash)} WHERE id = 'r3'")
    report = ledger.verify()
    assert (report.ok, report.first_bad, report.key) == (False, 5, "r3")
    assert "log of batches" in report.reason


# -- SQLite: records by subject (schema version 2) ---------------------------------------

OTHER = "91110000600037341L"  # a third valid USCC


def layout(path: Path) -> dict[str, set[str]]:
    """The tables, indexes and triggers of an SQLite file, by kind."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    found: dict[str, set[str]] = {}
    for kind, name in rows.fetchall():
        found.setdefault(kind, set()).add(name)
    db.close()
    return found


def meta_of(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    db.close()
    return meta


def by_subject(path: Path, table: str = "records_by_subject") -> list[tuple[int, int]]:
    db = sqlite3.connect(path)
    rows = db.execute(f"SELECT subject, seq FROM {table} ORDER BY subject, seq")
    out = rows.fetchall()
    db.close()
    return out


RECENT = "records_by_subject_recent"
RECENT_OBJECTS = {
    "table": {RECENT},
    "index": {f"{RECENT}_subject"},
    "trigger": {f"{RECENT}_no_update", f"{RECENT}_no_delete"},
}


def has_recent(found: dict[str, set[str]]) -> bool:
    return all(names <= found.get(kind, set()) for kind, names in RECENT_OBJECTS.items())


def grow(ledger: Ledger) -> Ledger:
    """Several batches over three subjects, with refs, after :func:`fill`."""
    ledger.add_subjects(subjects_table((OTHER, "organization")))
    append(
        ledger,
        records_csv(
            f"r4,{OTHER},court.unfulfilled,2024-04-01,,100,",
            f"r5,{PERSON},appeal.upheld,2024-04-02,,,r2",
            f"r6,{ORG},charity.donation,2024-04-03,,50,",
            source="second.csv",
        ),
    )
    append(
        ledger,
        records_csv(
            f"r7,{ORG},appeal.upheld,2024-05-01,,,r1",
            f"r8,{OTHER},traffic.red_light,2024-05-02,,,",
            f"r9,{PERSON},charity.donation,2024-05-03,,10,",
            source="third.csv",
        ),
    )
    return ledger


def assert_records_by_subject_agree(ledger: Ledger) -> None:
    everything = ledger.records()
    for code in (ORG, PERSON, OTHER):
        mine = everything.filter(pa.compute.equal(everything["subject"], code))
        assert mine.num_rows > 0
        assert ledger.records_of(code).equals(mine)


def to_version_1(path: Path) -> None:
    """Turn a ledger file back into the layout of schema version 1."""
    db = sqlite3.connect(path, isolation_level=None)
    (meta_trigger,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'meta_no_update'"
    ).fetchone()
    to_version_2(path)
    db = sqlite3.connect(path, isolation_level=None)
    for statement in (
        "BEGIN",
        "DROP TRIGGER records_by_subject_no_update",
        "DROP TRIGGER records_by_subject_no_delete",
        "DROP TABLE records_by_subject",
        "CREATE INDEX records_by_subject ON records (subject)",
        "DROP TRIGGER meta_no_update",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        meta_trigger,
        "COMMIT",
    ):
        db.execute(statement)
    db.close()


def to_version_2(path: Path) -> None:
    """Turn a ledger file back into the layout of schema version 2 (its recent rows by
    subject moved into ``records_by_subject``, as version 2 kept them)."""
    db = sqlite3.connect(path, isolation_level=None)
    (meta_trigger,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'meta_no_update'"
    ).fetchone()
    for statement in (
        "BEGIN",
        f"INSERT INTO records_by_subject SELECT subject, seq FROM {RECENT}",
        f"DROP TABLE {RECENT}",
        "DROP TRIGGER meta_no_update",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        meta_trigger,
        "COMMIT",
    ):
        db.execute(statement)
    db.close()


def test_a_new_sqlite_ledger_finds_records_by_subject_through_a_table(path: Path) -> None:
    fill(SqliteLedger.create(path)).close()
    found = layout(path)
    assert "records_by_subject" in found["table"]
    assert "records_by_subject" not in found.get("index", set())
    assert {"records_by_subject_no_update", "records_by_subject_no_delete"} <= found["trigger"]
    assert has_recent(found)
    assert meta_of(path)["schema_version"] == "3"
    assert "upgraded_to_2_at" not in meta_of(path)
    assert "upgraded_to_3_at" not in meta_of(path)
    # entries 1-2 are the subjects; r1 (entry 3) is ORG's, r2 and r3 (4, 5) PERSON's
    assert by_subject(path) == [(1, 3), (2, 4), (2, 5)]


def test_records_of_agrees_with_the_whole_ledger_after_several_appends(path: Path) -> None:
    with SqliteLedger.create(path) as ledger:
        grow(fill(ledger))
        assert_records_by_subject_agree(ledger)
        assert len(by_subject(path)) == ledger.records().num_rows == 9
        assert ledger.verify().ok


def test_a_failed_batch_leaves_no_row_by_subject(path: Path) -> None:
    with SqliteLedger.create(path) as ledger:
        fill(ledger)
        before = by_subject(path)

        def broken_log(*args: object) -> None:
            raise OSError("log unwritable")

        ledger._log = broken_log  # type: ignore[method-assign]
        with pytest.raises(OSError, match="log unwritable"):
            append(
                ledger, records_csv(f"x1,{ORG},a.b,2024-01-01,,,", f"x2,{PERSON},a.b,2024-01-01,,,")
            )
        del ledger._log
        assert by_subject(path) == before
        assert ledger.records_of(ORG).column("id").to_pylist() == ["r1"]
        assert append(ledger, records_csv(f"x1,{ORG},a.b,2024-01-01,,,")) == (1, 0, 0)
        assert ledger.records_of(ORG).column("id").to_pylist() == ["r1", "x1"]
        assert ledger.verify().ok


def test_a_version_1_file_is_upgraded_on_open(path: Path) -> None:
    with SqliteLedger.create(path) as ledger:
        grow(fill(ledger))
        head = ledger.verify().head
        everything = ledger.records()
        rows = by_subject(path)
    to_version_1(path)
    assert "records_by_subject" in layout(path)["index"]
    assert "records_by_subject" not in layout(path)["table"]
    assert meta_of(path)["schema_version"] == "1"

    with SqliteLedger.open(path) as ledger:
        found = layout(path)
        assert "records_by_subject" in found["table"]
        assert "records_by_subject" not in found.get("index", set())
        assert {"records_by_subject_no_update", "records_by_subject_no_delete"} <= found["trigger"]
        assert has_recent(found)
        meta = meta_of(path)
        assert meta["schema_version"] == "3"
        assert dt.datetime.fromisoformat(meta["upgraded_to_2_at"]).tzinfo is not None
        assert dt.datetime.fromisoformat(meta["upgraded_to_3_at"]).tzinfo is not None
        assert by_subject(path) == rows
        report = ledger.verify()
        assert report.ok and report.head == head and report.entries_checked == 12
        assert ledger.records().equals(everything)
        assert_records_by_subject_agree(ledger)
        assert append(ledger, records_csv(f"r10,{OTHER},a.b,2024-06-01,,,r8")) == (1, 0, 0)
        assert ledger.records_of(OTHER).column("id").to_pylist() == ["r4", "r8", "r10"]
        assert ledger.verify().ok
    # the meta table is append-only again, and a second opening changes nothing
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        SqliteStore(path).execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with SqliteLedger.open(path) as ledger:
        assert meta_of(path) == meta
        assert ledger.verify().ok


def test_an_upgrade_that_fails_leaves_a_version_1_file(path: Path) -> None:
    fill(SqliteLedger.create(path)).close()
    to_version_1(path)
    # a row an upgrade could not add: the whole upgrade is rolled back
    SqliteStore(path).execute("INSERT INTO meta (key, value) VALUES ('upgraded_to_2_at', 'x')")
    with pytest.raises(LedgerError, match=r"cannot upgrade .* from schema version 1 to 3"):
        SqliteLedger.open(path)
    assert meta_of(path)["schema_version"] == "1"
    assert "records_by_subject" in layout(path)["index"]
    assert "records_by_subject" not in layout(path)["table"]


@pytest.mark.parametrize(
    "statement",
    ["UPDATE records_by_subject SET subject = 1", "DELETE FROM records_by_subject WHERE seq = 4"],
)
def test_the_table_by_subject_refuses_changes(path: Path, statement: str) -> None:
    with SqliteLedger.create(path) as ledger:
        fill(ledger)
        rows = by_subject(path)
        with pytest.raises(sqlite3.IntegrityError, match="records_by_subject is append-only"):
            SqliteStore(path).execute(statement)
        assert by_subject(path) == rows


@pytest.mark.parametrize(
    ("statement", "first_bad", "key", "says"),
    [
        ("DELETE FROM records_by_subject WHERE seq = 4", 4, "r2", "no row for entry 4"),
        ("UPDATE records_by_subject SET subject = 1 WHERE seq = 5", 5, "r3", "no row for entry 5"),
        # the same count and sums of seqs and subjects: only the pairs differ
        (
            "UPDATE records_by_subject SET subject = 3 - subject WHERE seq IN (3, 4)",
            3,
            "r1",
            "no row for entry 3",
        ),
        ("INSERT INTO records_by_subject VALUES (1, 4)", 4, "r2", "of another subject"),
        ("INSERT INTO records_by_subject VALUES (1, 99)", 99, None, "entry 99 is no record"),
    ],
)
def test_verify_names_a_table_by_subject_that_disagrees(
    path: Path, statement: str, first_bad: int, key: str | None, says: str
) -> None:
    with SqliteLedger.create(path) as ledger:
        fill(ledger)
        SqliteStore(path).tamper(statement)
        report = ledger.verify()
        assert (report.ok, report.first_bad, report.key) == (False, first_bad, key)
        assert report.reason.startswith("records_by_subject, the table that finds records by")
        assert "the chain is intact" in report.reason
        assert says in report.reason
        assert report.entries_checked == 5


def test_a_version_2_file_is_upgraded_on_open(path: Path) -> None:
    with SqliteLedger.create(path) as ledger:
        grow(fill(ledger))
        head = ledger.verify().head
        everything = ledger.records()
    to_version_2(path)
    rows = by_subject(path)
    assert not has_recent(layout(path))
    with SqliteLedger.open(path) as ledger:
        assert has_recent(layout(path))
        meta = meta_of(path)
        assert meta["schema_version"] == "3" and "upgraded_to_2_at" not in meta
        assert dt.datetime.fromisoformat(meta["upgraded_to_3_at"]).tzinfo is not None
        assert by_subject(path) == rows and by_subject(path, RECENT) == []
        report = ledger.verify()
        assert report.ok and report.head == head
        assert ledger.records().equals(everything)
        assert_records_by_subject_agree(ledger)


@pytest.fixture
def no_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recent rows by subject stay apart, whatever their number."""
    monkeypatch.setattr("socialcredit.store.sqlite._MERGE_SHARE", 0)


def test_recent_rows_by_subject_move_once_they_are_a_share_of_the_ledger(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = "socialcredit.store.sqlite._MERGE_SHARE"
    with SqliteLedger.create(path) as ledger:
        grow(fill(ledger))  # a small ledger: each batch's rows are moved at once
        assert len(by_subject(path)) == 9 and by_subject(path, RECENT) == []
        monkeypatch.setattr(share, 0)
        append(ledger, records_csv(f"r10,{OTHER},a.b,2024-06-01,,,"))  # entry 13
        append(ledger, records_csv(f"r11,{ORG},a.b,2024-06-02,,,"))  # entry 14
        assert by_subject(path, RECENT) == [(1, 14), (6, 13)]
        assert ledger.records_of(ORG).column("id").to_pylist() == ["r1", "r6", "r7", "r11"]
        assert_records_by_subject_agree(ledger)
        assert ledger.verify().ok
        # entries 13 to 15 span 3, a fifth of the 12 before them: not yet at a share of 4
        monkeypatch.setattr(share, 4)
        append(ledger, records_csv(f"r12,{ORG},a.b,2024-06-03,,,"))
        assert len(by_subject(path, RECENT)) == 3 and len(by_subject(path)) == 9
        # entries 13 to 16 span 4, a quarter or more: moved, in the table's order
        append(ledger, records_csv(f"r13,{PERSON},a.b,2024-06-04,,,"))
        assert by_subject(path, RECENT) == []
        assert len(by_subject(path)) == 13
        assert_records_by_subject_agree(ledger)
        assert ledger.records_of(ORG).column("id").to_pylist() == ["r1", "r6", "r7", "r11", "r12"]
        assert ledger.verify().ok


def test_a_failed_batch_moves_no_recent_row(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socialcredit.store.sqlite._MERGE_SHARE", 0)
    with SqliteLedger.create(path) as ledger:
        grow(fill(ledger))
        monkeypatch.setattr("socialcredit.store.sqlite._MERGE_SHARE", 1000)  # due now

        def broken_log(*args: object) -> None:
            raise OSError("log unwritable")

        ledger._log = broken_log  # type: ignore[method-assign]
        with pytest.raises(OSError, match="log unwritable"):
            append(ledger, records_csv(f"x1,{ORG},a.b,2024-01-01,,,"))
        del ledger._log
        assert has_recent(layout(path))
        assert by_subject(path) == [] and len(by_subject(path, RECENT)) == 9
        assert ledger.records_of(ORG).column("id").to_pylist() == ["r1", "r6", "r7"]
        assert_records_by_subject_agree(ledger)
        assert ledger.verify().ok


@pytest.mark.parametrize(
    "statement", [f"UPDATE {RECENT} SET subject = 1", f"DELETE FROM {RECENT} WHERE seq = 4"]
)
def test_the_recent_rows_by_subject_refuse_changes(
    path: Path, statement: str, no_merge: None
) -> None:
    with SqliteLedger.create(path) as ledger:
        fill(ledger)
        rows = by_subject(path, RECENT)
        with pytest.raises(sqlite3.IntegrityError, match=f"{RECENT} is append-only"):
            SqliteStore(path).execute(statement)
        assert by_subject(path, RECENT) == rows


@pytest.mark.parametrize(
    ("statement", "first_bad", "key", "says"),
    [
        (f"DELETE FROM {RECENT} WHERE seq = 4", 4, "r2", "no row for entry 4"),
        (f"UPDATE {RECENT} SET subject = 1 WHERE seq = 5", 5, "r3", "no row for entry 5"),
        (f"INSERT INTO {RECENT} VALUES (99, 1)", 99, None, "entry 99 is no record"),
        ("INSERT INTO records_by_subject VALUES (2, 4)", 4, "r2", "twice"),
    ],
)
def test_verify_names_recent_rows_by_subject_that_disagree(
    path: Path, statement: str, first_bad: int, key: str | None, says: str, no_merge: None
) -> None:
    with SqliteLedger.create(path) as ledger:
        fill(ledger)
        assert len(by_subject(path, RECENT)) == 3
        SqliteStore(path).tamper(statement)
        report = ledger.verify()
        assert (report.ok, report.first_bad, report.key) == (False, first_bad, key)
        assert report.reason.startswith("records_by_subject, the table that finds records by")
        assert says in report.reason


def test_opening_a_ledger_keeps_the_locks_of_the_others_in_the_process(path: Path) -> None:
    """Opening a ledger never opens its file outside SQLite: closing such a descriptor
    drops every POSIX lock the process holds on the file, another process closing its
    last connection then deletes the write-ahead log under the open connections, and
    what they commit after is lost."""

    def in_another_process(statement: str) -> str:
        code = (
            f"import sqlite3; c = sqlite3.connect({str(path)!r}); "
            f"print(c.execute({statement!r}).fetchone()[0]); c.close()"
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    with SqliteLedger.create(path) as first:
        fill(first)
        assert first.records().num_rows == 3  # a read: its connection holds its lock
        SqliteLedger.open(path).close()  # another ledger on the file, in this process
        assert in_another_process("SELECT count(*) FROM records") == "3"
        assert Path(f"{path}-wal").exists()
        append(first, records_csv(f"x1,{ORG},a.b,2024-01-01,,,"))
        assert in_another_process("SELECT count(*) FROM records") == "4"
    with SqliteLedger.open(path) as again:
        assert again.records().num_rows == 4
        assert again.verify().ok


# -- crash safety ------------------------------------------------------------------------


def test_a_failure_while_writing_leaves_the_ledger_as_it_was(
    ledger: Ledger, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ledger)
    monkeypatch.setattr(f"{store.module}._CHUNK", 2)
    calls = []

    def failing_chain(previous: bytes, payloads: list[bytes]) -> list[bytes]:
        calls.append(len(payloads))
        if len(calls) == 2:
            raise OSError("disk on fire")
        return chain(previous, payloads)

    monkeypatch.setattr(f"{store.module}.chain", failing_chain)
    with pytest.raises(OSError, match="disk on fire"):
        append(ledger, records_csv(*(f"x{i},{ORG},a.b,2024-01-01,,," for i in range(5))))
    assert calls == [2, 2]
    monkeypatch.undo()
    assert snapshot(ledger) == before
    assert append(ledger, records_csv(f"x0,{ORG},a.b,2024-01-01,,,")) == (1, 0, 0)
    assert ledger.verify().ok


def test_a_process_killed_mid_batch_leaves_the_ledger_as_it_was(
    ledger: Ledger, store: Store
) -> None:
    before = snapshot(ledger)
    script = textwrap.dedent(f"""
        import os
        import pyarrow as pa
        from socialcredit.store import open_ledger

        def die(*args, **kwargs):
            os._exit(3)  # every record is inserted, the transaction not committed

        ledger = open_ledger({str(store.target)!r})
        type(ledger)._log = die
        ledger.append(pa.table({{
            "id": [f"k{{i}}" for i in range(1000)], "subject": [{ORG!r}] * 1000,
            "type": ["a.b"] * 1000, "occurred_at": ["2024-01-01"] * 1000,
        }}).cast(pa.schema([("id", pa.string()), ("subject", pa.string()),
                            ("type", pa.string()), ("occurred_at", pa.date32())])),
            source="doomed")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    with store.open() as reopened:
        assert snapshot(reopened) == before
    assert snapshot(ledger) == before
    assert append(ledger, records_csv(f"k0,{ORG},a.b,2024-01-01,,,")) == (1, 0, 0)
    assert ledger.verify().ok


# -- property: the ledger is the union of what was appended ------------------------------

record_ids = st.sampled_from([f"r{i}" for i in range(12)])


@st.composite
def batch_lists(draw: st.DrawFn) -> list[list[dict[str, object]]]:
    """Batches of records drawn from a small pool, so that batches overlap."""
    pool = {
        key: {
            "id": key,
            "subject": draw(st.sampled_from([ORG, PERSON])),
            "type": "a.b",
            "occurred_at": dt.date(2024, 1, 1) + dt.timedelta(days=i),
            "recorded_at": dt.date(2024, 1, 1) + dt.timedelta(days=i + draw(st.integers(0, 3))),
            "amount": draw(st.integers(0, 5)),
            "ref": None,
        }
        for i, key in enumerate(f"r{i}" for i in range(12))
    }
    return [
        [pool[key] for key in draw(st.lists(record_ids, max_size=8))]
        for _ in range(draw(st.integers(1, 4)))
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch_lists())
def test_the_ledger_holds_each_record_once_in_first_seen_order(
    store: Store, batches: list[list[dict[str, object]]]
) -> None:
    fresh = store.another()  # a ledger of its own for each example
    try:
        check_the_union(fresh, batches)
    finally:
        fresh.drop()


def check_the_union(fresh: Store, batches: list[list[dict[str, object]]]) -> None:
    expected: dict[object, dict[str, object]] = {}
    with fresh.create() as ledger:
        ledger.add_subjects(subjects_table((ORG, "organization"), (PERSON, "person")))
        for rows in batches:
            new = {row["id"] for row in rows} - expected.keys()
            result = ledger.append(pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA), source="p")
            assert result == (len(new), len(rows) - len(new), 0)
            for row in rows:
                expected.setdefault(row["id"], row)
        assert ledger.records().to_pylist() == list(expected.values())
        report = ledger.verify()
        assert report.ok
        assert report.entries_checked == 2 + len(expected)


def test_subjects_sent_with_a_refused_batch_are_not_registered(store: Store) -> None:
    with store.create() as ledger:
        new = subjects_table((ORG, "organization"))
        other = "91350100M000100Y43"  # a valid code nobody registers
        bad = records_csv(f"r1,{ORG},a.b,2024-01-01,,,", f"r2,{other},a.b,2024-01-01,,,")
        with pytest.raises(InvalidInput, match="not registered"):
            ledger.append(bad, subjects=new)
        assert ledger.subjects().num_rows == 0
        assert ledger.kinds([ORG, other]) == {}  # nothing remembered of the rolled-back one
        good = records_csv(f"r1,{ORG},a.b,2024-01-01,,,")
        assert ledger.append(good, subjects=new) == (1, 0, 1)
        assert ledger.subjects()["code"].to_pylist() == [ORG]
        assert ledger.kinds([ORG, other]) == {ORG: "organization"}


# -- verify: an entry past the log, a hash encoding not known -----------------------------


def test_an_entry_appended_past_the_log_of_batches_is_named(ledger: Ledger, store: Store) -> None:
    """Every write logs its batch in the transaction that appends its entries: an entry
    after the last one logged, its hash and link correct, was written behind the
    ledger's back."""
    (head,) = store.query("SELECT hash FROM records WHERE seq = 5")[0]
    forged = ledger.records().slice(2, 1)
    forged = forged.set_column(0, "id", pa.array(["forged"], pa.string()))
    forged = forged.set_column(5, "amount", pa.array([999], pa.int64()))
    digest = chain(bytes(head), record_payloads(np.array([6]), forged))[0]
    store.tamper(
        "INSERT INTO records (seq, id, subject, type, occurred_at, recorded_at, amount, ref, "
        f"hash, link) SELECT 6, 'forged', subject, type, occurred_at, recorded_at, 999, NULL, "
        f"{store.blob(digest)}, {link_of(bytes(head))} FROM records WHERE seq = 5"
    )
    report = ledger.verify()
    assert not report.ok
    assert (report.first_bad, report.key, report.entries_checked) == (6, "forged", 5)
    assert "past the log of batches" in report.reason
    assert "the last entry it records is 5" in report.reason
    assert report.head == bytes(head).hex()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE meta SET value = 'md5-xyz' WHERE key = 'hash_encoding'",
        "DELETE FROM meta WHERE key = 'hash_encoding'",
    ],
)
def test_open_a_ledger_of_another_hash_encoding(
    ledger: Ledger, store: Store, statement: str
) -> None:
    ledger.close()
    store.tamper(statement)
    found = "'md5-xyz'" if "md5" in statement else "no hash encoding"
    with pytest.raises(LedgerError, match=rf"{found}.*knows 'sha256-netstrings-1' only"):
        store.open()

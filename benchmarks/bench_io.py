"""The ledger and the file path: appending with the hash chain, and scoring from a CSV file
and from a ledger file, each beside what a user would otherwise run, in one run.

    python benchmarks/bench_io.py                 # 2,000,000 records, 200,000 subjects
    python benchmarks/bench_io.py --records 500_000 --subjects 50_000

Rows:
- ledger append (hash chain, every batch committed with synchronous=FULL) against plain
  SQLite inserts of the same rows into a WAL table with the same settings and batches;
- ``score`` from a subjects CSV and a records CSV, and from the ledger file: records/s and
  where the time goes (read and check, prepare, evaluate, write the section 7 CSV).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from socialcredit.engine import Engine
from socialcredit.ids import ric
from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.scheme import load
from socialcredit.store import SqliteLedger, read_inputs
from socialcredit.store.sqlite import _FILL_BY_SUBJECT as FILL_BY_SUBJECT
from socialcredit.store.sqlite import _SCHEMA as SCHEMA_SQL

AT = "2026-06-01"
BATCH = 100_000


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def make(n_records: int, n_subjects: int, seed: int = 5) -> tuple[pa.Table, pa.Table]:
    """Canonical subjects (valid resident numbers) and records of rongcheng's types."""
    rng = np.random.default_rng(seed)
    codes = np.array(
        ric.generate(rng, n_subjects, born_from=dt.date(1950, 1, 1), born_to=dt.date(2005, 12, 31)),
        dtype=object,
    )
    subjects = pa.table(
        {
            "code": pa.array(codes, pa.string()),
            "kind": pa.array(["person"] * n_subjects, pa.string()),
        },
        schema=SUBJECTS_SCHEMA,
    )
    types = np.array(list(load("rongcheng").scheme.records), dtype=object)
    occurred = 20089 + rng.integers(0, 700, size=n_records)
    recorded = occurred + rng.integers(0, 5, size=n_records)
    records = pa.table(
        {
            "id": pa.array([f"r{i:09d}" for i in range(n_records)], pa.string()),
            "subject": pa.array(codes[rng.integers(0, n_subjects, size=n_records)], pa.string()),
            "type": pa.array(types[rng.integers(0, len(types), size=n_records)], pa.string()),
            "occurred_at": pa.array(occurred.astype(np.int32)).cast(pa.date32()),
            "recorded_at": pa.array(recorded.astype(np.int32)).cast(pa.date32()),
            "amount": pa.array(rng.integers(0, 500, size=n_records), pa.int64()),
            "ref": pa.nulls(n_records, pa.string()),
        },
        schema=RECORDS_SCHEMA,
    )
    return subjects, records


def plain_sqlite(path: Path, records: pa.Table, *, ledger_schema: bool = False) -> float:
    """Seconds to insert the rows into a plain WAL table, batch by batch, durably.

    With ``ledger_schema``, the table and indexes are the ledger's (integer subject, type
    and ref, a 32-byte hash and a link per row; unique ids, the index by ref, and the
    table of records by subject filled per batch), without its checks and hash chain:
    what the ledger's own work adds is the difference.
    """
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA page_size=16384")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA cache_size=-131072")
    if ledger_schema:
        for sql in _LEDGER_TABLE:
            con.execute(sql)
    else:
        con.execute(
            "CREATE TABLE r (id TEXT PRIMARY KEY, subject TEXT, type TEXT, occurred INT,"
            " recorded INT, amount INT, ref TEXT)"
        )
    codes = {c: i + 1 for i, c in enumerate(pc_unique(records["subject"]))}
    kinds = {c: i + 1 for i, c in enumerate(pc_unique(records["type"]))}
    digest = bytearray(32)
    t = time.perf_counter()
    for offset in range(0, records.num_rows, BATCH):
        b = records.slice(offset, BATCH)
        if ledger_schema:
            rows: Iterable[tuple[object, ...]] = zip(
                range(offset + 1, offset + 1 + b.num_rows),
                b["id"].to_pylist(),
                [codes[c] for c in b["subject"].to_pylist()],
                [kinds[c] for c in b["type"].to_pylist()],
                b["occurred_at"].cast(pa.int32()).to_pylist(),
                b["recorded_at"].cast(pa.int32()).to_pylist(),
                b["amount"].to_pylist(),
                [0] * b.num_rows,
                [digest] * b.num_rows,
                [0] * b.num_rows,
                strict=True,
            )
            sql = "INSERT INTO records VALUES (?,?,?,?,?,?,?,nullif(?,0),?,?)"
        else:
            rows = zip(
                b["id"].to_pylist(),
                b["subject"].to_pylist(),
                b["type"].to_pylist(),
                b["occurred_at"].cast(pa.int32()).to_pylist(),
                b["recorded_at"].cast(pa.int32()).to_pylist(),
                b["amount"].to_pylist(),
                b["ref"].to_pylist(),
                strict=True,
            )
            sql = "INSERT INTO r VALUES (?,?,?,?,?,?,?)"
        con.execute("BEGIN")
        con.executemany(sql, rows)
        if ledger_schema:
            con.execute(FILL_BY_SUBJECT, (offset + 1,))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed


def pc_unique(values: pa.ChunkedArray) -> list[str]:
    return [str(v) for v in pc.unique(values).to_pylist()]


# the tables records and records_by_subject, and the index by ref
_LEDGER_TABLE = [
    sql for sql in SCHEMA_SQL if sql.startswith(("CREATE TABLE records", "CREATE INDEX"))
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--subjects", type=int, default=200_000)
    args = ap.parse_args()
    print(f"# ledger and file benchmark: {args.records:,} records, {args.subjects:,} subjects")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    subjects, records = make(args.records, args.subjects)
    n = records.num_rows
    rows: list[tuple[str, str, str]] = []
    engine = Engine(load("rongcheng").scheme)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        plain = plain_sqlite(base / "plain.sqlite", records)
        same = plain_sqlite(base / "same.sqlite", records, ledger_schema=True)
        path = base / "bench.ledger"
        with SqliteLedger.create(path) as store:
            store.add_subjects(subjects)
            t = time.perf_counter()
            for offset in range(0, n, BATCH):
                store.append(records.slice(offset, BATCH), source="bench")
            append = time.perf_counter() - t
        rows.append(
            (
                "plain SQLite insert, WAL, synchronous=FULL, batches of 100k",
                f"{plain:.2f} s",
                f"{n / plain:,.0f} rows/s",
            )
        )
        rows.append(
            (
                "plain SQLite insert into the ledger's table and indexes, same batches",
                f"{same:.2f} s",
                f"{n / same:,.0f} rows/s",
            )
        )
        rows.append(
            (
                "ledger append with hash chain and checks, same batches",
                f"{append:.2f} s",
                f"{n / append:,.0f} records/s",
            )
        )

        # score from the ledger file
        def read_ledger() -> tuple[pa.Table, pa.Table]:
            with SqliteLedger.open(path) as store:
                return store.subjects(), store.records()

        t_read, (s_tab, r_tab) = timed(read_ledger)  # type: ignore[misc]
        t_prep, prepared = timed(lambda: engine.prepare(s_tab, r_tab))
        t_eval, states = timed(lambda: engine.evaluate(prepared, AT))  # type: ignore[arg-type]
        t_csv, _ = timed(lambda: states.write_csv(io.BytesIO()))  # type: ignore[attr-defined]
        total = t_read + t_prep + t_eval + t_csv
        rows.append(
            ("score from the ledger file, total", f"{total:.2f} s", f"{n / total:,.0f} records/s")
        )
        for name, value in (
            ("read records from SQLite", t_read),
            ("prepare", t_prep),
            ("evaluate", t_eval),
            ("write section 7 CSV", t_csv),
        ):
            rows.append((f"  {name}", f"{value:.2f} s", f"{100 * value / total:.0f}%"))
        expected = states.to_csv()  # type: ignore[attr-defined]

        # score from CSV files
        s_csv, r_csv = base / "subjects.csv", base / "records.csv"
        pacsv.write_csv(subjects, s_csv)
        pacsv.write_csv(records, r_csv)
        t_read, files = timed(lambda: read_inputs(s_csv, r_csv))
        t_prep, prepared = timed(lambda: engine.prepare(files.subjects, files.records))  # type: ignore[attr-defined]
        t_eval, states = timed(lambda: engine.evaluate(prepared, AT))  # type: ignore[arg-type]
        t_csv, _ = timed(lambda: states.write_csv(io.BytesIO()))  # type: ignore[attr-defined]
        assert states.to_csv() == expected  # type: ignore[attr-defined]
        total = t_read + t_prep + t_eval + t_csv
        size = (s_csv.stat().st_size + r_csv.stat().st_size) / 1e6
        rows.append(
            (
                f"score from CSV files ({size:,.0f} MB), total",
                f"{total:.2f} s",
                f"{n / total:,.0f} records/s",
            )
        )
        for name, value in (
            ("read and check both files", t_read),
            ("prepare", t_prep),
            ("evaluate", t_eval),
            ("write section 7 CSV", t_csv),
        ):
            rows.append((f"  {name}", f"{value:.2f} s", f"{100 * value / total:.0f}%"))

    print()
    print("| measure | time | rate / share |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()

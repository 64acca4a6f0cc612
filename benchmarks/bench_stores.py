"""The two ledger stores side by side: the same records appended in batches of 100,000 to an
SQLite file and to a PostgreSQL schema, read back, and verified.

    python benchmarks/bench_stores.py                      # 1,000,000 records
    python benchmarks/bench_stores.py --records 2_000_000 \\
        --postgres postgresql://postgres@127.0.0.1:5432/test

The PostgreSQL ledger goes in a throwaway schema of the database given (default
``$SOCIALCREDIT_TEST_POSTGRES``, else ``postgresql://postgres@127.0.0.1:5432/test``),
dropped afterwards. Both stores must end with the same chain head.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
from bench_io import BATCH, make

from socialcredit.store import Ledger, PostgresLedger, SqliteLedger


def measure(ledger: Ledger, subjects: pa.Table, records: pa.Table) -> dict[str, float | str]:
    """Seconds to register, to append batch by batch, to read back and to verify."""
    n = records.num_rows
    t = time.perf_counter()
    ledger.add_subjects(subjects)
    register = time.perf_counter() - t
    t = time.perf_counter()
    for offset in range(0, n, BATCH):
        ledger.append(records.slice(offset, BATCH), source="bench")
    append = time.perf_counter() - t
    read = min(_timed(ledger.records) for _ in range(3))
    t = time.perf_counter()
    report = ledger.verify()
    verify = time.perf_counter() - t
    assert report.ok and ledger.records().equals(records)
    return {
        "register": register,
        "append": append,
        "read": read,
        "verify": verify,
        "head": report.head,
    }


def _timed(read: object) -> float:
    t = time.perf_counter()
    read()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=200_000)
    ap.add_argument(
        "--postgres",
        default=os.environ.get(
            "SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = ap.parse_args()
    subjects, records = make(args.records, args.subjects)
    n = records.num_rows
    results = {}
    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp,
        SqliteLedger.create(Path(tmp) / "bench.ledger") as lite,
    ):
        results["SQLite"] = measure(lite, subjects, records)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    ledger = PostgresLedger.create(args.postgres, schema=schema)
    try:
        results["PostgreSQL"] = measure(ledger, subjects, records)
        version = ledger._db.execute("SHOW server_version").fetchone()
    finally:
        ledger._db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        ledger.close()
    assert results["SQLite"]["head"] == results["PostgreSQL"]["head"]

    print(f"# ledger stores: {n:,} records, {args.subjects:,} subjects, batches of {BATCH:,}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, PostgreSQL "
        f"{version[0] if version else '?'}"
    )
    print()
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for key, what, count in (
        ("register", "register subjects", args.subjects),
        ("append", "append records (hash chain, checks, one transaction per batch)", n),
        ("read", "read all records back as an Arrow table", n),
        ("verify", "verify the whole chain", n + args.subjects),
    ):
        cells = [f"{r[key]:.2f} s, {count / float(r[key]):,.0f}/s" for r in results.values()]
        print(f"| {what} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""What the SQLite ledger's indexes cost an append, and what another layout would save.

Rows shaped like the ledger's ``records`` table are inserted in durable batches (WAL,
``synchronous=FULL``, the ledger's page and cache sizes) into tables that differ only in
how records are found by subject and by id, side by side in one run:

- ``ledger``: the ledger's schema (a unique index on the text id, an index on subject);
- ``side table``: no index on subject; instead a ``WITHOUT ROWID (subject, seq)`` table
  filled per batch, in the batch's transaction, by one sorted ``INSERT ... SELECT``;
- each of them with record ids that grow (``r000000001``, as agencies number them) and with
  random ids (where a unique index pays a random position per record).

The rows are made before the clock starts: the figures are SQLite's work alone (binding,
insert, indexes, commit), without the ledger's checks and hash chain.

    python benchmarks/bench_append_layouts.py
    python benchmarks/bench_append_layouts.py --records 20_000_000 --subjects 1_000_000
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BATCH = 100_000
RECORDS = (
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "subject INTEGER NOT NULL, type INTEGER NOT NULL, occurred_at INTEGER NOT NULL, "
    "recorded_at INTEGER NOT NULL, amount INTEGER NOT NULL, ref INTEGER, "
    "hash BLOB NOT NULL, link INTEGER NOT NULL)"
)
BY_REF = "CREATE INDEX records_by_ref ON records (ref) WHERE ref IS NOT NULL"
BY_SUBJECT = "CREATE INDEX records_by_subject ON records (subject)"
SIDE = (
    "CREATE TABLE records_by_subject (subject INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (subject, seq)) WITHOUT ROWID"
)
FILL_SIDE = (
    "INSERT INTO records_by_subject SELECT subject, seq FROM records WHERE seq >= ? "
    "ORDER BY subject, seq"
)
INSERT = "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"


@dataclass
class Figures:
    insert: float = 0.0
    side: float = 0.0
    commit: float = 0.0
    last: float = 0.0  # the last fifth of the batches
    lookup_us: float = 0.0
    size_mb: float = 0.0

    @property
    def total(self) -> float:
        return self.insert + self.side + self.commit


def run(folder: Path, n: int, subjects: int, side: bool, random_ids: bool) -> Figures:
    rng = np.random.default_rng(7)
    path = folder / f"{'side' if side else 'ledger'}-{'random' if random_ids else 'grow'}.db"
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("page_size = 16384", "journal_mode = WAL", "synchronous = FULL"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("PRAGMA cache_size = -131072")
    for sql in (RECORDS, BY_REF, SIDE if side else BY_SUBJECT):
        db.execute(sql)
    fig = Figures()
    batches = (n + BATCH - 1) // BATCH
    hash_ = bytearray(32)
    seq = 1
    for b in range(batches):
        size = min(BATCH, n - b * BATCH)
        ids = (
            [f"r{x:016x}" for x in rng.integers(0, 2**62, size).tolist()]
            if random_ids
            else [f"r{x:012d}" for x in range(seq, seq + size)]
        )
        rows = list(
            zip(
                range(seq, seq + size),
                ids,
                rng.integers(1, subjects + 1, size).tolist(),
                [1] * size,
                [19000] * size,
                [19001] * size,
                [-5] * size,
                [hash_] * size,
                range(seq - 1, seq - 1 + size),
                strict=True,
            )
        )
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(INSERT, rows)
        t1 = time.perf_counter()
        if side:
            db.execute(FILL_SIDE, (seq,))
        t2 = time.perf_counter()
        db.execute("COMMIT")
        t3 = time.perf_counter()
        fig.insert += t1 - t0
        fig.side += t2 - t1
        fig.commit += t3 - t2
        if b >= batches - max(1, batches // 5):
            fig.last += t3 - t0
        seq += size
    probe = rng.integers(1, subjects + 1, 2000).tolist()
    sql = (
        "SELECT r.* FROM records_by_subject AS b JOIN records AS r ON r.seq = b.seq "
        "WHERE b.subject = ? ORDER BY b.seq"
        if side
        else "SELECT * FROM records WHERE subject = ? ORDER BY seq"
    )
    t = time.perf_counter()
    for s in probe:
        db.execute(sql, (s,)).fetchall()
    fig.lookup_us = (time.perf_counter() - t) / len(probe) * 1e6
    db.close()
    fig.size_mb = sum(p.stat().st_size for p in folder.glob(f"{path.name}*")) / 1e6
    path.unlink()
    for extra in folder.glob(f"{path.name}-*"):
        extra.unlink()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=lambda s: int(s.replace("_", "")), default=2_000_000)
    parser.add_argument("--subjects", type=lambda s: int(s.replace("_", "")), default=200_000)
    args = parser.parse_args()
    n, subjects = args.records, args.subjects
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"SQLite {sqlite3.sqlite_version}; {n:,} records over {subjects:,} subjects, "
        f"batches of {BATCH:,}; load average before: {os.getloadavg()[0]:.2f}"
    )
    print(
        "| layout | ids | records/s | insert | side table | commit | last fifth, records/s "
        "| lookup by subject | file |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    folder = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    try:
        for random_ids in (False, True):
            for side in (False, True):
                f = run(folder, n, subjects, side, random_ids)
                last_n = min(n, BATCH * max(1, ((n + BATCH - 1) // BATCH) // 5))
                print(
                    f"| {'side table' if side else 'ledger'} | "
                    f"{'random' if random_ids else 'growing'} | {n / f.total:,.0f} | "
                    f"{f.insert:.2f} s | {f.side:.2f} s | {f.commit:.2f} s | "
                    f"{last_n / f.last:,.0f} | {f.lookup_us:.0f} µs | {f.size_mb:,.0f} MB |",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

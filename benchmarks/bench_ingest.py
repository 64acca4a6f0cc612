"""A batch's ingest without HTTP: ``ingest_table`` called directly, batch after batch, on
copies of one preloaded database, so that runs (and source trees) can be compared on the
same data and the time of each phase profiled.

    python benchmarks/bench_ingest.py --store postgres                  # 1M subjects, 19M records
    python benchmarks/bench_ingest.py --store sqlite --subjects 100_000 --records 1_000_000
    python benchmarks/bench_ingest.py --store postgres --compare before=../old/src --rounds 2
    python benchmarks/bench_ingest.py --store postgres --profile /tmp/prof   # py-spy, per run

The template database (subjects registered and records appended with the store API, as
``bench_service.py`` preloads, an agency added) is made once and kept: an SQLite file under
``$BENCH_TMP`` (default: the system's temporary directory), or a PostgreSQL database
``bench_ingest_<subjects>_<records>`` on the server of ``$SOCIALCREDIT_TEST_POSTGRES``
(database ``test`` by default); ``--fresh`` makes it again. Each run works on a copy (a
file copy; ``CREATE DATABASE ... TEMPLATE``) in a process of its own with the source tree
measured on its ``PYTHONPATH``: it opens the service as a server process does (the schemes
``rongcheng`` and ``court_dishonest_debtors``, the notices to a file, delivery left to
another process), then sends ``--batches`` batches of 100,000 new records (each with its
notices), and reports the seconds of each. Trees compared run in turn, ``--rounds`` times,
each on its own copy. A tree compared must read the template's layout (the same schema
version).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_service import BATCH, TYPES, codes, preload


def server_url() -> str:
    return os.environ.get("SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def database_url(name: str) -> str:
    base = server_url().split("?", 1)[0]
    return base.rsplit("/", 1)[0] + "/" + name


def admin(sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(server_url().split("?", 1)[0], autocommit=True) as db:
        cursor = db.execute(sql)
        return cursor.fetchall() if cursor.description else []


def cli(database: str, *args: str) -> str:
    exe = str(Path(sys.executable).parent / "socialcredit")
    env = {**os.environ, "SOCIALCREDIT_DATABASE": database}
    return subprocess.run(
        [exe, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


class Template:
    """The preloaded database every run copies."""

    def __init__(self, store: str, subjects: int, records: int, tmp: Path) -> None:
        self.store = store
        self.name = f"bench_ingest_{subjects}_{records}"
        self.subjects, self.records = subjects, records
        self.file = tmp / f"{self.name}.ledger"
        self.key_file = tmp / f"{self.name}.{store}.key"

    @property
    def database(self) -> str:
        return str(self.file) if self.store == "sqlite" else database_url(self.name)

    def exists(self) -> bool:
        if not self.key_file.exists():
            return False
        if self.store == "sqlite":
            return self.file.exists()
        return bool(admin(f"SELECT 1 FROM pg_database WHERE datname = '{self.name}'"))

    def drop(self) -> None:
        self.key_file.unlink(missing_ok=True)
        if self.store == "sqlite":
            for path in self.file.parent.glob(self.file.name + "*"):
                path.unlink()
        else:
            admin(f'DROP DATABASE IF EXISTS "{self.name}"')

    def make(self) -> None:
        self.drop()
        if self.store == "postgres":
            admin(f'CREATE DATABASE "{self.name}"')
        cli(self.database, "db", "upgrade")
        key = cli(self.database, "agency", "add", "Bench agency", "--types", ",".join(TYPES))
        persons, orgs = codes(self.subjects)
        took = preload(self.database, persons, orgs, self.records, self.store)
        if self.store == "postgres":
            import psycopg

            with psycopg.connect(self.database, autocommit=True) as db:
                db.execute("VACUUM ANALYZE")
        else:
            analyze_sqlite(self.database)
        self.key_file.write_text(key)
        print(f"template {self.name} ({self.store}) made in {took:.0f} s", flush=True)

    def copy(self, work: Path) -> str:
        """A copy of the template to run on; its database."""
        if self.store == "sqlite":
            target = work / "run.ledger"
            for path in work.glob("run.ledger*"):
                path.unlink()
            shutil.copyfile(self.file, target)  # no connection to either is open here
            return str(target)
        name = f"{self.name}_run"
        admin(f'DROP DATABASE IF EXISTS "{name}"')
        admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}" STRATEGY FILE_COPY')
        return database_url(name)

    def discard(self, database: str) -> None:
        if self.store == "postgres":
            admin(f'DROP DATABASE IF EXISTS "{database.rsplit("/", 1)[1]}"')


def analyze_sqlite(database: str) -> None:
    import sqlite3

    with sqlite3.connect(database) as db:
        db.execute("PRAGMA optimize")


def run(
    args: argparse.Namespace, template: Template, source: str | None, work: Path
) -> list[float]:
    """One run in a process of its own; the seconds of each batch."""
    database = template.copy(work)
    job = {
        "database": database,
        "key": template.key_file.read_text(),
        "subjects": template.subjects,
        "first": template.records,
        "batches": args.batches,
        "notices": str(work / "notices.jsonl"),
    }
    env = {**os.environ}
    if source is not None:
        env["PYTHONPATH"] = os.path.abspath(source)
    command = [sys.executable, os.path.abspath(__file__), "--job", json.dumps(job)]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        out = args.profile / f"{template.store}-{int(time.time())}.svg"
        spy = str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--idle", "--threads", "-o", str(out), "--", *command]
    try:
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as exc:
        print(exc.stdout, exc.stderr, file=sys.stderr)
        raise
    finally:
        template.discard(database)
    line = [x for x in done.stdout.splitlines() if x.startswith("BATCHES ")][-1]
    return [float(x) for x in line.split()[1:]]


def job(given: str) -> None:
    """Open the service on a copy and send the batches (the measured process)."""
    import pyarrow as pa

    from socialcredit.service.core import Service
    from socialcredit.service.credentials import authenticate
    from socialcredit.service.ingest import ingest_table
    from socialcredit.service.settings import Settings
    from socialcredit.store.service_db import upgrade

    spec = json.loads(given)
    upgrade(spec["database"])  # the migrations of the tree that runs, if it has more
    settings = Settings(
        database=spec["database"],
        schemes=["rongcheng", "court_dishonest_debtors"],
        notice_sink="file",
        notice_file=spec["notices"],
        existing_records="count",  # the kept records count as recorded: no notices first
    )
    persons, orgs = codes(spec["subjects"])
    everyone = np.array(persons + orgs)
    rng = np.random.default_rng(2)
    types = np.array(TYPES)
    seconds = []
    wal = _WalMeter(spec["database"])
    with Service.open(settings, wake=lambda: None) as svc:
        agency = authenticate(svc.db, spec["key"])
        assert agency is not None
        for b in range(spec["batches"]):
            i = np.arange(spec["first"] + b * BATCH, spec["first"] + (b + 1) * BATCH)
            table = pa.table(
                {
                    "id": pa.array(np.char.add("r", i.astype(str))),
                    "subject": pa.array(everyone[rng.integers(0, len(everyone), len(i))]),
                    "type": pa.array(types[i % len(types)]),
                    "occurred_at": pa.array(
                        np.datetime64("2024-01-01") + (i % 400).astype("timedelta64[D]"),
                        pa.date32(),
                    ),
                    "amount": pa.array((i * 37) % 5000, pa.int64()),
                    "ref": pa.nulls(len(i), pa.string()),
                }
            )
            wal.start()
            t = time.perf_counter()
            done = ingest_table(svc, agency, table)
            seconds.append(time.perf_counter() - t)
            assert done.appended == len(i), done
            print(
                f"batch {b + 1}: {seconds[-1]:.2f} s, {done.notices:,} notices{wal.written()}",
                flush=True,
            )
    print("BATCHES " + " ".join(f"{s:.4f}" for s in seconds), flush=True)


class _WalMeter:
    """PostgreSQL: the write-ahead log the server wrote during a batch (all sessions)."""

    def __init__(self, database: str) -> None:
        self._db: Any = None
        self._at = 0
        if database.startswith("postgresql"):
            import psycopg

            self._db = psycopg.connect(database, autocommit=True)

    def _lsn(self) -> int:
        row = self._db.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        return int(row[0])

    def start(self) -> None:
        if self._db is not None:
            self._at = self._lsn()

    def written(self) -> str:
        if self._db is None:
            return ""
        return f", {(self._lsn() - self._at) / 1e6:,.0f} MB of WAL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--subjects", type=number, default=1_000_000)
    parser.add_argument("--records", type=number, default=19_000_000, help="preloaded")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="make the template again")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of each run here")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=SRC",
        help="also run another source tree (its src directory); repeatable",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job(args.job)
        return
    trees: list[tuple[str, str | None]] = [
        (label, src) for label, _, src in (c.partition("=") for c in args.compare)
    ]
    trees.append(("now", None))
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir())
    template = Template(args.store, args.subjects, args.records, tmp)
    print(
        f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{dt.date.today()}; {args.store}, {args.subjects:,} subjects, {args.records:,} "
        f"records preloaded, {args.batches} batches of {BATCH:,}",
        flush=True,
    )
    if args.fresh or not template.exists():
        template.make()
    seconds: dict[str, list[list[float]]] = {label: [] for label, _ in trees}
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        for r in range(args.rounds):
            for label, src in trees:
                load = os.getloadavg()[0]
                took = run(args, template, src, Path(work))
                seconds[label].append(took)
                print(
                    f"round {r + 1} {label}: "
                    + " ".join(f"{s:.2f}" for s in took)
                    + f" s (load {load:.1f})",
                    flush=True,
                )
    print("\n| tree | first batch, s | later batches, median s | records/s (later batches) |")
    print("|---|---|---|---|")
    for label, runs in seconds.items():
        first = statistics.median(r[0] for r in runs)
        later = [s for r in runs for s in r[1:]] or [s for r in runs for s in r]
        median = statistics.median(later)
        print(f"| {label} | {first:.2f} | {median:.2f} | {BATCH / median:,.0f} |")


if __name__ == "__main__":
    main()

"""The HTTP service under load, on loopback: batch ingest, decisions and the public lookup.

    python benchmarks/bench_service.py                          # both stores
    python benchmarks/bench_service.py --subjects 1_000_000 --records 20_000_000 \
        --ingest 1_000_000 --refresh                            # the sizes of the targets
    python benchmarks/bench_service.py --subjects 50_000 --records 500_000 \
        --compare before=../old/src                             # side by side with old code

For each store (and each source tree compared) it prepares a fresh database (`socialcredit
db upgrade`), registers an agency and an operator, loads the bulk of the records with the
store API when ``--ingest`` is less than ``--records`` (as ``socialcredit records import``
does: no notices; recorded in the past, so they count today, the server being started with
``existing_records = count``; every database at the same
time, before any server is measured; a compared tree's with that tree's own store, so its
server finds the layout it reads), then, one database after the other, starts
`socialcredit serve` with the schemes `rongcheng` and `court_dishonest_debtors` and
``--workers`` processes (several counts, ``--workers 1,2``: one server after the other on
the same database, side by side in the table; the ingest is measured with the first), and
then:

* ingest: posts the other records as CSV in batches of 100,000 (each acknowledged only
  once durable in the ledger with its notices in the outbox), on one connection, or on
  ``--ingest-clients`` at once (the agency's batches sent together), and reports acknowledged
  records per second (from the first batch sent to the last acknowledged); then waits
  for the server to deliver those notices (the time is reported);
* the first decision, which scores the ledger (reported), then one request on 64
  connections so that every server process is ready;
* decisions: ``wrk`` (Debian's package) with ``--clients`` keep-alive connections asks
  ``GET /v1/decisions`` for random subjects for ``--seconds``, and reports requests per
  second, latency percentiles and the CPU time of the server's processes per request;
* public lookup: the same for ``GET /v1/public/{code}`` (rate limit raised for the run);
* with ``--refresh``, one more batch is sent after the loads (a batch kept apart for each
  server), and the first decision after it timed: the states scored again.

It reports the peak memory of the server's processes, the least memory the machine had
available, and the load average of the machine before each phase. The load generator runs
on the same machine as the server, so the figures are a floor. The PostgreSQL database is
``$SOCIALCREDIT_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``), in
a throwaway schema, analyzed after the preload.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from socialcredit.ids import ric, uscc

BATCH = 100_000
PRELOAD_BATCH = 1_000_000
TYPES = [
    "traffic.violation",
    "finance.overdue",
    "charity.donation",
    "court.judgment_unfulfilled",
    "utility.late_payment",
]
ACTIONS = ["travel.air", "travel.rail.high_speed", "loan.preferential_rate"]


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    exe = str(Path(sys.executable).parent / "socialcredit")
    return subprocess.run(
        [exe, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def codes(n_subjects: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(1)
    persons = ric.generate(
        rng, n_subjects * 9 // 10, born_from=dt.date(1950, 1, 1), born_to=dt.date(2005, 12, 31)
    )
    orgs = uscc.generate(rng, n_subjects - len(persons))
    return persons, orgs


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.read()


def preload(
    database: str, persons: list[str], orgs: list[str], n_records: int, name: str = ""
) -> float:
    """Register the subjects and append ``n_records`` records with the store API, as
    ``socialcredit subjects import`` and ``records import`` do (no notices: they are not
    sent by an agency through the service). Recorded in the past (0 to 29 days after they
    occurred), so that they count today. Returns the seconds it took."""
    import pyarrow as pa

    from socialcredit.store import open_ledger

    t = time.perf_counter()
    everyone = np.array(persons + orgs)
    kinds = ["person"] * len(persons) + ["organization"] * len(orgs)
    rng = np.random.default_rng(4)
    types = np.array(TYPES)
    start_day = np.datetime64("2024-01-01")
    with open_ledger(database) as ledger:
        for lo in range(0, len(everyone), PRELOAD_BATCH):
            hi = lo + PRELOAD_BATCH
            ledger.add_subjects(
                pa.table({"code": everyone[lo:hi], "kind": kinds[lo:hi]}), source="bench preload"
            )
        for lo in range(0, n_records, PRELOAD_BATCH):
            i = np.arange(lo, min(lo + PRELOAD_BATCH, n_records))
            occurred = start_day + (i % 400).astype("timedelta64[D]")
            table = pa.table(
                {
                    "id": pa.array(np.char.add("r", i.astype(str))),
                    "subject": pa.array(everyone[rng.integers(0, len(everyone), len(i))]),
                    "type": pa.array(types[i % len(types)]),
                    "occurred_at": pa.array(occurred, pa.date32()),
                    "recorded_at": pa.array(
                        occurred + (i % 30).astype("timedelta64[D]"), pa.date32()
                    ),
                    "amount": pa.array((i * 37) % 5000, pa.int64()),
                    "ref": pa.nulls(len(i), pa.string()),
                }
            )
            ledger.append(table, source="bench preload")
            done = lo + len(i)
            print(
                f"  {name} preloaded {done:,} records, {time.perf_counter() - t:.0f} s", flush=True
            )
    return time.perf_counter() - t


def ingest(
    port: int,
    agency: str,
    persons: list[str],
    orgs: list[str],
    first: int,
    n_records: int,
    register: bool = True,
    clients: int = 1,
) -> float:
    """Send records ``first`` to ``n_records`` as CSV batches (made before the clock
    starts) on ``clients`` connections at once, each sending its next batch once the last
    is acknowledged; records/s acknowledged, from the first batch sent to the last
    acknowledged."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    subjects = [{"code": c, "kind": "person"} for c in persons] + [
        {"code": c, "kind": "organization"} for c in orgs
    ]
    for start in range(0, len(subjects) if register else 0, BATCH):
        status, body = call(
            conn,
            "POST",
            "/v1/records",
            {"subjects": subjects[start : start + BATCH], "records": []},
            agency,
        )
        assert status == 200, body[:500]
    conn.close()
    everyone = persons + orgs
    rng = random.Random(2)
    bodies = []
    for start in range(first, n_records, BATCH):
        lines = ["id,subject,type,occurred_at,amount"] + [
            f"r{i},{everyone[rng.randrange(len(everyone))]},{TYPES[i % len(TYPES)]},"
            f"{dt.date(2024, 1, 1) + dt.timedelta(days=i % 400)},{(i * 37) % 5000}"
            for i in range(start, min(start + BATCH, n_records))
        ]
        bodies.append(("\n".join(lines) + "\n").encode())
    if not bodies:
        return 0.0
    queue = list(reversed(bodies))
    taking = threading.Lock()
    failures: list[BaseException] = []

    def send() -> None:
        mine = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while True:
                with taking:
                    if not queue or failures:
                        return
                    data = queue.pop()
                mine.request(
                    "POST",
                    "/v1/records",
                    body=data,
                    headers={"Content-Type": "text/csv", "Authorization": f"Bearer {agency}"},
                )
                answer = mine.getresponse()
                status, body = answer.status, answer.read()
                assert status == 200, body[:500]
        except BaseException as exc:
            failures.append(exc)
        finally:
            mine.close()

    t = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t
    if failures:
        raise failures[0]
    return (n_records - first) / elapsed


WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local key = "%(key)s"
math.randomseed(%(seed)d)
request = function()
  local headers = {}
  if key ~= "" then headers["Authorization"] = "Bearer " .. key end
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%d\\n", summary.requests,
    summary.duration, summary.errors.status, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def load(
    port: int, paths: list[str], key: str | None, clients: int, seconds: float, tmp: Path
) -> dict[str, float]:
    """Run ``wrk`` (a C load generator, keep-alive connections) against ``paths``."""
    listing = tmp / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = tmp / "load.lua"
    script.write_text(WRK_SCRIPT % {"paths": listing, "key": key or "", "seed": 3})
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(clients),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"wrk failed: {done.stderr}{done.stdout}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    requests, micros, status_errors, p50, p99, socket_errors = line.split()[1:]
    return {
        "requests": int(requests),
        "per_second": int(requests) / (int(micros) / 1e6),
        "p50_ms": float(p50) / 1000,
        "p99_ms": float(p99) / 1000,
        "errors": int(status_errors) + int(socket_errors),
        "wrk_cpu_us": (
            cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu_seconds(used)
        )
        / max(1, int(requests))
        * 1e6,
    }


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class Watcher:
    """The server's processes (the supervisor and its children): CPU seconds used, and the
    peak of their resident memory, sampled on a thread; and the least memory the machine
    had available meanwhile."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.available = available()
        self._stop = False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def pids(self) -> list[int]:
        found = [self.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.pid:
                    found.append(int(entry.name))
        return found

    def cpu(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def _sample(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            self.available = min(self.available, available())
            time.sleep(0.5)

    def close(self) -> None:
        self._stop = True


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def available() -> int:
    """The machine's available memory, bytes (``MemAvailable``)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def pending_notices(database: str) -> int:
    from socialcredit.service.notices import pending_notices as pending
    from socialcredit.store.service_db import ServiceDB

    db = ServiceDB.connect(database)
    try:
        if db.version() >= 4:
            return pending(db)
        # a tree compared from before version 4: an outbox row per notice
        row = db.one("SELECT count(*) FROM svc_outbox WHERE delivered_at IS NULL")
        return int(row[0]) if row else 0
    finally:
        db.close()


@dataclass
class Setup:
    """A database prepared for the servers of one store and one source tree."""

    store: str
    label: str
    source: str | None
    database: str
    schema: str | None
    env: dict[str, str]
    agency: str = ""
    operator: str = ""


def setup(store: str, label: str, source: str | None, tmp: Path) -> Setup:
    """A fresh database (``db upgrade``) with an agency and an operator."""
    pg = os.environ.get("SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_{uuid.uuid4().hex[:12]}" if store == "postgres" else None
    database = str(tmp / f"{store}-{label}.ledger") if schema is None else f"{pg}?schema={schema}"
    env = {
        **os.environ,
        "SOCIALCREDIT_NOTICE_FILE": str(tmp / f"{store}-{label}-notices.jsonl"),
        "SOCIALCREDIT_PUBLIC_RATE": "100000000",
        "SOCIALCREDIT_PUBLIC_BURST": "100000000",
        "SOCIALCREDIT_DATABASE": database,
        # the preloaded records count as recorded, as before the schemes' days in force
        # (a first start under the default, notify, would write their notices first)
        "SOCIALCREDIT_EXISTING_RECORDS": "count",
    }
    if source:  # the server runs the code of another source tree (a "before")
        env["PYTHONPATH"] = os.path.abspath(source)
    done = Setup(store, label, source, database, schema, env)
    cli("db", "upgrade", env=env)
    done.agency = cli("agency", "add", "Bench agency", "--types", ",".join(TYPES), env=env)
    done.operator = cli("key", "add", "Bench operator", "--role", "operator", env=env)
    return done


def preload_all(setups: list[Setup], persons: list[str], orgs: list[str], n: int) -> None:
    """Preload every database at the same time (a process each), before any server is
    measured. A compared source tree's database is written by that tree's own store (a
    process of its own, with the same codes), in the layout its server reads."""
    context = multiprocessing.get_context("fork")
    forked = []
    spawned = []
    for one in setups:
        if one.source is None:
            job = context.Process(
                target=_preload_job, args=(one.store, one.label, one.database, persons, orgs, n)
            )
            job.start()
            forked.append(job)
            continue
        given = json.dumps([one.store, one.label, one.database, len(persons) + len(orgs), n])
        spawned.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--preload-job", given],
                env={**os.environ, "PYTHONPATH": os.path.abspath(one.source)},
            )
        )
    for job in forked:
        job.join()
    failed = any(job.exitcode for job in forked)
    failed = any([job.wait() for job in spawned]) or failed
    if failed:
        raise SystemExit("a preload failed")
    for one in setups:
        analyze(one)


def analyze(one: Setup) -> None:
    """PostgreSQL: gather the planner's statistics of the schema's tables after the bulk
    load, as autovacuum does in time (a server with autovacuum off never would: without
    statistics, reading one subject's records is planned as a parallel scan, JIT-compiled,
    for every organization's public lookup)."""
    if one.schema is None:
        return
    import psycopg

    pg = one.database.split("?", 1)[0]
    with psycopg.connect(pg, autocommit=True) as db:
        tables = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (one.schema,)
        ).fetchall()
        for (table,) in tables:
            db.execute(f'ANALYZE "{one.schema}"."{table}"')


def _preload_job(
    store: str, label: str, database: str, persons: list[str], orgs: list[str], n: int
) -> None:
    loaded = preload(database, persons, orgs, n, f"{store} {label}")
    print(f"{store} {label}: {n:,} records loaded with the store API in {loaded:.0f} s", flush=True)


def drop(one: Setup) -> None:
    """Drop the PostgreSQL schema of a setup."""
    if one.schema is not None:
        import psycopg

        pg = one.database.split("?", 1)[0]
        with psycopg.connect(pg, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{one.schema}" CASCADE')


def bench(
    one: Setup,
    workers: list[int],
    persons: list[str],
    orgs: list[str],
    first: int,
    args: argparse.Namespace,
    tmp: Path,
) -> list[dict[str, Any]]:
    """Run a server on a prepared database with each count of ``workers``."""
    results = []
    for run, n in enumerate(workers):
        env = {**one.env, "SOCIALCREDIT_WORKERS": str(n)}
        result: dict[str, Any] = {
            "store": one.store,
            "label": one.label,
            "workers": n,
            "preloaded": first,
            "load": [loadavg()],
        }
        results.append(
            run_server(
                env,
                one.database,
                one.agency,
                one.operator,
                persons,
                orgs,
                first,
                args,
                tmp,
                result,
                run=run,
                runs=len(workers),
            )
        )
        print(json.dumps(results[-1], default=str), flush=True)
    return results


def run_server(
    env: dict[str, str],
    database: str,
    agency: str,
    operator: str,
    persons: list[str],
    orgs: list[str],
    first: int,
    args: argparse.Namespace,
    tmp: Path,
    result: dict[str, Any],
    *,
    run: int,
    runs: int,
) -> dict[str, Any]:
    """One server on the prepared database: the ingest (the first run only), the loads and
    the refresh (with its own batch, the ``run``-th of the ``runs`` kept apart)."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "socialcredit"),
            "serve",
            "--port",
            str(port),
            "-s",
            "rongcheng",
            "-s",
            "court_dishonest_debtors",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = Watcher(server.pid)
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                if call(conn, "GET", "/v1/schemes")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        last = args.records - (BATCH * runs if args.refresh else 0)
        result["ingest"] = None
        if run == 0:
            result["ingest"] = ingest(
                port,
                agency,
                persons,
                orgs,
                first,
                last,
                register=not first,
                clients=args.ingest_clients,
            )
        t = time.perf_counter()
        while pending_notices(database) and time.perf_counter() - t < args.drain:
            time.sleep(0.5)
        result["drained"] = time.perf_counter() - t
        result["drain_left"] = pending_notices(database)
        everyone = persons + orgs
        rng = random.Random(3)
        sample = [everyone[rng.randrange(len(everyone))] for _ in range(5000)]
        decisions = [
            f"/v1/decisions?subject={c}&action={ACTIONS[i % 3]}&scheme="
            f"{'court_dishonest_debtors' if i % 2 else 'rongcheng'}&purpose=bench"
            for i, c in enumerate(sample)
        ]
        lookups = [f"/v1/public/{c}?purpose=bench" for c in sample]
        t = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
        call(conn, "GET", decisions[0], key=operator)  # the first decision scores the ledger
        result["warm"] = time.perf_counter() - t
        for k in range(64):  # every process has answered (and mapped what it reads)
            warming = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            call(warming, "GET", decisions[k], key=operator)
            call(warming, "GET", lookups[k])
            warming.close()
        for what, paths, key in (("decisions", decisions, operator), ("lookup", lookups, None)):
            result["load"].append(loadavg())
            cpu = watcher.cpu()
            result[what] = load(port, paths, key, args.clients, args.seconds, tmp)
            result[what]["cpu_us"] = (watcher.cpu() - cpu) / max(1, result[what]["requests"]) * 1e6
        if args.refresh:  # one more batch, then the first decision after it
            lo = last + run * BATCH
            ingest(port, agency, persons, orgs, lo, lo + BATCH, register=False)
            t = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
            call(conn, "GET", decisions[1], key=operator)
            result["refresh"] = time.perf_counter() - t
        conn.close()
        result["rss"] = watcher.peak
        result["available"] = watcher.available
        return result
    finally:
        watcher.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(300)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _at_least_one(given: str) -> int:
    n = int(given)
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser.add_argument("--subjects", type=number, default=100_000)
    parser.add_argument("--records", type=number, default=1_000_000)
    parser.add_argument(
        "--ingest",
        type=number,
        help="records sent over HTTP (default: all); the rest are loaded first with the "
        "store API, as `socialcredit records import` does",
    )
    parser.add_argument("--clients", type=int, default=32, help="open connections")
    parser.add_argument(
        "--ingest-clients",
        type=_at_least_one,
        default=1,
        help="connections sending the agency's batches at once (at least 1); each sends "
        "its next batch once its last is acknowledged",
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[2],
        help="server processes; several counts (1,2) run one server after the other on "
        "the same database",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=600.0,
        help="seconds to wait for the notices of the ingest to be delivered",
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="keep the last batch for after the load, then time the first "
        "decision after it (the states scored again)",
    )
    parser.add_argument(
        "--compare-workers", type=int, default=1, help="server processes of the compared trees"
    )
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=SRC",
        help="also run the server from another source tree (its src directory), "
        "side by side; repeatable",
    )
    args = parser.parse_args()
    sent = min(args.records, args.ingest if args.ingest is not None else args.records)
    if args.refresh and sent < BATCH * (len(args.workers) + 1):
        raise SystemExit(
            f"--refresh keeps a batch of {BATCH:,} records apart for each server: --ingest "
            f"must be at least {BATCH * (len(args.workers) + 1):,}"
        )
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    configs = [(label, src) for label, _, src in (c.partition("=") for c in args.compare)]
    configs.append(("now", None))
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {dt.date.today()}; {args.subjects:,} subjects, "
        f"{args.records:,} records; wrk, {args.clients} connections for {args.seconds:g} s; "
        f"{'/'.join(map(str, args.workers))} server processes; batches sent on "
        f"{args.ingest_clients} connection(s) at once",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    persons, orgs = codes(args.subjects)
    first = args.records - sent
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        setups: list[Setup] = []
        try:
            for store in stores:
                for label, src in configs:
                    setups.append(setup(store, label, src, Path(tmp)))
            if first:
                preload_all(setups, persons, orgs, first)
            for one in setups:
                workers = [args.compare_workers] if one.source else args.workers
                results += bench(one, workers, persons, orgs, first, args, Path(tmp))
        finally:
            for one in setups:
                drop(one)
    print(
        "\n| measure | "
        + " | ".join(f"{r['store']} {r['label']}, {r['workers']} proc." for r in results)
        + " |"
    )
    print("|---|" + "---|" * len(results))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("records loaded with the store API first", lambda r: f"{r['preloaded']:,}"),
        (
            "batch ingest over HTTP, records/s acknowledged durably",
            lambda r: "-" if r["ingest"] is None else f"{r['ingest']:,.0f}",
        ),
        (
            "notices of the ingest delivered after, s",
            lambda r: (
                "-"
                if r["ingest"] is None
                else f"{r['drained']:.0f}"
                + (f" ({r['drain_left']:,} left)" if r["drain_left"] else "")
            ),
        ),
        ("first decision (scores the ledger), s", lambda r: f"{r['warm']:.1f}"),
        ("decisions, requests/s", lambda r: f"{r['decisions']['per_second']:,.0f}"),
        (
            "decisions, p50 / p99 ms",
            lambda r: f"{r['decisions']['p50_ms']:.1f} / {r['decisions']['p99_ms']:.1f}",
        ),
        ("decisions, server CPU per request, µs", lambda r: f"{r['decisions']['cpu_us']:.0f}"),
        (
            "decisions, load generator CPU per request, µs",
            lambda r: f"{r['decisions']['wrk_cpu_us']:.0f}",
        ),
        ("public lookup, requests/s", lambda r: f"{r['lookup']['per_second']:,.0f}"),
        (
            "public lookup, p50 / p99 ms",
            lambda r: f"{r['lookup']['p50_ms']:.1f} / {r['lookup']['p99_ms']:.1f}",
        ),
        ("public lookup, server CPU per request, µs", lambda r: f"{r['lookup']['cpu_us']:.0f}"),
        (
            "public lookup, load generator CPU per request, µs",
            lambda r: f"{r['lookup']['wrk_cpu_us']:.0f}",
        ),
        ("non-200 answers", lambda r: f"{r['decisions']['errors'] + r['lookup']['errors']}"),
        (
            "first decision after one more batch, s",
            lambda r: f"{r['refresh']:.1f}" if "refresh" in r else "-",
        ),
        ("server memory, peak RSS of all its processes, GB", lambda r: f"{r['rss'] / 1e9:.2f}"),
        ("machine memory available, least, GB", lambda r: f"{r['available'] / 1e9:.1f}"),
        (
            "load average at start / before decisions / before lookups",
            lambda r: " / ".join(f"{x:.1f}" for x in r["load"]),
        ),
    ]
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")


if __name__ == "__main__" and sys.argv[1:2] == ["--preload-job"]:  # see preload_all
    _store, _label, _database, _subjects, _n = json.loads(sys.argv[2])
    _preload_job(_store, _label, _database, *codes(_subjects), _n)
elif __name__ == "__main__":
    main()

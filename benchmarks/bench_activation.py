"""A scheme newly in force on a ledger that already holds records: the service's first
start writes the notices of the adverse records already there, timed phase by phase.

    python benchmarks/bench_activation.py                       # both stores, 2M records
    python benchmarks/bench_activation.py --store postgres --subjects 1_000_000 \
        --records 20_000_000                                    # the sizes of the targets

For each store it prepares a fresh database (``socialcredit.store.service_db.upgrade``): an
SQLite file under ``$BENCH_TMP`` (default ``/work/benchtmp``), or a throwaway schema
``bench_act_<hex>`` of ``$SOCIALCREDIT_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards. It registers the
subjects and appends the records with the store API, as ``bench_service.py`` preloads them
(its ``codes`` and ``preload``; every database at once, a process each; PostgreSQL's
tables analyzed after), as ``socialcredit records import`` would: no notices. Then, one
store after the other, a fresh process (so that its peak memory is the activation's alone)
opens the service on it as a server process does, with the schemes ``rongcheng`` and
``court_dishonest_debtors``, ``existing_records = notify``, the notices to a file and
their delivery left to another process (``wake``): the first start of those schemes, which
writes the notice of every adverse record already there that could still take effect.
It reports the seconds of the whole open and of its phases, measured by timing wrappers
put around the functions ``socialcredit.service.activation`` calls:

* reading the ledger: the ledger's ``subjects()`` and ``records()``;
* choosing the records (``noticed_records``, once per scheme);
* who sent each record: ``Ledger.record_sources`` (the log of batches, read beside the
  records), or, for a ledger whose log misses a write, ``Ledger.sources`` of the chosen
  ids, and in it the ledger's ``_existing`` (the records found again by id) and
  ``_sources_of`` (the write of each entry);
* the senders matched to the records (``existing_notices`` less its notice texts);
* building the notice texts (``NoticeTexts.adverse``);
* writing them (``write_notices``);
* the rest of the activation (the kinds of the records' subjects, its transaction and
  commit), and the rest of the open;

the notices written per scheme (``svc_schemes_in_force``), the peak resident memory of the
process, and then the first ``deliver`` of those notices to the file sink. The load
average of the machine is printed before each store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_service import Setup, codes, drop, loadavg, preload_all

SCHEMES = ["rongcheng", "court_dishonest_debtors"]


def memory(field: str) -> int:
    """A line of ``/proc/self/status`` (``VmHWM``, ``VmRSS``), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Phases:
    """Seconds spent in the functions the activation calls, while it runs."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.active = False  # only the calls made by the activation count

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, fn: Callable[..., Any]) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return fn(*args, **kwargs)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t)

        return wrapper


def instrument(phases: Phases) -> None:
    """Put the timing wrappers in place (in this process only)."""
    from socialcredit.service import activation
    from socialcredit.store.base import Ledger
    from socialcredit.store.postgres import PostgresLedger
    from socialcredit.store.sqlite import SqliteLedger

    for cls in (SqliteLedger, PostgresLedger):
        cls.subjects = phases.timed("read", cls.subjects)
        cls.records = phases.timed("read", cls.records)
        # inside Ledger.sources: the chosen records found again by id, and the writes'
        # sources of their entries
        cls._existing = phases.timed("sources_existing", cls._existing)
        cls._sources_of = phases.timed("sources_of", cls._sources_of)
    Ledger.sources = phases.timed("sources", Ledger.sources)
    Ledger.record_sources = phases.timed("sources", Ledger.record_sources)
    activation.write_notices = phases.timed("write", activation.write_notices)

    class TimedTexts(activation.NoticeTexts):
        adverse = phases.timed("texts", activation.NoticeTexts.adverse)

    activation.NoticeTexts = TimedTexts

    activation.noticed_records = phases.timed("choose", activation.noticed_records)
    existing = activation.existing_notices

    def existing_notices(*args: Any, **kwargs: Any) -> Any:
        texts = phases.seconds.get("texts", 0.0)
        t = time.perf_counter()
        try:
            return existing(*args, **kwargs)
        finally:
            end = time.perf_counter()
            phases.add("match", end - t - (phases.seconds.get("texts", 0.0) - texts))
            phases.add("existing", end - t)

    activation.existing_notices = existing_notices

    activate = activation.activate

    def timed_activate(*args: Any, **kwargs: Any) -> int:
        phases.active = True
        t = time.perf_counter()
        try:
            return int(activate(*args, **kwargs))
        finally:
            phases.add("activate", time.perf_counter() - t)
            phases.active = False

    activation.activate = timed_activate  # Service.__init__ imports it when it runs


def job(given: str) -> None:
    """Open the service on the prepared database, with the timing wrappers, then deliver
    once; print the figures as a JSON line (the measured process)."""
    spec = json.loads(given)
    from socialcredit.service.activation import in_force
    from socialcredit.service.core import Service
    from socialcredit.service.notices import deliver
    from socialcredit.service.settings import Settings

    phases = Phases()
    instrument(phases)
    settings = Settings(
        database=spec["database"],
        schemes=SCHEMES,
        notice_sink="file",
        notice_file=spec["notices"],
        existing_records="notify",
    )
    rss_before = memory("VmRSS")
    t = time.perf_counter()
    svc = Service.open(settings, wake=lambda: None)
    opened = time.perf_counter() - t
    peak_open = memory("VmHWM")
    try:
        per_scheme = {sid: a.notices for sid, a in in_force(svc.db).items()}
        t = time.perf_counter()
        delivered, failed = deliver(svc)
        delivering = time.perf_counter() - t
    finally:
        svc.close()
    result = {
        "open": opened,
        "phases": phases.seconds,
        "notices": per_scheme,
        "rss_before": rss_before,
        "peak_open": peak_open,
        "peak": memory("VmHWM"),
        "delivered": delivered,
        "failed": failed,
        "deliver": delivering,
    }
    print("RESULT " + json.dumps(result), flush=True)


def measure(one: Setup, tmp: Path) -> dict[str, Any]:
    """Run the measured process on a prepared database."""
    given = json.dumps({"database": one.database, "notices": str(tmp / f"{one.store}.jsonl")})
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--job", given],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SOCIALCREDIT_CONFIG"},
    )
    if done.returncode:
        raise SystemExit(f"the measured process failed:\n{done.stderr[-5000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    return result


def prepare(store: str, tmp: Path) -> Setup:
    """A fresh database, its tables made (``upgrade``)."""
    from socialcredit.store.service_db import upgrade

    pg = os.environ.get("SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_act_{uuid.uuid4().hex[:12]}" if store == "postgres" else None
    database = str(tmp / f"{store}.ledger") if schema is None else f"{pg}?schema={schema}"
    one = Setup(store, "now", None, database, schema, {})
    upgrade(database)
    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser.add_argument("--subjects", type=number, default=100_000)
    parser.add_argument("--records", type=number, default=2_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job(args.job)
        return
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {dt.date.today()}; {args.subjects:,} subjects, "
        f"{args.records:,} records; schemes {', '.join(SCHEMES)}; load average at start "
        f"{loadavg():.2f}",
        flush=True,
    )
    persons, orgs = codes(args.subjects)
    results: list[tuple[str, float, dict[str, Any]]] = []
    base = Path(os.environ.get("BENCH_TMP") or "/work/benchtmp")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        setups: list[Setup] = []
        try:
            for store in stores:
                setups.append(prepare(store, Path(tmp)))
            t = time.perf_counter()
            preload_all(setups, persons, orgs, args.records)
            print(f"preloaded in {time.perf_counter() - t:.0f} s", flush=True)
            for one in setups:
                load = loadavg()
                print(f"{one.store}: load average {load:.2f}, opening", flush=True)
                results.append((one.store, load, measure(one, Path(tmp))))
                print(json.dumps(results[-1]), flush=True)
        finally:
            for one in setups:
                drop(one)
    print(f"\n| measure | {' | '.join(store for store, _, _ in results)} |")
    print("|---|" + "---|" * len(results))

    def phase(name: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r['phases'].get(name, 0.0):.1f}"

    def rest_of_activation(r: dict[str, Any]) -> str:
        spent = r["phases"]
        parts = ("read", "choose", "sources", "existing", "write")
        inside = sum(spent.get(k, 0.0) for k in parts)
        return f"{spent.get('activate', 0.0) - inside:.1f}"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("records in the ledger", lambda r: f"{args.records:,}"),
        *(
            (f"notices written, {sid}", lambda r, sid=sid: f"{r['notices'].get(sid, 0):,}")
            for sid in SCHEMES
        ),
        ("the whole open, s", lambda r: f"{r['open']:.1f}"),
        ("of which the activation, s", phase("activate")),
        ("reading the ledger (subjects, records), s", phase("read")),
        ("choosing the records, s", phase("choose")),
        ("who sent each record (Ledger.record_sources, or .sources), s", phase("sources")),
        ("of which the records found again by id (`_existing`), s", phase("sources_existing")),
        ("of which the writes' sources of their entries (`_sources_of`), s", phase("sources_of")),
        ("senders matched to the records, s", phase("match")),
        ("building the notice texts, s", phase("texts")),
        ("writing them (write_notices), s", phase("write")),
        ("rest of the activation (subjects' kinds, transaction, commit), s", rest_of_activation),
        (
            "rest of the open, s",
            lambda r: f"{r['open'] - r['phases'].get('activate', 0.0):.1f}",
        ),
        (
            "peak RSS of the process after the open, GB (before it)",
            lambda r: f"{r['peak_open'] / 1e9:.2f} ({r['rss_before'] / 1e9:.2f})",
        ),
        (
            "first deliver to the file sink: notices, s",
            lambda r: f"{r['delivered']:,} in {r['deliver']:.2f}",
        ),
        ("peak RSS after it, GB", lambda r: f"{r['peak'] / 1e9:.2f}"),
        ("load average before the open", lambda r: f"{loads[r['store']]:.2f}"),
    ]
    loads = {store: load for store, load, _ in results}
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell({**r, "store": s}) for s, _, r in results) + " |")


if __name__ == "__main__":
    main()

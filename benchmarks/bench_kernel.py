"""Batch scoring from in-memory Arrow columns: the kernel against what a user would
otherwise run, side by side in one run.

    python benchmarks/bench_kernel.py                      # 100M records, 10M subjects
    python benchmarks/bench_kernel.py --records 10_000_000 --subjects 1_000_000

Rows of the table:
- memory bandwidth (a large numpy sum and copy): the ceiling for any pass over the data;
- DuckDB ``SELECT subject, sum(amount) GROUP BY subject`` on the same columns;
- the kernel end to end (preparation + evaluation under the rongcheng preset) on two forked
  processes, the two phases apart, and the same on two threads and on one;
- a plain per-record Python loop over a slice, as the rate a user would get by hand;
- decisions: ``Decider.may`` per call, and ``may_many`` per subject.

Peak memory is measured in a child process that loads the columns from an Arrow file and
scores them, as the growth of its peak RSS over the input columns.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import ledger_columns

from socialcredit.engine import Engine, Prepared
from socialcredit.engine.decisions import Decider
from socialcredit.scheme import load

AT = "2026-06-01"


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bandwidth() -> tuple[float, float]:
    """Read and copy bandwidth in GB/s over a 1.6 GB array."""
    a = np.ones(200_000_000, dtype=np.int64)
    b = np.zeros_like(a)
    read = a.nbytes / best(lambda: a.sum())
    copy = 2 * a.nbytes / best(lambda: np.copyto(b, a))
    return read / 1e9, copy / 1e9


def input_bytes(records: pa.Table) -> int:
    """Bytes of the record columns (dictionaries included once)."""
    return int(records.nbytes)


def duckdb_groupby(records: pa.Table) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count() or 1}")
    subject = records.column("subject").combine_chunks().indices
    flat = pa.table({"subject": subject, "amount": records.column("amount")})
    con.register("t", flat)
    query = "SELECT subject, sum(amount) FROM t GROUP BY subject"
    return best(lambda: con.sql(query).to_arrow_table())


def python_loop(engine: Engine, subjects: pa.Table, records: pa.Table, at_day: int) -> float:
    """Records/s of a plain loop a user might write: per record, per rule."""
    scheme = engine.scheme
    rows = records.to_pylist()
    rules = [(r, set(r.types)) for r in scheme.rules]
    delay = {t: (scheme.notice_days or 0) if s.adverse else 0 for t, s in scheme.records.items()}

    def run() -> None:
        ended: dict[object, int] = {}
        for rec in rows:
            if rec["ref"] is not None:
                day = (rec["recorded_at"] - EPOCH).days
                ended[rec["ref"]] = min(day, ended.get(rec["ref"], day))
        totals: dict[str, int] = {}
        for rec in rows:
            t = rec["type"]
            if t not in delay:
                continue
            occ = (rec["occurred_at"] - EPOCH).days
            rcd = (rec["recorded_at"] - EPOCH).days
            if occ > at_day or rcd + delay[t] > at_day or ended.get(rec["id"], 1 << 40) <= at_day:
                continue
            for rule, types in rules:
                if t in types and (rule.window_days is None or at_day - occ < rule.window_days):
                    pts = rule.points or 0
                    totals[rec["subject"]] = totals.get(rec["subject"], 0) + pts

    return len(rows) / best(run, repeat=1)


EPOCH = __import__("datetime").date(1970, 1, 1)


def high_water() -> int:
    """This process's peak resident memory in bytes (VmHWM; ru_maxrss survives exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def used_memory() -> int:
    """Memory in use on the machine (MemTotal - MemAvailable), in bytes."""
    info: dict[str, int] = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def child_peak(path: str, scheme: str, processes: bool) -> None:
    """Run in a child process: load columns, score, print peak memory figures as JSON.

    On threads, the peak is this process's peak resident memory. Forked workers share the
    columns copy-on-write, so their resident sizes overlap this one's; the peak is then the
    machine's memory in use, sampled every 5 ms while scoring, over what it was before."""
    import threading

    before = high_water()
    machine_before = used_memory()
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    records = table.select(["id", "subject", "type", "occurred_at", "recorded_at", "amount", "ref"])
    records = pa.table({n: records.column(n).combine_chunks() for n in records.column_names})
    del table
    codes = records.column("subject").chunk(0).dictionary
    subjects = pa.table({"code": codes, "kind": pa.repeat(pa.scalar("person"), len(codes))})
    gc.collect()
    loaded = high_water()
    engine = Engine(load(scheme).scheme)
    peak_machine = [used_memory()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak_machine[0] = max(peak_machine[0], used_memory())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    states = engine.evaluate(
        engine.prepare(subjects, records, processes=processes),
        AT,
        workers=2,
        processes=processes,
    )
    done.set()
    sampler.join()
    peak = high_water() if not processes else before + peak_machine[0] - machine_before
    print(
        json.dumps(
            {
                "before": before,
                "loaded": loaded,
                "peak": peak,
                "input": int(records.nbytes + subjects.nbytes),
                "n": len(states),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000_000)
    ap.add_argument("--subjects", type=int, default=10_000_000)
    ap.add_argument("--scheme", default="rongcheng")
    ap.add_argument("--loop-records", type=int, default=1_000_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-processes", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_peak(args.child, args.scheme, args.child_processes)
        return

    scheme = load(args.scheme).scheme
    engine = Engine(scheme)
    print(
        f"# kernel benchmark: {args.records:,} records, {args.subjects:,} subjects, "
        f"scheme {args.scheme}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}"
    )
    t = time.perf_counter()
    subjects, records = ledger_columns(scheme, args.records, args.subjects)
    print(
        f"generated in {time.perf_counter() - t:.1f} s; input columns "
        f"{input_bytes(records) / 1e9:.2f} GB"
    )

    rows: list[tuple[str, str, str]] = []
    read_bw, copy_bw = bandwidth()
    rows.append(
        (
            "memory bandwidth (numpy sum / copy)",
            f"{read_bw:.1f} GB/s read",
            f"{copy_bw:.1f} GB/s copy",
        )
    )
    n = records.num_rows

    dd = duckdb_groupby(records)
    rows.append(
        ("DuckDB GROUP BY subject, sum(amount)", f"{dd:.2f} s", f"{n / dd / 1e6:.1f} M rec/s")
    )

    def end_to_end(workers: int, processes: bool) -> float:
        return best(
            lambda: engine.evaluate(
                engine.prepare(subjects, records, processes=processes),
                AT,
                workers=workers,
                processes=processes,
            )
        )

    holder: dict[str, Prepared] = {}
    prep_t = best(
        lambda: holder.__setitem__("p", engine.prepare(subjects, records, processes=True))
    )
    eval_t = best(lambda: engine.evaluate(holder["p"], AT, workers=2, processes=True))
    holder.clear()
    gc.collect()
    e2e = end_to_end(2, True)
    threads2 = end_to_end(2, False)
    threads1 = end_to_end(1, False)
    rows.append(
        (
            "kernel end to end (prepare + evaluate), 2 processes",
            f"{e2e:.2f} s",
            f"{n / e2e / 1e6:.1f} M rec/s",
        )
    )
    rows.append(("  of which prepare", f"{prep_t:.2f} s", f"{n / prep_t / 1e6:.1f} M rec/s"))
    rows.append(("  of which evaluate", f"{eval_t:.2f} s", f"{n / eval_t / 1e6:.1f} M rec/s"))
    rows.append(
        ("kernel end to end, 2 threads", f"{threads2:.2f} s", f"{n / threads2 / 1e6:.1f} M rec/s")
    )
    rows.append(
        ("kernel end to end, 1 thread", f"{threads1:.2f} s", f"{n / threads1 / 1e6:.1f} M rec/s")
    )
    rows.append(("kernel (2 processes) / DuckDB", f"{dd / e2e:.2f}x", ""))
    bytes_per_s = input_bytes(records) / e2e / 1e9
    rows.append(
        (
            "kernel input throughput vs read bandwidth",
            f"{bytes_per_s:.2f} GB/s",
            f"{100 * bytes_per_s / read_bw:.0f}% of bandwidth",
        )
    )

    states = engine.evaluate(engine.prepare(subjects, records), AT)
    sl = records.slice(0, args.loop_records)
    loop_rate = python_loop(engine, subjects, sl, states.at)
    rows.append(
        (
            f"plain Python loop ({len(sl):,} records)",
            f"{loop_rate / 1e6:.2f} M rec/s",
            f"kernel is {n / e2e / loop_rate:.0f}x faster",
        )
    )

    decider = Decider(states)
    codes = states.codes.slice(0, 100_000).to_pylist()
    decider.may(codes[0], "loan.preferential_rate")
    per_call = best(lambda: [decider.may(c, "travel.air") for c in codes]) / len(codes)
    rows.append(("may() in process, per call", f"{per_call * 1e6:.2f} us", ""))
    idx = np.arange(len(states), dtype=np.int64)
    batch = best(lambda: decider.may_many(idx, "travel.air")) / len(idx)
    rows.append(("may_many(), per decision", f"{batch * 1e9:.1f} ns", ""))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "records.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, records.schema) as writer:
            writer.write_table(records)
        for processes in (False, True):
            flag = ["--child-processes"] if processes else []
            out = subprocess.run(
                [sys.executable, __file__, "--child", path, "--scheme", args.scheme, *flag],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout)
            over = (figures["peak"] - figures["before"]) / figures["input"]
            how = "2 processes, machine memory in use" if processes else "2 threads, peak RSS"
            rows.append(
                (
                    f"peak memory while scoring / input columns ({how})",
                    f"{over:.2f}x",
                    f"{(figures['peak'] - figures['before']) / 1e9:.2f} GB over the start, "
                    f"{figures['input'] / 1e9:.2f} GB input",
                )
            )

    print()
    print("| measure | value | rate / note |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()

"""The lab at scale: `socialcredit simulate` end to end (population, weekly steps, kernel,
metrics, report), each case in a fresh child process so that its peak memory is its own.

    python benchmarks/bench_lab.py                          # town 700,000 x 3 years, china 1%
    python benchmarks/bench_lab.py --china 0.1 --china 1    # china at 10% and in full
    python benchmarks/bench_lab.py --skip-town --china 1 --workers 2 --ledger /big/disk

Columns: wall time; CPU time (user and system, of the child and its workers: what the run
costs on a machine shared with other work, where wall time is not its own); peak RSS (of
the child, plus for each worker the largest worker's: a bound); disk used (the written
ledger, when ``--ledger`` is given); records written per second; agent-steps per second
(persons and organizations times weekly steps, per second of the whole run). A fraction of
china is the same world with that share of its persons (and organizations) and the same
partition size, so its time per partition is the full run's; the full run's time is
extrapolated from it by the number of partitions, and labelled so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHINA_PERSONS = 1_409_670_000


def one_case(args: argparse.Namespace) -> None:
    """Run one case in this process and print its figures as JSON."""
    from socialcredit.cli.lab_cmds import run_lab
    from socialcredit.lab.metrics import summary

    out = Path(args.out)
    ledger = out / "ledger" if args.ledger else None
    started = time.perf_counter()
    runs = run_lab(
        [args.scheme],
        args.world,
        args.population,
        args.years,
        7,
        out / "report.html",
        ledger=ledger,
        workers=args.workers,
    )
    seconds = time.perf_counter() - started
    settings = runs[0].settings
    records = sum(summary(r.metrics, "records")[""] for r in runs)
    disk = sum(f.stat().st_size for f in ledger.rglob("*") if f.is_file()) if ledger else 0
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    # the run's own peak, plus each worker's at most the largest worker's (a bound)
    own, worker = (u.ru_maxrss for u in usage)
    peak = own + (args.workers * worker if args.workers > 1 else 0)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_bytes": peak * 1024,
                "disk_bytes": disk,
                "records": records,
                "agents": settings.persons + settings.organizations,
                "weeks": settings.weeks,
                "partitions": settings.n_partitions,
            }
        )
    )


def run_case(
    world: str, population: int, years: int, scheme: str, workers: int, ledger: str | None
) -> dict[str, float]:
    """Run a case in a child process; return its figures."""
    root = Path(ledger) if ledger else Path(tempfile.gettempdir())
    out = Path(tempfile.mkdtemp(prefix="bench-lab-", dir=root))
    try:
        cmd = [sys.executable, __file__, "--one", "--out", str(out), "--world", world]
        cmd += ["--population", str(population), "--years", str(years), "--scheme", scheme]
        cmd += ["--workers", str(workers)] + (["--ledger-on"] if ledger else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return figures
    finally:
        shutil.rmtree(out, ignore_errors=True)


def row(label: str, f: dict[str, float], note: str = "") -> str:
    steps = f["agents"] * f["weeks"]
    return (
        f"| {label} | {f['partitions']:,.0f} | {f['seconds']:,.1f} s | "
        f"{f['cpu_seconds']:,.1f} s | "
        f"{f['peak_bytes'] / 1e9:.2f} GB | {f['disk_bytes'] / 1e9:.2f} GB | "
        f"{f['records'] / f['seconds']:,.0f} | {steps / f['seconds'] / 1e6:,.1f} M | {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--china", type=float, action="append", help="fractions of china")
    parser.add_argument("--skip-town", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheme", default="rongcheng")
    parser.add_argument("--ledger", help="write the ledger in a temporary folder under this one")
    # one case in this process (used by the parent)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--population", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--years", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--ledger-on", dest="ledger_flag", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        args.ledger = args.ledger_flag
        one_case(args)
        return

    load = os.getloadavg()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average before: {load[0]:.2f}; "
        f"scheme {args.scheme}; workers {args.workers}"
    )
    print()
    print(
        "| case | partitions | wall time | CPU time | peak memory | disk | records/s "
        "| agent-steps/s | |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    if not args.skip_town:
        f = run_case("town", 700_000, 3, args.scheme, 1, args.ledger)
        print(row("town, 700,000 persons, 3 years", f), flush=True)
    for fraction in args.china or [0.01]:
        persons = round(CHINA_PERSONS * fraction)
        f = run_case("china", persons, 1, args.scheme, args.workers, args.ledger)
        label = f"china {fraction:.0%}, {persons:,} persons, 1 year"
        print(row(label, f), flush=True)
        if fraction < 1:
            full_parts = math.ceil(CHINA_PERSONS / 4_000_000)
            scale = full_parts / f["partitions"]
            est = dict(f)
            est["seconds"] = f["seconds"] * scale
            est["cpu_seconds"] = f["cpu_seconds"] * scale
            est["records"] = f["records"] * scale
            est["disk_bytes"] = f["disk_bytes"] * scale
            est["agents"] = f["agents"] * CHINA_PERSONS / persons
            est["partitions"] = full_parts
            print(
                row("china 100%, extrapolated", est, f"from {fraction:.0%}, by partitions"),
                flush=True,
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

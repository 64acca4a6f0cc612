"""The notice texts of records already in the ledger, sent by many senders: one pass over
all the records with a column of senders, against one pass per sender (what naming each
record's sender cost before the texts took a column of them), side by side in one run.

    python benchmarks/bench_notice_texts.py                      # 2M records, 1-1,000 senders
    python benchmarks/bench_notice_texts.py --records 500_000 --senders 1,10,100

It opens the service on a fresh SQLite file under ``$BENCH_TMP`` (default
``/work/benchtmp``) with ``rongcheng`` in force from the day of the run, builds ``--records``
adverse records (red-light tickets of 100,000 subjects) each from one of ``K`` import files
for each ``K`` of ``--senders``, and times ``NoticeTexts.adverse`` both ways; the two give
the same notices (checked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.records import RECORDS_SCHEMA
from socialcredit.service import Service, Settings
from socialcredit.service.notices import NoticeTexts
from socialcredit.service.sinks import MemorySink
from socialcredit.store.service_db import upgrade


def records(n: int) -> pa.Table:
    """``n`` adverse records of 100,000 subjects, recorded in 2025."""
    day = (dt.date(2025, 1, 10) - dt.date(1970, 1, 1)).days
    days = pa.array(np.full(n, day, np.int32)).cast(pa.date32())
    return pa.table(
        {
            "id": pa.array([f"r{i}" for i in range(n)], pa.string()),
            "subject": pa.array([f"S{i % 100_000:06d}" for i in range(n)], pa.string()),
            "type": pa.array(["traffic.red_light"] * n, pa.string()),
            "occurred_at": days,
            "recorded_at": days,
            "amount": pa.array(np.zeros(n, np.int64)),
            "ref": pa.nulls(n, pa.string()),
        },
        schema=RECORDS_SCHEMA,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    number = lambda text: int(text.replace("_", ""))  # noqa: E731
    parser.add_argument("--records", type=number, default=2_000_000)
    parser.add_argument("--senders", default="1,10,100,1000")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP", "/work/benchtmp")))
    database = str(folder / "ledger.db")
    upgrade(database)
    svc = Service.open(Settings(database=database, schemes=["rongcheng"]), sink=MemorySink())
    try:
        active = svc.schemes["rongcheng"]
        chosen = records(args.records)
        rng = np.random.default_rng(7)
        print(
            f"{platform.node()}, {os.cpu_count()} cores, {dt.date.today()}: notice texts of "
            f"{args.records:,} records"
        )
        print("| senders | one pass per sender, s | one pass with the senders' column, s | ratio |")
        print("|---|---|---|---|")
        for k in [int(s) for s in args.senders.split(",")]:
            names = [f"imported from file-{j}.csv" for j in range(k)]
            senders = pa.array(names, pa.string()).take(pa.array(rng.integers(0, k, args.records)))
            start = time.perf_counter()
            parts = []
            for name in pc.unique(senders).to_pylist():
                mine = pc.equal(senders, name).to_numpy(zero_copy_only=False)
                at = np.flatnonzero(np.asarray(mine, np.bool_))
                parts.append(
                    NoticeTexts(svc, name).adverse(
                        chosen.take(at), active.scheme, "stamp", active.in_force
                    )
                )
            per_sender = pa.concat_tables(parts)
            each = time.perf_counter() - start
            start = time.perf_counter()
            column = NoticeTexts(svc, "").adverse(
                chosen, active.scheme, "stamp", active.in_force, senders=senders
            )
            once = time.perf_counter() - start
            assert sorted(per_sender["body"].to_pylist()) == sorted(column["body"].to_pylist())
            print(f"| {k:,} | {each:.2f} | {once:.2f} | {each / once:.1f} |", flush=True)
    finally:
        svc.close()


if __name__ == "__main__":
    main()

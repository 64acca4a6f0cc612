"""What a run will need, and whether this machine has it: checked before the run starts.

A run holds one partition of the population at a time per worker process, so its memory is
that of its largest partition (agents and their records), not of the population; its disk
is the ledger it is asked to write. Both are estimated from the world: the expected records
per subject and year are read off its rates, multipliers, detection coverage, false-record
rate, resolutions and donations (an upper bound: deterrence only lowers them). The bytes
per agent and per record were measured on this implementation (docs/lab.md, "Scale") and
include a margin. A run that would not fit is refused with the figures, before anything is
drawn or written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from socialcredit.errors import SocialCreditError
from socialcredit.lab.world import DECILES, World

GB = 1e9
BASE_BYTES = 300e6
"""The interpreter, the libraries and a run's fixed tables."""
AGENT_BYTES = 100
"""Per agent of a partition: its columns, the states under a scheme, and scratch."""
RECORD_BYTES = 120
"""Per record of a partition: the ledger's columns (grown by doubling), chains, schedule."""
CODE_BYTES = 200
"""Per agent, when codes are drawn (a ledger is written or kept): strings and their sort."""
EXPORT_BYTES = 260
"""Per record of a partition's ledger in the canonical schema (string ids and codes)."""
PARQUET_BYTES = 40
"""Per record on disk (Parquet, compressed), for a written ledger."""
SUBJECT_PARQUET_BYTES = 30
"""Per subject on disk."""


class RunTooLarge(SocialCreditError):
    """A run needs more memory or disk than the machine has."""


@dataclass(frozen=True)
class Needs:
    """What a run needs."""

    memory: float  # bytes, peak
    disk: float  # bytes written
    records: float  # expected records in all the ledgers (every scheme)


def records_per_year(world: World) -> tuple[float, float]:
    """Expected records per person and per organization per year (before responses)."""
    pop = world.population
    equal = [1 / DECILES] * DECILES
    areas = (
        (pop.urban_share, pop.decile_shares_urban or equal, "urban"),
        (1 - pop.urban_share, pop.decile_shares_rural or equal, "rural"),
    )
    coverage = world.detection.coverage
    out = {"person": 0.0, "organization": 0.0}
    for c in world.behaviour:
        mean = 0.0
        for share, deciles, area in areas:
            by_decile = c.by_decile if c.kind == "person" and c.by_decile else [1.0] * DECILES
            weighted = sum(s * m for s, m in zip(deciles, by_decile, strict=True)) / sum(deciles)
            mean += share * getattr(c.by_area, area) * weighted
        records = c.rate * mean * coverage[c.category]
        if not c.legal:
            records *= 1 + 2 * world.detection.false_record_rate  # false records, voidings
        if c.resolution is not None:
            records *= 1 + c.resolution.share
        out[c.kind] += records
    r = world.redemption
    if r is not None:
        urban = pop.decile_shares_urban or equal
        rural = pop.decile_shares_rural or equal
        national = [
            pop.urban_share * u / sum(urban) + (1 - pop.urban_share) * v / sum(rural)
            for u, v in zip(urban, rural, strict=True)
        ]
        rate = sum(s * x for s, x in zip(national, r.rate_by_decile, strict=True))
        out["person"] += rate * coverage[r.category] * max(1.0, min(r.when_penalized, 1.5))
    return out["person"], out["organization"]


def estimate(
    world: World,
    partition: tuple[int, int],
    partitions: int,
    years: int,
    schemes: int,
    *,
    workers: int = 1,
    ledger: bool = False,
    keep_ledger: bool = False,
) -> Needs:
    """The peak memory and the disk of a run: ``partition`` is the largest partition's
    (persons, organizations); ``ledger``: the ledger is written to disk; ``keep_ledger``:
    it is kept in memory (one partition)."""
    persons, organizations = partition
    per_person, per_org = records_per_year(world)
    part_records = (persons * per_person + organizations * per_org) * years
    agents = persons + organizations
    one = agents * AGENT_BYTES + part_records * RECORD_BYTES
    if ledger or keep_ledger:
        one += agents * CODE_BYTES + part_records * EXPORT_BYTES
    if keep_ledger:
        one += schemes * part_records * (EXPORT_BYTES + RECORD_BYTES)
    running = min(workers, partitions)
    total_records = part_records * partitions * schemes
    disk = total_records * PARQUET_BYTES + agents * partitions * SUBJECT_PARQUET_BYTES
    return Needs(BASE_BYTES + running * one, disk if ledger else 0.0, total_records)


def available_memory() -> float:
    """Bytes of memory available to a new run (``MemAvailable``, or free pages), within the
    cgroup's limit when there is one."""
    found: float | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = float(line.split()[1]) * 1024
    except OSError:
        pass
    if found is None:
        found = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        usage = Path("/sys/fs/cgroup/memory.current").read_text(encoding="ascii").strip()
        if limit != "max":
            found = min(found, float(limit) - float(usage))
    except (OSError, ValueError):
        pass
    return found


def available_disk(folder: Path) -> float:
    """Free bytes on the file system of ``folder`` (or of its nearest existing parent)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return float(shutil.disk_usage(folder).free)


def check(
    needs: Needs,
    *,
    memory: float,
    disk: float | None = None,
    where: Path | None = None,
) -> None:
    """Refuse a run that does not fit: raise RunTooLarge with what it needs and has."""
    problems = []
    if needs.memory > memory:
        problems.append(
            f"the run needs {needs.memory / GB:.1f} GB of memory, {memory / GB:.1f} GB "
            "available; use a smaller --partition-size or fewer --workers (memory grows "
            "with the partition, not the population)"
        )
    if disk is not None and needs.disk > disk:
        problems.append(
            f"the ledger needs {needs.disk / GB:.1f} GB of disk in {where}, {disk / GB:.1f} GB "
            "free; write it elsewhere, or leave out --ledger, or use a smaller --population"
        )
    if problems:
        raise RunTooLarge("; ".join(problems))

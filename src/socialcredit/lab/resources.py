"""What a run will need, and whether this machine has it: checked before the run starts.

A run holds one partition of the population at a time per worker process, so its memory is
that of its largest partition (agents and their records), not of the population; its disk
is the ledger it is asked to write. Both are estimated from the world: the expected records
per subject and year are read off its rates, multipliers, detection coverage, false-record
rate, resolutions and donations (an upper bound: deterrence only lowers them). The bytes
per agent and per record were measured on this implementation (docs/lab.md, "Scale") and
include a margin. The networks (households and friends) and the peer ratings are counted
from the dtypes of their arrays, the world's household sizes and mean degree, and its
rate of ratings. A run that would not fit is refused with the figures, before anything is
drawn or written.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socialcredit.errors import SocialCreditError
from socialcredit.lab.world import DECILES, Networks, Ratings, World

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
RELATION_PARQUET_BYTES = 30
"""Per relation on disk (two codes; the kind and the null dates take next to nothing):
measured 15 to 18."""
RATING_PARQUET_BYTES = 50
"""Per peer rating on disk (two codes, the stars, the date): measured 24 to 28."""

INT64 = np.dtype(np.int64).itemsize
INT32 = np.dtype(np.int32).itemsize
CODE_BYTES_ARROW = 18 + INT32
"""A code in an Arrow string array: 18 characters and an int32 offset."""


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


@dataclass(frozen=True)
class NetworkSizes:
    """Per person of a world with networks: households, household pairs, friendships."""

    households: float
    pairs: float  # household relations (each pair of members once)
    friendships: float  # each once: half the mean degree
    degree: float  # friends per person

    @property
    def relations(self) -> float:
        """Rows of the relations file per person."""
        return self.pairs + self.friendships


def network_sizes(networks: Networks) -> NetworkSizes:
    """The expected households and relations per person: sizes are ``1 + Poisson(mean - 1)``
    capped at ``household_size_max`` (cuts at group bounds add a few households per
    partition, not per person)."""
    lam, top = networks.household_size_mean - 1, networks.household_size_max
    pmf = [math.exp(-lam) * lam**k / math.factorial(k) for k in range(top - 1)]
    probs = [*pmf, max(0.0, 1 - sum(pmf))]  # sizes 1 .. top, the tail at the cap
    mean = sum((k + 1) * q for k, q in enumerate(probs))
    pairs = sum((k + 1) * k / 2 * q for k, q in enumerate(probs))
    degree = networks.friends_mean_degree
    return NetworkSizes(1 / mean, pairs / mean, degree / 2, degree)


def network_bytes(networks: Networks) -> tuple[float, float]:
    """Bytes per person of the networks: held for the whole partition (the arrays and the
    exposure counts), and more while the friends are drawn (before any record)."""
    sizes = network_sizes(networks)
    held = (
        sizes.households * 2 * INT64  # household offsets; listed members per household
        + INT64  # each person's household (exposure)
        + INT64
        + sizes.degree * INT32  # friends: row pointers and neighbours
        + INT64
        + 1  # listed friends per person, listed flags (exposure)
    )
    # drawing: each friendship's key, its reverse and both merged, as int64 (friends())
    drawing = sizes.friendships * 4 * INT64
    return held, drawing


def ratings_per_year(world: World) -> float:
    """Peer ratings given per person per year (for a scheme that reads them)."""
    ratings = world.ratings or Ratings(among="friends" if world.networks else "anyone")
    return ratings.per_person_per_week * 52


RATING_BYTES = 4 * INT64
"""Per peer rating held: rater, ratee, stars and day."""
RATING_EXPORT_BYTES = 2 * CODE_BYTES_ARROW + INT64 + INT32
"""Per peer rating in the ratings table (two codes, the stars, the date)."""
RELATION_EXPORT_BYTES = 2 * INT64 + 1 + 2 * CODE_BYTES_ARROW
"""Per relation while its table is made: two rows, the kind, then two codes."""


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
    rating_schemes: int = 0,
) -> Needs:
    """The peak memory and the disk of a run: ``partition`` is the largest partition's
    (persons, organizations); ``ledger``: the ledger is written to disk; ``keep_ledger``:
    it is kept in memory (one partition); ``rating_schemes``: how many of the ``schemes``
    read peer ratings (their ratings are held, and written with the ledger)."""
    persons, organizations = partition
    per_person, per_org = records_per_year(world)
    part_records = (persons * per_person + organizations * per_org) * years
    agents = persons + organizations
    held, drawing = network_bytes(world.networks) if world.networks else (0.0, 0.0)
    relations = network_sizes(world.networks).relations if world.networks else 0.0
    # a scheme's ratings are held while it runs (every one, when the ledger is written)
    part_ratings = persons * ratings_per_year(world) * years if rating_schemes else 0.0
    one = agents * AGENT_BYTES + persons * held + part_records * RECORD_BYTES
    one += part_ratings * RATING_BYTES
    if ledger or keep_ledger:
        one += agents * CODE_BYTES + part_records * EXPORT_BYTES
        one += part_ratings * RATING_EXPORT_BYTES
        one += persons * relations * RELATION_EXPORT_BYTES
    if keep_ledger:
        one += schemes * part_records * (EXPORT_BYTES + RECORD_BYTES)
    # the friends are drawn before any record: that peak may be the partition's
    one = max(one, agents * AGENT_BYTES + persons * (held + drawing))
    running = min(workers, partitions)
    total_records = part_records * partitions * schemes
    disk = total_records * PARQUET_BYTES + agents * partitions * SUBJECT_PARQUET_BYTES
    disk += persons * partitions * relations * RELATION_PARQUET_BYTES
    disk += part_ratings * partitions * rating_schemes * RATING_PARQUET_BYTES
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

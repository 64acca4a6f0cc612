"""Synthetic networks of a world: households and a friendship graph, as compact arrays.

Both are drawn from a NumPy generator, so a run is reproducible from its seed, and both are
built with a handful of vector operations, so they scale to millions of agents:

* **households** are runs of contiguous rows (``offsets``: household ``h`` is the rows
  ``offsets[h]:offsets[h + 1]``), so a partition of agents that cuts at household bounds
  never splits one; sizes are ``1 + Poisson(mean - 1)``, at most ``max_size``, and a
  household never crosses a bound of ``blocks`` (the population's groups), so its members
  share an area and an income decile;
* **friends** are an undirected graph without self-loops or repeated edges, in compressed
  sparse row form (``indptr``, ``indices``): each agent's friends are
  ``indices[indptr[i]:indptr[i + 1]]``, sorted. About ``mean_degree * n / 2`` pairs are
  drawn; one end uniformly, the other within the first end's block (its area) with
  probability ``homophily``, else uniformly among all agents.

:func:`exposure` answers the lab's question "who has a listed relative or friend?" from a
boolean vector of listed agents, and :func:`relations_table` writes the networks in the
relations input of the scheme language (docs/networks.md), so that a simulated world can be
scored with ``socialcredit score --relations``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.relations import RELATIONS_SCHEMA

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Households:
    """Households as runs of contiguous rows."""

    offsets: I64  # [households + 1]; household h is rows offsets[h]:offsets[h + 1]

    @property
    def count(self) -> int:
        """How many households there are."""
        return len(self.offsets) - 1

    @property
    def sizes(self) -> I64:
        """The size of each household."""
        out: I64 = np.diff(self.offsets)
        return out

    def of(self) -> I32:
        """The household of each row."""
        return np.repeat(np.arange(self.count, dtype=np.int32), self.sizes)


@dataclass(frozen=True)
class Friends:
    """An undirected graph in compressed sparse row form (both directions stored)."""

    indptr: I64  # [n + 1]
    indices: I32  # [2 * edges], sorted within each row

    @property
    def n(self) -> int:
        """How many agents the graph has."""
        return len(self.indptr) - 1

    @property
    def degree(self) -> I64:
        """Each agent's number of friends."""
        out: I64 = np.diff(self.indptr)
        return out

    @property
    def edges(self) -> int:
        """How many friendships (undirected) there are."""
        return len(self.indices) // 2


@dataclass(frozen=True)
class NetworkSettings:
    """The ``networks:`` part of a world."""

    household_size_mean: float = 2.62
    household_size_max: int = 10
    friends_mean_degree: float = 8.0
    friends_homophily: float = 0.8

    def __post_init__(self) -> None:
        if not 1.0 <= self.household_size_mean <= self.household_size_max:
            raise ValueError("household_size_mean must be between 1 and household_size_max")
        if not 1 <= self.household_size_max <= 100:
            raise ValueError("household_size_max must be between 1 and 100")
        if not 0.0 <= self.friends_mean_degree <= 1000.0:
            raise ValueError("friends_mean_degree must be between 0 and 1000")
        if not 0.0 <= self.friends_homophily <= 1.0:
            raise ValueError("friends_homophily must be between 0 and 1")


def _bounds(n: int, blocks: npt.ArrayLike | None) -> I64:
    """Block bounds ``[0, ..., n]``, ascending, distinct."""
    if blocks is None:
        return np.array([0, n], dtype=np.int64)
    b = _distinct(np.concatenate(([0, n], np.asarray(blocks, dtype=np.int64))))
    if b[0] < 0 or b[-1] > n:
        raise ValueError(f"block bounds must lie in 0..{n}")
    out: I64 = b
    return out


def _distinct(values: I64) -> I64:
    """The distinct values, sorted (a sort and a comparison: faster than ``np.unique``)."""
    out = np.sort(values)
    if len(out) > 1:
        out = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return out


def households(
    rng: np.random.Generator,
    n: int,
    *,
    mean_size: float = 2.62,
    max_size: int = 10,
    blocks: npt.ArrayLike | None = None,
) -> Households:
    """Cut rows ``0:n`` into households of ``1 + Poisson(mean_size - 1)`` members (at most
    ``max_size``), never across a bound of ``blocks``."""
    if n < 0 or mean_size < 1 or max_size < 1:
        raise ValueError("n >= 0, mean_size >= 1 and max_size >= 1")
    bounds = _bounds(n, blocks)
    draws = int(n / mean_size * 1.2) + 64
    cuts: list[I64] = []
    total = 0
    while total < n:  # a few rounds at most: each draws 20% more households than needed
        sizes = np.minimum(1 + rng.poisson(mean_size - 1, draws), max_size)
        ends = total + np.cumsum(sizes)
        cuts.append(ends)
        total = int(ends[-1])
    ends = np.concatenate(cuts) if cuts else np.zeros(0, dtype=np.int64)
    ends = ends[ends < n]
    offsets = _distinct(np.concatenate((ends, bounds)))
    return Households(offsets.astype(np.int64))


def friends(
    rng: np.random.Generator,
    n: int,
    *,
    mean_degree: float = 8.0,
    homophily: float = 0.8,
    blocks: npt.ArrayLike | None = None,
) -> Friends:
    """A friendship graph on ``n`` agents with about ``mean_degree`` friends each (fewer by
    the self-loops and repeats dropped), a share ``homophily`` of them within the agent's
    block."""
    if n < 0 or mean_degree < 0 or not 0 <= homophily <= 1:
        raise ValueError("n >= 0, mean_degree >= 0 and 0 <= homophily <= 1")
    bounds = _bounds(n, blocks)
    pairs = round(n * mean_degree / 2) if n > 1 else 0
    a = rng.integers(0, max(n, 1), pairs, dtype=np.int64)
    block = np.searchsorted(bounds, a, side="right") - 1
    lo, hi = bounds[block], bounds[block + 1]
    within = rng.random(pairs) < homophily
    b = np.where(
        within,
        lo + np.floor(rng.random(pairs) * (hi - lo)).astype(np.int64),
        rng.integers(0, max(n, 1), pairs, dtype=np.int64),
    )
    keep = a != b
    a, b = a[keep], b[keep]
    m = max(n, 1)
    keys = _distinct(np.minimum(a, b) * m + np.maximum(a, b))  # each friendship once
    both = np.concatenate((keys, (keys % m) * m + keys // m))  # and in both directions
    both.sort()
    source = both // m
    counts = np.bincount(source, minlength=n)[:n] if n else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Friends(indptr, (both % m).astype(np.int32))


@dataclass(frozen=True)
class Exposure:
    """Per agent: has a listed household member (other than itself), a listed friend."""

    household: Bools
    friend: Bools

    @property
    def any(self) -> Bools:
        """Has a listed household member or friend."""
        out: Bools = self.household | self.friend
        return out


def exposure(listed: Bools, homes: Households | None, graph: Friends | None) -> Exposure:
    """Network exposure: which agents have a listed household member, or a listed friend.

    ``listed`` is one boolean per agent (rows in the order of the networks).
    """
    n = len(listed)
    flag = listed.astype(np.int64)
    household = np.zeros(n, dtype=np.bool_)
    if homes is not None:
        if homes.offsets[-1] != n:
            raise ValueError("the households do not cover the agents")
        running = np.concatenate(([0], np.cumsum(flag)))
        per_home = running[homes.offsets[1:]] - running[homes.offsets[:-1]]
        household = np.repeat(per_home, homes.sizes) - flag > 0
    friend = np.zeros(n, dtype=np.bool_)
    if graph is not None:
        if graph.n != n:
            raise ValueError("the friendship graph does not cover the agents")
        running = np.concatenate(([0], np.cumsum(flag[graph.indices])))
        friend = running[graph.indptr[1:]] - running[graph.indptr[:-1]] > 0
    return Exposure(household, friend)


def relations_table(
    codes: pa.Array,
    homes: Households | None,
    graph: Friends | None,
    *,
    since: dt.date | None = None,
) -> pa.Table:
    """The networks as a relations table (docs/networks.md section 2): every pair of
    members of a household once, as ``household``, and every friendship once, as
    ``friend``, all holding from ``since`` (or always)."""
    first: list[I64] = []
    second: list[I64] = []
    kinds: list[str] = []
    if homes is not None:
        sizes = homes.sizes
        # for each member, pair it with the members after it in its household
        home = homes.of().astype(np.int64)
        row = np.arange(len(home), dtype=np.int64)
        after = homes.offsets[1:][home] - row - 1
        a = np.repeat(row, after)
        step = np.arange(len(a), dtype=np.int64) - np.repeat(np.cumsum(after) - after, after)
        first.append(a)
        second.append(a + 1 + step)
        kinds += ["household"] * len(a)
        del sizes
    if graph is not None:
        source = np.repeat(np.arange(graph.n, dtype=np.int64), graph.degree)
        target = graph.indices.astype(np.int64)
        keep = source < target
        first.append(source[keep])
        second.append(target[keep])
        kinds += ["friend"] * int(keep.sum())
    a = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    b = np.concatenate(second) if second else np.zeros(0, dtype=np.int64)
    start = (
        pa.nulls(len(a), pa.date32())
        if since is None
        else pa.repeat(pa.scalar(since, pa.date32()), len(a))
    )
    return pa.Table.from_arrays(
        [
            codes.take(pa.array(a)),
            pa.array(kinds, pa.string()),
            codes.take(pa.array(b)),
            start,
            pa.nulls(len(a), pa.date32()),
        ],
        schema=RELATIONS_SCHEMA,
    )

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
boolean vector of listed agents, and :class:`ExposureCounts` keeps the same answer current
as a few agents join or leave lists (work in proportion to their households and friends).
:func:`relations_table` and :func:`ratings_table` write the networks and the peer ratings
in the inputs of the scheme language (docs/networks.md), so that a simulated world can be
scored with ``socialcredit score --relations --ratings``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.relations import RATINGS_SCHEMA, RELATIONS_SCHEMA

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
    if n >= 2**31:
        raise ValueError("at most 2**31 - 1 agents (rows are int32)")
    bounds = _bounds(n, blocks)
    pairs = round(n * mean_degree / 2) if n > 1 else 0
    a = rng.integers(0, max(n, 1), pairs, dtype=np.int64)
    within = rng.random(pairs) < homophily
    # the other end: uniform within the first end's block, or among all agents
    block = _block_of(a, bounds)
    lo = bounds[:-1][block]
    lo *= within  # 0 for a friend drawn among all agents
    span = np.diff(bounds)[block]
    del block
    span[~within] = n
    del within
    u = rng.random(pairs)
    u *= span
    del span
    lo += u.astype(np.int64)
    del u
    b = lo  # the other end
    # each friendship once, as (smaller << 32 | larger): shifts and masks, not divisions
    loops = np.flatnonzero(a == b)  # a person drawn with itself: rare, dropped
    keys = np.minimum(a, b)
    keys <<= 32
    keys |= np.maximum(a, b, out=b)
    del a, b
    if len(loops):
        keys = np.delete(keys, loops)
    keys.sort()
    fresh = np.empty(len(keys), dtype=np.bool_)
    fresh[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=fresh[1:])
    edges = int(fresh.sum())
    # and in both directions, sorted by source then target: the keys, then the reversed
    # keys (the int32 halves swapped) sorted, merged (a stable sort of two sorted runs is
    # a linear merge); written into one array, so no run is copied twice
    both = np.empty(2 * edges, dtype=np.int64)
    np.compress(fresh, keys, out=both[:edges])
    del keys, fresh
    halves = both.view(np.int32).reshape(-1, 2)
    halves[edges:, 0] = halves[:edges, 1]
    halves[edges:, 1] = halves[:edges, 0]
    both[edges:].sort()
    both.sort(kind="stable")
    return _from_keys(both, n)


def _block_of(rows: I64, bounds: I64) -> npt.NDArray[np.integer]:
    """The block of each row (``bounds[k] <= row < bounds[k + 1]``): a comparison per inner
    bound when there are few (cheaper than a binary search per row)."""
    inner = bounds[1:-1]
    if len(inner) > 8:
        out: npt.NDArray[np.integer] = np.searchsorted(bounds, rows, side="right") - 1
        return out
    block = np.zeros(len(rows), dtype=np.int8)
    for bound in inner:
        block += rows >= bound
    return block


def _from_keys(keys: I64, n: int) -> Friends:
    """The graph of sorted, distinct edge keys ``source << 32 | target`` on ``n`` agents.

    The two halves of a key are read as int32 views (little- or big-endian), so neither
    takes a shift and a mask over every edge."""
    halves = keys.view(np.int32).reshape(-1, 2)
    high, low = (1, 0) if np.little_endian else (0, 1)
    counts = np.bincount(halves[:, high], minlength=n)[:n] if n else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Friends(indptr, np.ascontiguousarray(halves[:, low]))


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
    kinds: list[npt.NDArray[np.int8]] = []  # 0 household, 1 friend
    if homes is not None:
        # for each member, pair it with the members after it in its household
        home = homes.of().astype(np.int64)
        row = np.arange(len(home), dtype=np.int64)
        after = homes.offsets[1:][home] - row - 1
        a = np.repeat(row, after)
        step = np.arange(len(a), dtype=np.int64) - np.repeat(np.cumsum(after) - after, after)
        first.append(a)
        second.append(a + 1 + step)
        kinds.append(np.zeros(len(a), dtype=np.int8))
    if graph is not None:
        source = np.repeat(np.arange(graph.n, dtype=np.int64), graph.degree)
        target = graph.indices.astype(np.int64)
        keep = source < target
        first.append(source[keep])
        second.append(target[keep])
        kinds.append(np.ones(int(keep.sum()), dtype=np.int8))
    a = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    b = np.concatenate(second) if second else np.zeros(0, dtype=np.int64)
    kind = np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int8)
    start = (
        pa.nulls(len(a), pa.date32())
        if since is None
        else pa.repeat(pa.scalar(since, pa.date32()), len(a))
    )
    return pa.Table.from_arrays(
        [
            codes.take(pa.array(a)),
            pa.array(["household", "friend"], pa.string()).take(pa.array(kind)),
            codes.take(pa.array(b)),
            start,
            pa.nulls(len(a), pa.date32()),
        ],
        schema=RELATIONS_SCHEMA,
    )


# ---- graphs over all agents: the relation conditions of a scheme --------------------------


def _ranges(starts: I64, lengths: I64) -> I64:
    """``concatenate([arange(s, s + k) for s, k in zip(starts, lengths)])``, vectorized."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    out: I64 = np.arange(total, dtype=np.int64) + shift
    return out


def household_graph(homes: Households, n: int | None = None) -> Friends:
    """Each row's other household members, as a graph on ``n`` agents (rows past the
    households, organizations, have none)."""
    n = int(homes.offsets[-1]) if n is None else n
    members = int(homes.offsets[-1])
    if n < members:
        raise ValueError("the households cover more than n agents")
    sizes = homes.sizes
    size = np.repeat(sizes, sizes)  # each member's household size
    # each member's household, in row order: already sorted by source, then target, and
    # without repeats, so it needs no sort; only the member itself is left out
    target = _ranges(np.repeat(homes.offsets[:-1], sizes), size)
    source = np.repeat(np.arange(members, dtype=np.int64), size)
    other = source != target
    degree = np.zeros(n, dtype=np.int64)
    degree[:members] = size - 1
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degree, out=indptr[1:])
    return Friends(indptr, target[other].astype(np.int32))


def padded(graph: Friends, n: int) -> Friends:
    """The graph on ``n >= graph.n`` agents: the rows added have no edges."""
    if n == graph.n:
        return graph
    tail = np.full(n - graph.n, graph.indptr[-1], dtype=np.int64)
    return Friends(np.concatenate((graph.indptr, tail)), graph.indices)


def union(graphs: list[Friends], n: int) -> Friends:
    """The union of graphs on ``n`` agents (an edge in several counts once)."""
    graphs = [padded(g, n) for g in graphs]
    if len(graphs) == 1:
        return graphs[0]
    if n >= 2**31:
        raise ValueError("at most 2**31 - 1 agents (rows are int32)")
    # each graph's keys (source << 32 | target) are sorted already (rows sorted within), so
    # a stable sort of their concatenation is a merge of sorted runs, not a sort
    keys = np.concatenate([_keys(g) for g in graphs] or [np.zeros(0, dtype=np.int64)])
    keys.sort(kind="stable")
    if len(keys) > 1:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return _from_keys(keys, n)


def _keys(graph: Friends) -> I64:
    """The graph's edges as keys ``source << 32 | target``, in row order."""
    keys = np.repeat(np.arange(graph.n, dtype=np.int64), graph.degree)
    keys <<= 32
    keys |= graph.indices
    return keys


def neighbours(graph: Friends, rows: I64) -> tuple[I64, I64]:
    """The edges leaving ``rows``: (position in ``rows`` of the source, target row)."""
    starts, ends = graph.indptr[rows], graph.indptr[rows + 1]
    lengths = ends - starts
    which = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    return which, graph.indices[_ranges(starts, lengths)].astype(np.int64)


# ---- exposure kept current -----------------------------------------------------------------


EXPOSURE_GROUPS = ("household", "friend", "either")
"""The groups of the exposure metrics, in the order of :attr:`ExposureCounts.exposed`."""


class ExposureCounts:
    """:func:`exposure` of a listed vector, kept current as agents join or leave lists.

    It holds, per household, how many of its members are listed, and per agent, how many of
    its friends; an agent's change updates its household and its friends, and the totals
    are corrected for the agents whose exposure that can change (its household members,
    its friends, itself). The work per change is its household size plus its degree.
    """

    def __init__(self, listed: Bools, homes: Households | None, graph: Friends | None) -> None:
        n = len(listed)
        self.n = n
        self.homes = homes
        self.graph = graph
        self.listed = listed.copy()
        self.home_of = homes.of().astype(np.int64) if homes is not None else None
        self.n_listed = int(listed.sum())
        self.exposed = np.zeros(3, dtype=np.int64)  # household, friend, either
        self.exposed_unlisted = np.zeros(3, dtype=np.int64)
        if homes is not None:
            self.home_listed = np.zeros(homes.count, dtype=np.int64)
        if graph is not None:
            self.friend_listed = np.zeros(n, dtype=np.int64)
        if not self.n_listed:  # no one listed (the usual start): no one exposed
            return
        flag = listed.astype(np.int64)
        if homes is not None:
            running = np.concatenate(([0], np.cumsum(flag)))
            self.home_listed = running[homes.offsets[1:]] - running[homes.offsets[:-1]]
        if graph is not None:
            running = np.concatenate(([0], np.cumsum(flag[graph.indices])))
            self.friend_listed = running[graph.indptr[1:]] - running[graph.indptr[:-1]]
        self._add(np.arange(n, dtype=np.int64), 1)

    def flags(self, rows: I64) -> tuple[Bools, Bools]:
        """Whether each of ``rows`` has a listed household member, a listed friend."""
        if self.homes is not None:
            assert self.home_of is not None
            household = self.home_listed[self.home_of[rows]] - self.listed[rows] > 0
        else:
            household = np.zeros(len(rows), dtype=np.bool_)
        if self.graph is not None:
            friend = self.friend_listed[rows] > 0
        else:
            friend = np.zeros(len(rows), dtype=np.bool_)
        return household, friend

    def _add(self, rows: I64, sign: int) -> None:
        household, friend = self.flags(rows)
        either = household | friend
        free = ~self.listed[rows]
        for k, flag in enumerate((household, friend, either)):
            self.exposed[k] += sign * int(flag.sum())
            self.exposed_unlisted[k] += sign * int((flag & free).sum())

    def update(self, rows: I64, listed: Bools) -> None:
        """Agents ``rows`` (distinct) are now ``listed`` or not."""
        changed = rows[self.listed[rows] != listed]
        if not len(changed):
            return
        parts = [changed]
        if self.homes is not None:
            assert self.home_of is not None
            home = self.home_of[changed]
            parts.append(_ranges(self.homes.offsets[home], self.homes.sizes[home]))
        if self.graph is not None:
            _, mates = neighbours(self.graph, changed)
            parts.append(mates)
        touched = _distinct(np.concatenate(parts))
        self._add(touched, -1)
        sign = np.where(self.listed[changed], -1, 1).astype(np.int64)
        self.n_listed += int(sign.sum())
        self.listed[changed] = ~self.listed[changed]
        if self.homes is not None:
            np.add.at(self.home_listed, home, sign)
        if self.graph is not None:
            which, mates = neighbours(self.graph, changed)
            np.add.at(self.friend_listed, mates, sign[which])
        self._add(touched, 1)


# ---- peer ratings ---------------------------------------------------------------------------


def draw_raters(
    rng: np.random.Generator, n: int, per_agent: float, graph: Friends | None
) -> tuple[I64, I64]:
    """A week's ratings: ``Poisson(per_agent * n)`` raters drawn uniformly among ``n``
    agents, each rating one friend drawn uniformly (``graph``; a rater without friends
    rates no one) or, without a graph, one other agent drawn uniformly."""
    count = int(rng.poisson(per_agent * n)) if n > 1 else 0
    rater = rng.integers(0, max(n, 1), count, dtype=np.int64)
    u = rng.random(count)
    if graph is not None:
        degree = graph.degree[rater]
        has = degree > 0
        rater, u, degree = rater[has], u[has], degree[has]
        pick = graph.indptr[rater] + np.minimum((u * degree).astype(np.int64), degree - 1)
        return rater, graph.indices[pick].astype(np.int64)
    ratee = np.minimum((u * (n - 1)).astype(np.int64), n - 2)
    return rater, ratee + (ratee >= rater)  # anyone but the rater


def draw_stars(rng: np.random.Generator, quality: npt.NDArray[np.float64], top: int) -> I64:
    """Stars ``1 + Binomial(top - 1, q)`` for each rating's quality ``q`` (clipped to 0..1)."""
    q = np.clip(quality, 0.0, 1.0)
    out: I64 = 1 + rng.binomial(top - 1, q).astype(np.int64)
    return out


def ratings_table(codes: pa.Array, rater: I64, ratee: I64, stars: I64, day: I64) -> pa.Table:
    """Ratings as the ratings input (docs/networks.md section 2): rows of agents and day
    numbers; ``codes`` are the agents' codes."""
    return pa.Table.from_arrays(
        [
            codes.take(pa.array(rater)),
            codes.take(pa.array(ratee)),
            pa.array(stars.astype(np.int64), pa.int64()),
            pa.array(day.astype(np.int32), pa.int32()).cast(pa.date32()),
        ],
        schema=RATINGS_SCHEMA,
    )

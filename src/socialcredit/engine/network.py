"""The network extension of the kernel (docs/networks.md): relations and peer ratings.

Both are global: a subject's reputation depends on every rating, and a relation condition
reads the states of subjects in other partitions. So they are computed once per date,
around the partition function, and handed to it as per-subject vectors:

1. **Reputation** (section 4): EigenTrust power iteration over the ratings counting at
   ``at``, in integer arithmetic (trust in units of ``2**-44`` of the whole), as sparse
   matrix-vector products by ``numpy.bincount``. It depends on the ratings alone, so the
   rules on peer ratings are ordinary columns of the first evaluation.
2. **Relations** (section 3): the scheme is evaluated once with every relation condition
   false; the ``where`` of each relation condition is then judged on those states (it may
   read only scores, grades and lists that use no relations, which that evaluation gives
   exactly); counting related subjects is one ``bincount`` over the relation edges valid at
   ``at``; and the scheme is evaluated again with the counts known.

No Python code runs per subject, per relation or per rating.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.engine.conditions import Compiled, Facts, compile_condition
from socialcredit.relations import RATINGS_SCHEMA, RELATIONS_SCHEMA
from socialcredit.scheme.model import Related, Scheme
from socialcredit.scheme.network import Loc, peer_rules, related_conditions

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

TOTAL_TRUST = 1 << 44
"""The whole of the trust, in integer units: a trust vector sums to at most this."""
FIXED_ONE = 1 << 16
"""Normalized local trust ``c_ij`` is a fixed-point fraction of this."""
TOLERANCE = 1 << 24
"""The iteration stops when the L1 change of the trust vector is at most this (2**-20)."""
_FIRST_DAY = np.iinfo(np.int32).min
_LAST_DAY = np.iinfo(np.int32).max

VIA_EDGES: dict[str, tuple[str, bool]] = {
    # via name: (relation kind of the row, whether the edge runs subject -> other)
    "household": ("household", True),
    "friend": ("friend", True),
    "employer": ("employer", True),
    "employee": ("employer", False),
    "legal_representative": ("legal_representative", True),
    "represented": ("legal_representative", False),
}
_SYMMETRIC = frozenset({"household", "friend"})


@dataclass(frozen=True)
class NetworkPlan:
    """What of the network extension a scheme uses: its relation conditions (in the order
    of :func:`~socialcredit.scheme.network.related_conditions`) and its peer rules."""

    scheme: Scheme
    related: tuple[Related, ...]
    places: tuple[Loc, ...]
    peer_rules: tuple[int, ...]
    related_index: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, scheme: Scheme) -> NetworkPlan:
        """The plan of a validated scheme."""
        found = related_conditions(scheme)
        conds = tuple(c for _, c in found)
        return cls(
            scheme=scheme,
            related=conds,
            places=tuple(loc for loc, _ in found),
            peer_rules=tuple(peer_rules(scheme)),
            related_index={id(c): k for k, c in enumerate(conds)},
        )

    @property
    def uses_relations(self) -> bool:
        """Whether the scheme has relation conditions."""
        return bool(self.related)

    @property
    def uses_ratings(self) -> bool:
        """Whether the scheme has rules on peer ratings."""
        return bool(self.peer_rules)

    def where_conditions(self) -> list[Compiled]:
        """The compiled ``where`` of each relation condition."""
        s = self.scheme
        rules = {r.id: i for i, r in enumerate(s.rules)}
        grades = {g.grade: i for i, g in enumerate(s.grades)}
        lists = {spec.id: i for i, spec in enumerate(s.lists)}
        return [compile_condition(c.related.where, rules, grades, lists) for c in self.related]


@dataclass(frozen=True)
class Edges:
    """Directed relation edges of one kind of ``via``, with the days they hold."""

    source: I32  # subject index
    target: I32  # the related subject's index
    start: I32  # first day the relation holds (the minimum: no ``from``)
    end: I32  # last day it holds (the maximum: no ``to``)

    def at(self, day: int) -> tuple[I32, I32]:
        """The edges that hold on ``day``."""
        valid = (self.start <= day) & (self.end >= day)
        return self.source[valid], self.target[valid]


@dataclass(frozen=True)
class PreparedNetwork:
    """The network inputs as subject indices (the order of ``Prepared.codes``)."""

    plan: NetworkPlan
    codes: pa.Array
    kinds: pa.Array
    edges: dict[str, Edges]
    rater: I32
    ratee: I32
    stars: I64
    day: I32

    @property
    def n_subjects(self) -> int:
        """How many subjects are scored."""
        return len(self.codes)


def _index(values: pa.ChunkedArray | pa.Array, codes: pa.Array) -> I32:
    found = pc.index_in(values, value_set=codes).fill_null(-1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32)


def _days(values: pa.ChunkedArray, missing: int) -> I32:
    days = pc.fill_null(values.cast(pa.date32()).cast(pa.int32()), missing)
    return np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.int32)


def _conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    missing = [f.name for f in schema if f.name not in table.column_names and not f.nullable]
    if missing:
        raise ValueError(f"the {what} table has no column {', '.join(missing)}")
    n = table.num_rows
    arrays = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def prepare_network(
    plan: NetworkPlan,
    codes: pa.Array,
    kinds: pa.Array,
    relations: pa.Table | None = None,
    ratings: pa.Table | None = None,
) -> PreparedNetwork:
    """Map the relations and ratings tables (canonical schemas of
    :mod:`socialcredit.relations`) to the indices of the scored ``codes``.

    Rows about subjects that are not scored, and rows that relate or rate a subject to or
    by itself, count for nothing and are dropped here. Like the records, the tables are
    trusted: check data from outside with :mod:`socialcredit.store.network_files` first.
    """
    edges: dict[str, Edges] = {}
    if relations is not None:
        rel = _conform(relations, RELATIONS_SCHEMA, "relations")
        subject = _index(rel.column("subject"), codes)
        other = _index(rel.column("other"), codes)
        kind = rel.column("relation").to_numpy(zero_copy_only=False).astype(str)
        keep = (subject >= 0) & (other >= 0) & (subject != other)
        start = _days(rel.column("from"), _FIRST_DAY)
        end = _days(rel.column("to"), _LAST_DAY)
        for via, (name, forward) in VIA_EDGES.items():
            rows = np.flatnonzero(keep & (kind == name))
            a, b = (subject[rows], other[rows]) if forward else (other[rows], subject[rows])
            s, e = start[rows], end[rows]
            if name in _SYMMETRIC:
                a, b = np.concatenate((a, b)), np.concatenate((b, a))
                s, e = np.concatenate((s, s)), np.concatenate((e, e))
            edges[via] = Edges(a, b, s, e)
    empty32 = np.zeros(0, dtype=np.int32)
    rater, ratee, stars, day = empty32, empty32, np.zeros(0, dtype=np.int64), empty32
    if ratings is not None:
        rat = _conform(ratings, RATINGS_SCHEMA, "ratings")
        rater = _index(rat.column("rater"), codes)
        ratee = _index(rat.column("ratee"), codes)
        stars = np.asarray(rat.column("stars").to_numpy(), dtype=np.int64)
        day = _days(rat.column("date"), _LAST_DAY)
        keep = (rater >= 0) & (ratee >= 0) & (rater != ratee)
        rater, ratee, stars, day = rater[keep], ratee[keep], stars[keep], day[keep]
        top = plan.scheme.ratings.stars if plan.scheme.ratings is not None else 10
        bad = (stars < 1) | (stars > top)
        if bad.any():
            raise ValueError(
                f"a rating has {int(stars[np.argmax(bad)])} stars; the scheme's ratings are "
                f"1 to {top} stars"
            )
    return PreparedNetwork(plan, codes, kinds, edges, rater, ratee, stars, day)


# ---- section 4: reputation -------------------------------------------------------------


@dataclass(frozen=True)
class Reputation:
    """The outcome of the EigenTrust iteration at one date.

    ``trust`` sums to at most ``TOTAL_TRUST``; ``trust_per_mille`` is each subject's trust
    in thousandths of the uniform share (1000: as trusted as the average subject);
    ``rating`` is the trust-weighted mean of the stars a subject received, in hundredths
    of a star, where ``rated``. ``pairs`` are the counting ratings: for each (rater, ratee)
    its latest rating, as rows of ``rater``, ``ratee``, ``stars`` and ``day``.
    """

    trust: I64
    trust_per_mille: I64
    rating: I64
    rated: Bools
    iterations: int
    change: int
    rater: I32
    ratee: I32
    stars: I64
    day: I32


def _sum_by(index: I32, weights: I64, n: int) -> I64:
    """Exact sums of non-negative integers per index, when every sum stays below 2**53."""
    if not len(index):
        return np.zeros(n, dtype=np.int64)
    total: I64 = np.bincount(index, weights=weights, minlength=n).astype(np.int64)
    return total


def reputation(net: PreparedNetwork, at: int) -> Reputation:
    """EigenTrust over the ratings that count at ``at`` (docs/networks.md section 4)."""
    spec = net.plan.scheme.ratings
    top = spec.stars if spec is not None else 5
    damping = spec.damping if spec is not None else 150
    cap = spec.max_iterations if spec is not None else 100
    n = net.n_subjects
    counting = net.day <= at
    if spec is not None and spec.window_days is not None:
        counting &= net.day.astype(np.int64) > at - spec.window_days
    rows = np.flatnonzero(counting)
    # for each pair, its latest rating (and of two on one day, the higher)
    pair = net.rater[rows].astype(np.int64) * max(n, 1) + net.ratee[rows]
    order = rows[np.lexsort((net.stars[rows], net.day[rows], pair))]
    sorted_pair = net.rater[order].astype(np.int64) * max(n, 1) + net.ratee[order]
    last = np.ones(len(order), dtype=np.bool_)
    last[:-1] = sorted_pair[1:] != sorted_pair[:-1]
    chosen = order[last]
    rater, ratee, stars = net.rater[chosen], net.ratee[chosen], net.stars[chosen]

    local = np.maximum(0, 2 * stars - (top + 1))  # s_ij: above the middle of the scale
    out_sum = _sum_by(rater, local, n)  # S_i
    positive = np.flatnonzero(local > 0)
    p_rater, p_ratee = rater[positive], ratee[positive]
    share = (local[positive] * FIXED_ONE) // out_sum[p_rater]  # c_ij, fixed point
    dangling = out_sum == 0  # raters of no one above the middle trust the uniform p

    uniform = TOTAL_TRUST // max(n, 1)
    trust = np.full(n, uniform, dtype=np.int64)
    iterations, change = 0, 0
    for _ in range(cap):
        flow = _sum_by(p_ratee, (share * trust[p_rater]) // FIXED_ONE, n)
        flow += int(trust[dangling].sum()) // max(n, 1)
        new = ((1000 - damping) * flow) // 1000 + (damping * uniform) // 1000
        change = int(np.abs(new - trust).sum())
        trust = new
        iterations += 1
        if change <= TOLERANCE:
            break

    weight = trust[rater]
    received = _sum_by(ratee, weight, n)
    weighted = _sum_by(ratee, weight * stars, n)
    rated = np.bincount(ratee, minlength=n)[:n] > 0 if len(ratee) else np.zeros(n, np.bool_)
    rating = np.where(rated, (100 * weighted) // np.maximum(received, 1), 0)
    return Reputation(
        trust=trust,
        trust_per_mille=(1000 * trust) // max(uniform, 1),
        rating=rating.astype(np.int64),
        rated=rated,
        iterations=iterations,
        change=change,
        rater=rater,
        ratee=ratee,
        stars=stars,
        day=net.day[chosen],
    )


# ---- section 3: relations --------------------------------------------------------------


def related_edges(net: PreparedNetwork, k: int, at: int) -> tuple[I32, I32]:
    """The distinct (subject, related subject) pairs of relation condition ``k`` at ``at``."""
    n = max(net.n_subjects, 1)
    parts = [net.edges[v].at(at) for v in net.plan.related[k].related.via if v in net.edges]
    if not parts:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    source = np.concatenate([p[0] for p in parts]).astype(np.int64)
    target = np.concatenate([p[1] for p in parts]).astype(np.int64)
    keys = np.sort(source * n + target)
    if len(keys) > 1:  # distinct pairs (a sort and a comparison: faster than np.unique)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return (keys // n).astype(np.int32), (keys % n).astype(np.int32)


def related_counts(net: PreparedNetwork, targets: Bools, at: int) -> tuple[Bools, I64]:
    """For each relation condition ``k`` and subject: whether it holds, and how many
    related subjects satisfy its ``where`` (``targets[k]``)."""
    n = net.n_subjects
    k_all = len(net.plan.related)
    holds = np.zeros((k_all, n), dtype=np.bool_)
    counts = np.zeros((k_all, n), dtype=np.int64)
    for k, cond in enumerate(net.plan.related):
        source, target = related_edges(net, k, at)
        hit = targets[k][target]
        counts[k] = np.bincount(source[hit], minlength=n)[:n] if len(source) else 0
        holds[k] = counts[k] >= cond.related.at_least
    return holds, counts


def where_targets(
    plan: NetworkPlan, score: I64, grade: npt.NDArray[np.int16], lists: Bools
) -> Bools:
    """Which subjects satisfy the ``where`` of each relation condition, judged on the
    states of the first evaluation."""
    n = len(score)
    facts = Facts(
        measure=np.zeros((0, n), dtype=np.int64),
        has_measure=np.zeros((0, n), dtype=np.bool_),
        score=score,
        grade=grade,
        lists=lists,
    )
    out = np.zeros((len(plan.related), n), dtype=np.bool_)
    for k, where in enumerate(plan.where_conditions()):
        out[k] = where(facts)
    return out


@dataclass
class NetworkState:
    """The network facts of every subject at one date, handed to the partition function."""

    net: PreparedNetwork
    at: int
    reputation: Reputation | None
    related: Bools  # [relation conditions, n]
    targets: Bools  # [relation conditions, n]: the subject satisfies the where
    counts: I64  # [relation conditions, n]: related subjects satisfying the where

    def peer_measure(self, rule: int, first: int, last: int) -> tuple[I64, Bools]:
        """The measure of a peer rule for subjects ``first:last``, and where it is defined."""
        rep = self.reputation
        assert rep is not None
        if self.net.plan.scheme.rules[rule].measure == "peer_rating":
            return rep.rating[first:last].copy(), rep.rated[first:last].copy()
        return rep.trust_per_mille[first:last].copy(), np.ones(last - first, dtype=np.bool_)

    def related_slice(self, first: int, last: int) -> Bools:
        """The relation conditions of subjects ``first:last``."""
        return self.related[:, first:last]


def first_state(net: PreparedNetwork, at: int) -> NetworkState:
    """The network facts before the relations are known: reputation, relations all false."""
    n, k = net.n_subjects, len(net.plan.related)
    rep = reputation(net, at) if net.plan.uses_ratings else None
    none = np.zeros((k, n), dtype=np.bool_)
    return NetworkState(net, at, rep, none, none.copy(), np.zeros((k, n), dtype=np.int64))


def final_state(
    first: NetworkState, score: I64, grade: npt.NDArray[np.int16], lists: Bools
) -> NetworkState:
    """The network facts with the relation conditions decided on the first evaluation."""
    targets = where_targets(first.net.plan, score, grade, lists)
    holds, counts = related_counts(first.net, targets, first.at)
    return NetworkState(first.net, first.at, first.reputation, holds, targets, counts)


def rated_by(state: NetworkState, i: int) -> npt.NDArray[np.intp]:
    """Rows of ``state.reputation``'s counting ratings whose ratee is subject ``i``, by
    date and then rater."""
    rep = state.reputation
    if rep is None:
        return np.zeros(0, dtype=np.intp)
    rows = np.flatnonzero(rep.ratee == i)
    return rows[np.lexsort((rep.rater[rows], rep.day[rows]))]


def related_to(state: NetworkState, k: int, i: int) -> npt.NDArray[np.int32]:
    """The subjects related to subject ``i`` as relation condition ``k`` asks, at the
    state's date, that satisfy its ``where``; in index (code) order."""
    source, target = related_edges(state.net, k, state.at)
    found = target[source == i]
    out: npt.NDArray[np.int32] = found[state.targets[k][found]]
    return out

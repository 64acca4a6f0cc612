"""The kernel: one vectorized implementation of ``evaluate`` (SCHEME.md sections 3-6).

Work is done one partition of subjects at a time (a range of subject-sorted records), so
memory stays bounded and partitions can run on any executor. Within a partition:

1. every record gets its *slot* (type and age band), or the dump slot when it does not
   count at ``at`` (not yet in effect, ended by a ``ref``, unknown type or outside every
   window);
2. one ``bincount`` over ``subject * slots + slot`` gives the count (and amount) of every
   subject in every slot, and ``maximum.at`` the latest occurrence where a ``days_since``
   rule needs it;
3. rule measures are sums (or maxima) over each rule's slots; contributions, the score,
   the grade, lists and measures are vector arithmetic over subjects.

No Python code runs per record or per subject. Explanations run the same function on a
one-subject partition with ``trace=True``.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from socialcredit.engine.columns import Prepared, TypeTables
from socialcredit.engine.compiled import (
    MEASURE_AMOUNT,
    MEASURE_COUNT,
    MEASURE_DAYS_SINCE,
    CompiledRule,
    CompiledScheme,
)
from socialcredit.engine.conditions import Compiled, Facts, compile_condition
from socialcredit.engine.network import NetworkPlan, NetworkState
from socialcredit.errors import ScoreOverflow
from socialcredit.scheme.model import Condition

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_NO_DAY = np.iinfo(np.int32).min
_INT64_MAX = np.iinfo(np.int64).max
_FLOAT_EXACT = 2**53
PARTITION_RECORDS = 1 << 16


@dataclass(frozen=True)
class LinearGroup:
    """Linear-form rules reading one cell matrix (counts or amounts), evaluated together."""

    rules: I64  # rule indices
    single_at: I64  # positions (in ``rules``) of the rules that read one slot
    single_rows: I64  # ... and that slot
    multi: tuple[tuple[int, I64], ...]  # (position, slots) of the rules that read several
    points: I64  # [R, 1]
    per: I64 | None  # [R, 1], None when every per is 1
    cap: I64  # [R, 1]; rules without a cap get the largest int64
    capped: Bools  # [R, 1]: the rule has a cap

    @classmethod
    def of(cls, compiled: CompiledScheme, measure: int) -> LinearGroup:
        """The linear rules of one measure kind."""
        chosen = [r for r in compiled.rules if r.measure == measure and r.points is not None]
        index = [i for i, r in enumerate(compiled.rules) if r in chosen]
        big = np.iinfo(np.int64).max
        per = np.array([[r.per] for r in chosen], dtype=np.int64).reshape(-1, 1)
        return cls(
            rules=np.array(index, dtype=np.int64),
            single_at=np.array(
                [k for k, r in enumerate(chosen) if len(r.slots) == 1], dtype=np.int64
            ),
            single_rows=np.array([r.slots[0] for r in chosen if len(r.slots) == 1], dtype=np.int64),
            multi=tuple((k, r.slots) for k, r in enumerate(chosen) if len(r.slots) != 1),
            points=np.array([[r.points or 0] for r in chosen], dtype=np.int64).reshape(-1, 1),
            per=per if bool((per != 1).any()) else None,
            cap=np.array(
                [[r.cap if r.cap is not None else big] for r in chosen], dtype=np.int64
            ).reshape(-1, 1),
            capped=np.array([[r.cap is not None] for r in chosen], dtype=np.bool_).reshape(-1, 1),
        )

    def evaluate(self, cells: I64, measure: I64, contribution: I64) -> None:
        """Fill the measures and contributions of these rules from a slot-major matrix."""
        if not len(self.rules):
            return
        values = np.empty((len(self.rules), cells.shape[1]), dtype=cells.dtype)
        values[self.single_at] = cells[self.single_rows]
        for k, slots in self.multi:
            values[k] = cells[slots].sum(axis=0) if len(slots) else 0
        measure[self.rules] = values
        quotient = values // self.per if self.per is not None else values
        contribution[self.rules] = linear(quotient, self.points, self.cap, self.capped)


@dataclass(frozen=True)
class Program:
    """The subject-level part of a scheme: grade table, list and measure conditions."""

    compiled: CompiledScheme
    grade_names: tuple[str, ...]
    grade_min: tuple[int | None, ...]
    list_ids: tuple[str, ...]
    list_when: tuple[Compiled, ...]
    measure_ids: tuple[str, ...]
    measure_when: tuple[Compiled, ...]
    linear_counts: LinearGroup
    linear_amounts: LinearGroup
    other_rules: tuple[int, ...]  # rules in table form, and days_since rules
    plan: NetworkPlan | None = None  # relation conditions and peer rules (docs/networks.md)

    @property
    def peer_rules(self) -> tuple[int, ...]:
        """Rules whose measure is read from peer ratings."""
        return self.plan.peer_rules if self.plan is not None else ()

    @classmethod
    def of(cls, compiled: CompiledScheme) -> Program:
        """Compile the conditions of a scheme."""
        s = compiled.scheme
        rules = {r.id: i for i, r in enumerate(s.rules)}
        grades = {g.grade: i for i, g in enumerate(s.grades)}
        lists = {spec.id: i for i, spec in enumerate(s.lists)}
        plan = NetworkPlan.of(s)
        related = plan.related_index
        return cls(
            compiled=compiled,
            grade_names=tuple(g.grade for g in s.grades),
            grade_min=tuple(g.min for g in s.grades),
            list_ids=tuple(spec.id for spec in s.lists),
            list_when=tuple(
                compile_condition(spec.when, rules, grades, lists, related) for spec in s.lists
            ),
            measure_ids=tuple(m.id for m in s.measures),
            measure_when=tuple(
                compile_condition(m.when, rules, grades, lists, related) for m in s.measures
            ),
            linear_counts=LinearGroup.of(compiled, MEASURE_COUNT),
            linear_amounts=LinearGroup.of(compiled, MEASURE_AMOUNT),
            other_rules=tuple(
                i
                for i, r in enumerate(compiled.rules)
                if (r.points is None or r.measure == MEASURE_DAYS_SINCE)
                and i not in plan.peer_rules
            ),
            plan=plan,
        )

    def condition(self, cond: Condition) -> Compiled:
        """Compile any condition of this scheme (for explanations)."""
        s = self.compiled.scheme
        return compile_condition(
            cond,
            {r.id: i for i, r in enumerate(s.rules)},
            {g.grade: i for i, g in enumerate(s.grades)},
            {spec.id: i for i, spec in enumerate(s.lists)},
            self.plan.related_index if self.plan is not None else None,
        )


@dataclass
class PartState:
    """The states of one partition's subjects, and (with trace) how they came about."""

    score: I64
    grade: npt.NDArray[np.int16]
    lists: Bools  # [lists, n]
    applied: Bools  # [measures, n]
    facts: Facts | None = None
    contribution: I64 | None = None  # [rules, n]
    slot: I64 | None = None  # per record of the partition


def slot_index(
    prep: Prepared, lo: int, hi: int, at: int, t: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """For records ``lo:hi`` (of types ``t``), their entry in ``prep.tables.slot_table``.

    That entry is the record's slot at day ``at``, or the dump when it does not count: it
    occurred later, is still in its notice period, was ended by a ``ref`` record, its type
    is unknown, or its age puts it outside every window of the rules that read its type.
    """
    tables = prep.tables
    d = len(tables.names)
    occurred = prep.occurred[lo:hi]
    index = t.copy()
    for cut in tables.cuts:
        # age >= cut  <=>  occurred <= at - cut: one band further
        np.add(index, d, out=index, where=occurred <= _shift(at, cut)[t])
    dead = prep.recorded[lo:hi] > _shift(at, tables.delay)[t]
    if not prep.recorded_after_occurred:
        dead |= occurred > at  # else implied: recorded >= occurred > at >= at - delay
    if prep.ended is not None:
        dead |= prep.ended[lo:hi] <= at
    np.copyto(index, len(tables.slot_table) - 1, where=dead)
    return index


def change_days(
    tables: TypeTables, type_index: npt.NDArray[Any], occurred: I32, recorded: I32
) -> I64:
    """For each record, the days on which :func:`slot_index` may give it a new slot.

    ``[records, bands]``, int64: the day it comes into effect (its ``recorded_at`` plus its
    notice delay, and not before it occurred), then the day its age reaches each band cut
    (a band further, or out of every window; a cut reached before the record is in effect
    changes nothing, the record being in the dump slot until then). Between two dates with
    none of these days (and no ``ref`` ending it) in ``(a, b]``, a record's slot at ``b`` is
    its slot at ``a``; so a subject none of whose records has such a day there keeps its
    state, unless a ``days_since`` rule reads one of its records (that measure grows every
    day). The day a ``ref`` record ends a record is the caller's to add: it is that
    record's ``recorded_at``. Cuts of ``NEVER`` give days no date reaches.
    """
    t = type_index.astype(np.intp)
    occ = occurred.astype(np.int64)
    out = np.empty((len(t), 1 + len(tables.cuts)), dtype=np.int64)
    np.maximum(recorded.astype(np.int64) + tables.delay[t], occ, out=out[:, 0])
    for k, cut in enumerate(tables.cuts):
        out[:, 1 + k] = occ + cut[t]
    return out


def record_slots(prep: Prepared, lo: int, hi: int, at: int) -> I64:
    """The slot of each record in rows ``lo:hi`` at day ``at`` (``n_slots``: counts for none)."""
    t = prep.type_index[lo:hi].astype(np.intp)
    slots: I64 = prep.tables.slot_table[slot_index(prep, lo, hi, at, t)]
    return slots


def _shift(at: int, days: I32) -> I32:
    """``at - days`` per type, clipped to int32 (``NEVER`` days give a day before all)."""
    out: I32 = np.maximum(at - days.astype(np.int64), _NO_DAY + 1).astype(np.int32)
    return out


def evaluate_partition(
    prog: Program,
    prep: Prepared,
    first: int,
    last: int,
    at: int,
    *,
    trace: bool = False,
    network: NetworkState | None = None,
) -> PartState:
    """Evaluate subjects ``first:last`` (indices into ``prep.codes``) at day ``at``.

    A scheme with relation conditions or peer rules needs ``network``: the facts of
    :mod:`socialcredit.engine.network` at the same day."""
    c = prog.compiled
    lo, hi = prep.record_range(first, last)
    n = last - first
    width = c.n_slots + 1
    t = prep.type_index[lo:hi].astype(np.intp)
    index = slot_index(prep, lo, hi, at, t)
    # cells are slot-major (slot * n + subject - first), so a slot's row is contiguous
    key = (prep.tables.slot_table * n - first)[index]
    key += prep.subject[lo:hi]
    cells = n * width
    counts = np.bincount(key, minlength=cells).reshape(width, n)
    amounts = (
        _amounts(prep, lo, hi, t, key, cells).reshape(width, n) if len(c.amount_slots) else None
    )
    latest = (
        _latest(prep, lo, hi, t, key, cells).reshape(width, n) if len(c.days_since_slots) else None
    )

    n_rules = len(c.rules)
    # measures are int64, or Python integers where sums of amounts pass 64 bits
    measure = np.zeros((n_rules, n), dtype=np.int64 if amounts is None else amounts.dtype)
    has = np.ones((n_rules, n), dtype=np.bool_)
    contribution = np.zeros((n_rules, n), dtype=np.int64)
    prog.linear_counts.evaluate(counts, measure, contribution)
    if amounts is not None:
        prog.linear_amounts.evaluate(amounts, measure, contribution)
    for r in prog.other_rules:
        rule = c.rules[r]
        if rule.measure == MEASURE_COUNT:
            measure[r] = _sum_columns(counts, rule.slots)
        elif rule.measure == MEASURE_AMOUNT:
            assert amounts is not None
            measure[r] = _sum_columns(amounts, rule.slots)
        else:
            assert latest is not None
            last_day = (
                latest[rule.slots].max(axis=0)
                if len(rule.slots)
                else np.full(n, _NO_DAY, dtype=np.int64)
            )
            has[r] = last_day != _NO_DAY
            measure[r] = np.where(has[r], at - last_day, 0)
        contribution[r] = _contribution(rule, measure[r], has[r])
    if prog.peer_rules:
        if network is None:
            raise ValueError(f"scheme {c.id!r} reads peer ratings: evaluate it with ratings")
        for r in prog.peer_rules:
            measure[r], has[r] = network.peer_measure(r, first, last)
            contribution[r] = _contribution(c.rules[r], measure[r], has[r])

    spec = c.scheme.score
    score = _score(spec.base, spec.min, spec.max, contribution)

    grade = np.full(n, len(prog.grade_names) - 1, dtype=np.int16)
    for g in range(len(prog.grade_names) - 2, -1, -1):
        bound = prog.grade_min[g]
        assert bound is not None  # validated: every grade but the last has a min
        grade[score >= bound] = g

    facts = Facts(
        measure=measure,
        has_measure=has,
        score=score,
        grade=grade,
        lists=np.zeros((len(prog.list_ids), n), dtype=np.bool_),
        related=network.related_slice(first, last) if network is not None else None,
    )
    for i, when in enumerate(prog.list_when):
        facts.lists[i] = when(facts)
    applied = np.zeros((len(prog.measure_ids), n), dtype=np.bool_)
    for i, when in enumerate(prog.measure_when):
        applied[i] = when(facts)
    if not trace:
        return PartState(score, grade, facts.lists, applied)
    slot = prep.tables.slot_table[index]
    return PartState(score, grade, facts.lists, applied, facts, contribution, slot)


def _sum_columns(matrix: npt.NDArray[np.int64], rows: I64) -> I64:
    """Sum of some rows of a slot-major cell matrix: one value per subject."""
    if len(rows) == 1:
        out: I64 = matrix[rows[0]]
        return out
    if not len(rows):
        return np.zeros(matrix.shape[1], dtype=np.int64)
    out = matrix[rows].sum(axis=0, dtype=np.int64)
    return out


def _amounts(
    prep: Prepared, lo: int, hi: int, t: npt.NDArray[np.intp], key: I64, cells: int
) -> I64:
    """Sum of amounts per cell over the records an amount rule reads; exact."""
    a, b = prep.amount_rows.searchsorted((lo, hi))
    where = prep.amount_rows[a:b] - lo
    if prep.amount_exact is None:
        sums = np.bincount(key[where], weights=prep.amount_float[a:b], minlength=cells)
        return sums.astype(np.int64)
    values = prep.amount_exact[a:b]
    if not len(values) or int(values.max()) * len(values) <= _INT64_MAX:
        exact = np.zeros(cells, dtype=np.int64)
        np.add.at(exact, key[where], values)
        return exact
    # sums that may pass 64 bits: Python integers, kept only where they are needed
    big = np.zeros(cells, dtype=object)
    np.add.at(big, key[where], values.astype(object))
    if max(big.max(), 0) <= _INT64_MAX:
        return big.astype(np.int64)
    return big


def _latest(prep: Prepared, lo: int, hi: int, t: npt.NDArray[np.intp], key: I64, cells: int) -> I64:
    """Latest occurrence per cell, over the records a days_since rule reads."""
    latest = np.full(cells, _NO_DAY, dtype=np.int64)
    where = np.flatnonzero(prep.tables.days_since[t])
    np.maximum.at(latest, key[where], prep.occurred[lo:hi][where].astype(np.int64))
    return latest


def _score(base: int, low: int | None, high: int | None, contribution: I64) -> I64:
    """``base + sum(contributions)``, raised to ``low`` and lowered to ``high``; exact.

    Sums that may pass 64 bits are added as Python integers and bounded before they are
    stored; a bounded score that still does not fit raises ScoreOverflow.
    """
    rules = contribution.shape[0]
    if rules and int(np.abs(contribution).max()) > (_INT64_MAX - abs(base)) // (rules + 1):
        exact = base + contribution.astype(object).sum(axis=0)
        if low is not None:
            exact = np.maximum(exact, low)
        if high is not None:
            exact = np.minimum(exact, high)
        if any(abs(int(v)) > _INT64_MAX for v in exact):
            raise ScoreOverflow("a score is beyond the 64-bit range; bound it with score "
                                "min/max or cap the rules")
        out: I64 = exact.astype(np.int64)
        return out
    score: I64 = base + contribution.sum(axis=0, dtype=np.int64)
    if low is not None:
        np.maximum(score, low, out=score)
    if high is not None:
        np.minimum(score, high, out=score)
    return score


def linear(quotient: I64, points: I64 | int, cap: I64 | int, capped: Bools | bool) -> I64:
    """``points * quotient`` clipped to ``[-cap, cap]`` where capped, computed without
    overflow (``quotient >= 0``); an uncapped product beyond 64 bits raises ScoreOverflow."""
    p = np.asarray(points, dtype=np.int64)
    c = np.where(capped, cap, _INT64_MAX).astype(np.int64)
    over = quotient > c // np.maximum(np.abs(p), 1)
    if not over.any():
        out: I64 = quotient * p
        return out
    if bool((over & ~np.asarray(capped) & (p != 0)).any()):
        raise ScoreOverflow(
            "a rule's contribution (points times its measure) is beyond the "
            "64-bit range; give the rule a cap"
        )
    out = np.where(over, np.sign(p) * c, np.where(over, 0, quotient) * p)
    return out


def _contribution(rule: CompiledRule, measure: I64, has: Bools) -> I64:
    if rule.points is not None:
        out = linear(measure // rule.per, rule.points, rule.cap or 0, rule.cap is not None)
    else:
        out = np.full(len(measure), rule.bin_points[-1], dtype=np.int64)
        for b in range(len(rule.bin_max) - 2, -1, -1):
            bound = rule.bin_max[b]
            assert bound is not None
            out[measure <= bound] = rule.bin_points[b]
    if rule.none_points is not None:  # days_since and peer_rating rules: no measure
        out[~has] = rule.none_points
    return out


def partitions(
    prep: Prepared, records_per_partition: int = PARTITION_RECORDS
) -> list[tuple[int, int]]:
    """Cut the subjects into ranges of about ``records_per_partition`` records each (and at
    most as many subjects), so that every partition's cell matrix stays small."""
    n = prep.n_subjects
    if n == 0:
        return []
    step = max(1, records_per_partition)
    cuts = prep.subject[step::step].astype(np.int64)
    bounds = sorted({0, n, *cuts.tolist()})
    out: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(bounds):
        for s in range(a, b, step):
            out.append((s, min(b, s + step)))
    return out


def default_workers() -> int:
    """Threads used by :func:`evaluate_all`: the machine's cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class Evaluated:
    """Raw states of every scored subject (index order = code order)."""

    score: I64
    grade: npt.NDArray[np.int16]
    lists: Bools  # [lists, n]
    applied: Bools  # [measures, n]
    network: NetworkState | None = None  # the network facts the evaluation used


def evaluate_all(
    prog: Program,
    prep: Prepared,
    at: int,
    *,
    workers: int | None = None,
    records_per_partition: int = PARTITION_RECORDS,
    network: NetworkState | None = None,
) -> Evaluated:
    """Evaluate every subject of ``prep`` at day ``at``, partition by partition (with the
    network facts of that day when the scheme uses relations or peer ratings)."""
    n = prep.n_subjects
    out = Evaluated(
        score=np.zeros(n, dtype=np.int64),
        grade=np.zeros(n, dtype=np.int16),
        lists=np.zeros((len(prog.list_ids), n), dtype=np.bool_),
        applied=np.zeros((len(prog.measure_ids), n), dtype=np.bool_),
        network=network,
    )
    parts = partitions(prep, records_per_partition)

    def run(bounds: tuple[int, int]) -> None:
        a, b = bounds
        st = evaluate_partition(prog, prep, a, b, at, network=network)
        out.score[a:b] = st.score
        out.grade[a:b] = st.grade
        out.lists[:, a:b] = st.lists
        out.applied[:, a:b] = st.applied

    threads = workers if workers is not None else default_workers()
    if threads <= 1 or len(parts) <= 1:
        for p in parts:
            run(p)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, parts))
    return out

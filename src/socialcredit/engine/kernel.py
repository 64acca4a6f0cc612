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

import numpy as np
import numpy.typing as npt

from socialcredit.engine.columns import Prepared
from socialcredit.engine.compiled import (
    MEASURE_AMOUNT,
    MEASURE_COUNT,
    MEASURE_DAYS_SINCE,
    CompiledRule,
    CompiledScheme,
)
from socialcredit.engine.conditions import Compiled, Facts, compile_condition
from socialcredit.scheme.model import Condition

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_NO_DAY = np.iinfo(np.int32).min
_FLOAT_EXACT = 2**53
PARTITION_RECORDS = 1 << 17


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

    @classmethod
    def of(cls, compiled: CompiledScheme) -> Program:
        """Compile the conditions of a scheme."""
        s = compiled.scheme
        rules = {r.id: i for i, r in enumerate(s.rules)}
        grades = {g.grade: i for i, g in enumerate(s.grades)}
        lists = {spec.id: i for i, spec in enumerate(s.lists)}
        return cls(
            compiled=compiled,
            grade_names=tuple(g.grade for g in s.grades),
            grade_min=tuple(g.min for g in s.grades),
            list_ids=tuple(spec.id for spec in s.lists),
            list_when=tuple(compile_condition(spec.when, rules, grades, lists) for spec in s.lists),
            measure_ids=tuple(m.id for m in s.measures),
            measure_when=tuple(compile_condition(m.when, rules, grades, lists) for m in s.measures),
        )

    def condition(self, cond: Condition) -> Compiled:
        """Compile any condition of this scheme (for explanations)."""
        s = self.compiled.scheme
        return compile_condition(
            cond,
            {r.id: i for i, r in enumerate(s.rules)},
            {g.grade: i for i, g in enumerate(s.grades)},
            {spec.id: i for i, spec in enumerate(s.lists)},
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
    slot: I32 | None = None  # per record of the partition


def record_slots(prep: Prepared, lo: int, hi: int, at: int) -> I32:
    """The slot of each record in rows ``lo:hi`` at day ``at`` (``n_slots`` = counts for none).

    A record is in the dump slot when it does not count at ``at``: it occurred later, is
    still in its notice period, was ended by a ``ref`` record, its type is unknown, or its
    age puts it outside every window of the rules that read its type.
    """
    c = prep.compiled
    tables = prep.tables
    t = prep.type_index[lo:hi].astype(np.intp)
    occurred = prep.occurred[lo:hi]
    pair = tables.pair_base[t]
    for cut in tables.cuts:
        # age >= cut  <=>  occurred <= at - cut
        pair += occurred <= _shift(at, cut)[t]
    slot = c.slot_map[pair]
    dead = prep.recorded[lo:hi] > _shift(at, tables.delay)[t]
    dead |= occurred > at
    if prep.ended is not None:
        dead |= prep.ended[lo:hi] <= at
    slot[dead] = c.n_slots
    return slot


def _shift(at: int, days: I32) -> I32:
    """``at - days`` per type, clipped to int32 (``NEVER`` days give a day before all)."""
    out: I32 = np.maximum(at - days.astype(np.int64), _NO_DAY + 1).astype(np.int32)
    return out


def evaluate_partition(
    prog: Program, prep: Prepared, first: int, last: int, at: int, *, trace: bool = False
) -> PartState:
    """Evaluate subjects ``first:last`` (indices into ``prep.codes``) at day ``at``."""
    c = prog.compiled
    lo, hi = prep.record_range(first, last)
    n = last - first
    width = c.n_slots + 1
    slot = record_slots(prep, lo, hi, at)
    # cells are slot-major, so that each slot's row of subjects is contiguous
    key = slot.astype(np.int64)
    key *= n
    key += prep.subject[lo:hi]
    key -= first
    cells = n * width
    counts = np.bincount(key, minlength=cells).reshape(width, n)
    amounts = _amounts(prep, lo, hi, key, cells).reshape(width, n) if len(c.amount_slots) else None
    latest = (
        _latest(prep, lo, hi, key, cells).reshape(width, n) if len(c.days_since_slots) else None
    )

    n_rules = len(c.rules)
    measure = np.zeros((n_rules, n), dtype=np.int64)
    has = np.ones((n_rules, n), dtype=np.bool_)
    contribution = np.zeros((n_rules, n), dtype=np.int64)
    for r, rule in enumerate(c.rules):
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

    spec = c.scheme.score
    score = spec.base + contribution.sum(axis=0, dtype=np.int64)
    if spec.min is not None:
        np.maximum(score, spec.min, out=score)
    if spec.max is not None:
        np.minimum(score, spec.max, out=score)

    grade = np.full(n, len(prog.grade_names) - 1, dtype=np.int16)
    for g in range(len(prog.grade_names) - 2, -1, -1):
        grade[score >= prog.grade_min[g]] = g

    facts = Facts(
        measure=measure,
        has_measure=has,
        score=score,
        grade=grade,
        lists=np.zeros((len(prog.list_ids), n), dtype=np.bool_),
    )
    for i, when in enumerate(prog.list_when):
        facts.lists[i] = when(facts)
    applied = np.zeros((len(prog.measure_ids), n), dtype=np.bool_)
    for i, when in enumerate(prog.measure_when):
        applied[i] = when(facts)
    if not trace:
        return PartState(score, grade, facts.lists, applied)
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


def _amounts(prep: Prepared, lo: int, hi: int, key: I64, cells: int) -> I64:
    """Sum of amounts per cell over the records an amount rule reads; exact."""
    where = np.flatnonzero(prep.tables.amount[prep.type_index[lo:hi]])
    values = prep.amount[lo:hi][where]
    if prep.amount_exact_in_float:
        sums = np.bincount(key[where], weights=values.astype(np.float64), minlength=cells)
        return sums.astype(np.int64)
    exact = np.zeros(cells, dtype=np.int64)
    np.add.at(exact, key[where], values)
    return exact


def _latest(prep: Prepared, lo: int, hi: int, key: I64, cells: int) -> I64:
    """Latest occurrence per cell, over the records a days_since rule reads."""
    latest = np.full(cells, _NO_DAY, dtype=np.int64)
    where = np.flatnonzero(prep.tables.days_since[prep.type_index[lo:hi]])
    np.maximum.at(latest, key[where], prep.occurred[lo:hi][where].astype(np.int64))
    return latest


def _contribution(rule: CompiledRule, measure: I64, has: Bools) -> I64:
    if rule.points is not None:
        out = rule.points * (measure // rule.per)
        if rule.cap is not None:
            np.clip(out, -rule.cap, rule.cap, out=out)
        return out
    out = np.full(len(measure), rule.bin_points[-1], dtype=np.int64)
    for b in range(len(rule.bin_max) - 2, -1, -1):
        bound = rule.bin_max[b]
        assert bound is not None
        out[measure <= bound] = rule.bin_points[b]
    if rule.measure == MEASURE_DAYS_SINCE and rule.none_points is not None:
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


def evaluate_all(
    prog: Program,
    prep: Prepared,
    at: int,
    *,
    workers: int | None = None,
    records_per_partition: int = PARTITION_RECORDS,
) -> Evaluated:
    """Evaluate every subject of ``prep`` at day ``at``, partition by partition."""
    n = prep.n_subjects
    out = Evaluated(
        score=np.zeros(n, dtype=np.int64),
        grade=np.zeros(n, dtype=np.int16),
        lists=np.zeros((len(prog.list_ids), n), dtype=np.bool_),
        applied=np.zeros((len(prog.measure_ids), n), dtype=np.bool_),
    )
    parts = partitions(prep, records_per_partition)

    def run(bounds: tuple[int, int]) -> None:
        a, b = bounds
        st = evaluate_partition(prog, prep, a, b, at)
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

"""The kernel: one vectorized implementation of ``evaluate`` (SCHEME.md sections 3-6).

Work is done one partition of subjects at a time (a range of subject-sorted records), so
memory stays bounded and partitions can run on any executor. Within a partition:

1. every record gets its *cell row*: its slot (type and age band) plus one, or 0 (the dump)
   when it does not count at ``at`` (not yet in effect, ended by a ``ref``, unknown type or
   outside every window): comparisons of its dates with its type's day thresholds for
   ``at`` (:class:`DayTables`) decide it;
2. one ``bincount`` over ``row * subjects + subject`` gives the count (and amount) of
   every subject in every slot, and ``maximum.at`` the latest occurrence where a
   ``days_since`` rule needs it;
3. rule measures are sums (or maxima) over each rule's rows; contributions, the score,
   the grade, lists and measures are vector arithmetic over subjects. The linear rules
   that no condition reads and that have neither cap nor ``per`` add ``points`` for each
   record (or unit of amount): their sum is one product of a weight per row with the cell
   matrix.

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

from socialcredit.engine import forked
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
from socialcredit.scheme.model import AllOf, AnyOf, Condition, Not, Related, RuleCondition

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_NO_DAY = np.iinfo(np.int32).min
_INT64_MAX = np.iinfo(np.int64).max
_FLOAT_EXACT = 2**53
_DIRECT_BOUND = 2**62  # weights times records below it: a weighted sum cannot overflow
PARTITION_RECORDS = 1 << 17  # the fastest of 2^15-2^18 on three machines (RESULTS.md)


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
    def of(
        cls, compiled: CompiledScheme, measure: int, among: set[int], rows: tuple[I64, ...]
    ) -> LinearGroup:
        """The linear rules of one measure kind, of the rules ``among``; ``rows[r]`` are the
        rows of the cell matrix rule ``r`` reads."""
        index = [
            i
            for i, r in enumerate(compiled.rules)
            if r.measure == measure and r.points is not None and i in among
        ]
        chosen = [compiled.rules[i] for i in index]
        read = [rows[i] for i in index]
        big = np.iinfo(np.int64).max
        per = np.array([[r.per] for r in chosen], dtype=np.int64).reshape(-1, 1)
        return cls(
            rules=np.array(index, dtype=np.int64),
            single_at=np.array([k for k, x in enumerate(read) if len(x) == 1], dtype=np.int64),
            single_rows=np.array([x[0] for x in read if len(x) == 1], dtype=np.int64),
            multi=tuple((k, x) for k, x in enumerate(read) if len(x) != 1),
            points=np.array([[r.points or 0] for r in chosen], dtype=np.int64).reshape(-1, 1),
            per=per if bool((per != 1).any()) else None,
            cap=np.array(
                [[r.cap if r.cap is not None else big] for r in chosen], dtype=np.int64
            ).reshape(-1, 1),
            capped=np.array([[r.cap is not None] for r in chosen], dtype=np.bool_).reshape(-1, 1),
        )

    def evaluate(self, cells: I64, measure: I64, contribution: I64) -> None:
        """Fill the measures and contributions of these rules from a row-major cell matrix."""
        if not len(self.rules):
            return
        values = np.empty((len(self.rules), cells.shape[1]), dtype=cells.dtype)
        values[self.single_at] = cells[self.single_rows]
        for k, slots in self.multi:
            values[k] = cells[slots].sum(axis=0) if len(slots) else 0
        measure[self.rules] = values
        quotient = values // self.per if self.per is not None else values
        contribution[self.rules] = linear(
            quotient, self.points, self.cap, self.capped, exact=contribution.dtype == object
        )


@dataclass(frozen=True)
class Weights:
    """Points per cell row, summed over linear rules without cap or ``per``: their total
    contribution is ``row_points @ cells``, exact while ``total * records < 2**62``."""

    row_points: I64 | None  # [rows]; None when there are no such rules
    total: int  # sum of |row_points|

    @classmethod
    def of(
        cls,
        compiled: CompiledScheme,
        measure: int,
        among: set[int],
        rows: tuple[I64, ...],
        width: int,
    ) -> Weights:
        """The weights of the rules ``among`` of one measure kind, over a cell matrix of
        ``width`` rows of which rule ``r`` reads ``rows[r]``."""
        points = np.zeros(width, dtype=object)
        used = False
        for i, r in enumerate(compiled.rules):
            if i in among and r.measure == measure and r.points is not None:
                used = True
                for row in rows[i].tolist():
                    points[row] += r.points
        total = int(sum(abs(int(p)) for p in points))
        if not used or total >= _DIRECT_BOUND:
            return cls(None, total)
        return cls(points.astype(np.int64), total)

    def apply(self, cells: I64, records: int) -> I64 | None:
        """The weighted sum per subject, or None when it could overflow (or no rule has
        weights): the rules are then evaluated one by one."""
        if self.row_points is None or cells.dtype != np.int64:
            return None
        if self.total * max(records, 1) >= _DIRECT_BOUND:
            return None
        out: I64 = np.einsum("i,ij->j", self.row_points, cells)
        return out


def rules_read(cond: Condition) -> set[str]:
    """The ids of the rules whose measure a condition reads."""
    if isinstance(cond, RuleCondition):
        return {cond.rule}
    if isinstance(cond, AllOf):
        return set().union(*(rules_read(c) for c in cond.all))
    if isinstance(cond, AnyOf):
        return set().union(*(rules_read(c) for c in cond.any))
    if isinstance(cond, Not):
        return rules_read(cond.not_)
    if isinstance(cond, Related):
        return rules_read(cond.related.where)
    return set()


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
    grade_bounds: I64 | None  # the grade mins in ascending order, when they descend strictly
    linear_counts: LinearGroup  # linear count rules a condition reads, or capped, or with per
    linear_amounts: LinearGroup  # ... and amount rules
    direct_counts: LinearGroup  # the other linear count rules: a weight per cell row each
    direct_amounts: LinearGroup  # ... and amount rules
    count_weights: Weights
    amount_weights: Weights
    summed: dict[tuple[bool, bool], I64]  # rules to sum, by (count, amount) weights used
    rule_rows: tuple[I64, ...]  # per rule, the rows it reads of the matrix of its measure
    amount_row: I64  # [cell rows]: a cell row's row in the amount matrix (0: none)
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
        read = {
            rules[r]
            for c in [*(x.when for x in s.lists), *(m.when for m in s.measures)]
            for r in rules_read(c)
        }
        direct = {
            i
            for i, r in enumerate(compiled.rules)
            if r.measure in (MEASURE_COUNT, MEASURE_AMOUNT)
            and r.points is not None
            and r.per == 1
            and r.cap is None
            and i not in read
        }
        others = set(range(len(compiled.rules))) - direct
        direct_count_rules = {i for i in direct if compiled.rules[i].measure == MEASURE_COUNT}
        direct_amount_rules = direct - direct_count_rules
        # amounts are summed only over the slots an amount rule reads: a matrix of its own
        amount_row = np.zeros(compiled.n_slots + 1, dtype=np.int64)
        amount_row[compiled.amount_slots + 1] = np.arange(1, len(compiled.amount_slots) + 1)
        rule_rows = tuple(
            amount_row[r.slots + 1] if r.measure == MEASURE_AMOUNT else r.slots + 1
            for r in compiled.rules
        )
        amount_width = len(compiled.amount_slots) + 1
        mins = [g.min for g in s.grades[:-1]]
        bounds = [b for b in mins if b is not None]
        descending = len(bounds) == len(mins) and all(a > b for a, b in itertools.pairwise(bounds))
        return cls(
            compiled=compiled,
            grade_names=tuple(g.grade for g in s.grades),
            grade_min=tuple(g.min for g in s.grades),
            grade_bounds=np.array(mins[::-1], dtype=np.int64) if descending else None,
            list_ids=tuple(spec.id for spec in s.lists),
            list_when=tuple(
                compile_condition(spec.when, rules, grades, lists, related) for spec in s.lists
            ),
            measure_ids=tuple(m.id for m in s.measures),
            measure_when=tuple(
                compile_condition(m.when, rules, grades, lists, related) for m in s.measures
            ),
            linear_counts=LinearGroup.of(compiled, MEASURE_COUNT, others, rule_rows),
            linear_amounts=LinearGroup.of(compiled, MEASURE_AMOUNT, others, rule_rows),
            direct_counts=LinearGroup.of(compiled, MEASURE_COUNT, direct, rule_rows),
            direct_amounts=LinearGroup.of(compiled, MEASURE_AMOUNT, direct, rule_rows),
            count_weights=Weights.of(
                compiled, MEASURE_COUNT, direct, rule_rows, compiled.n_slots + 1
            ),
            amount_weights=Weights.of(compiled, MEASURE_AMOUNT, direct, rule_rows, amount_width),
            summed={
                (wc, wa): np.array(
                    sorted(
                        others
                        | (set() if wc else direct_count_rules)
                        | (set() if wa else direct_amount_rules)
                    ),
                    dtype=np.int64,
                )
                for wc in (False, True)
                for wa in (False, True)
            },
            rule_rows=rule_rows,
            amount_row=amount_row,
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


@dataclass(frozen=True)
class DayTables:
    """Per type (position in the records' type dictionary), the day thresholds of one date:
    a record counts at ``at`` when ``occurred <= at``, ``recorded <= recorded_by`` (its
    notice is over), ``occurred > occurred_after`` (younger than the last window of the
    rules that read its type) and no ``ref`` record ended it by ``at``; it is one band
    further for each ``occurred <= band_by[k]``."""

    at: int
    recorded_by: I32
    occurred_after: I32
    band_by: I32  # [K', types]

    @classmethod
    def of(cls, tables: TypeTables, at: int) -> DayTables:
        """The thresholds of day ``at`` (``at`` minus each delay or cut, in the int32 range:
        a cut or delay of ``NEVER`` is a day no record reaches; a type whose notice
        period starts at the earliest on its ``floor`` has no record in effect before
        ``floor`` plus its delay)."""
        low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max

        def less(days: I32) -> I32:
            out: I32 = np.clip(at - days.astype(np.int64), low, high).astype(np.int32)
            return out

        recorded_by = less(tables.delay)
        recorded_by[tables.floor.astype(np.int64) + tables.delay > at] = low
        return cls(at, recorded_by, less(tables.stop_cut), less(tables.mid_cuts))


def cell_rows(
    prep: Prepared, lo: int, hi: int, day: DayTables
) -> tuple[npt.NDArray[np.intp], npt.NDArray[Any]]:
    """The types of records ``lo:hi`` and their cell rows at ``day.at``: the slot plus one,
    or 0 when the record does not count (it occurred later, is still in its notice period,
    was ended by a ``ref`` record, its type is unknown, or its age puts it outside every
    window of the rules that read its type)."""
    at = day.at
    t = prep.type_index[lo:hi].astype(np.intp)
    occ = prep.occurred[lo:hi]
    live = occ <= at
    live &= prep.recorded[lo:hi] <= np.take(day.recorded_by, t, mode="clip")
    live &= occ > np.take(day.occurred_after, t, mode="clip")
    a, b = np.searchsorted(prep.ended_rows, (lo, hi))
    if b > a:
        live[prep.ended_rows[a:b][prep.ended_on[a:b] <= at] - lo] = False
    rows = np.take(prep.tables.first_row, t, mode="clip")
    for band_by in day.band_by:
        rows += occ <= np.take(band_by, t, mode="clip")
    rows *= live
    return t, rows


def change_days(
    tables: TypeTables, type_index: npt.NDArray[Any], occurred: I32, recorded: I32
) -> I64:
    """For each record, the days on which :func:`cell_rows` may give it a new slot.

    ``[records, bands]``, int64: the day it comes into effect (its ``recorded_at``, or its
    type's ``floor`` when that is later, plus its notice delay, and not before it
    occurred), then the day its age reaches each band cut (a band further, or out of every
    window; a cut reached before the record is in effect changes nothing, the record being
    in the dump slot until then). Between two dates with
    none of these days (and no ``ref`` ending it) in ``(a, b]``, a record's slot at ``b`` is
    its slot at ``a``; so a subject none of whose records has such a day there keeps its
    state, unless a ``days_since`` rule reads one of its records (that measure grows every
    day). The day a ``ref`` record ends a record is the caller's to add: it is that
    record's ``recorded_at``. Cuts of ``NEVER`` give days no date reaches.
    """
    t = type_index.astype(np.intp)
    occ = occurred.astype(np.int64)
    out = np.empty((len(t), 1 + len(tables.cuts)), dtype=np.int64)
    start = np.maximum(recorded.astype(np.int64), tables.floor[t])
    np.maximum(start + tables.delay[t], occ, out=out[:, 0])
    for k, cut in enumerate(tables.cuts):
        out[:, 1 + k] = occ + cut[t]
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
    day: DayTables | None = None,
) -> PartState:
    """Evaluate subjects ``first:last`` (indices into ``prep.codes``) at day ``at``.

    A scheme with relation conditions or peer rules needs ``network``: the facts of
    :mod:`socialcredit.engine.network` at the same day. ``day`` is
    ``DayTables.of(prep.tables, at)``, given when many partitions are evaluated.

    Contributions are int64; a partition where one would pass 64 bits is evaluated again
    with Python integers (the score's bounds may bring it back into range): only a score
    beyond 64 bits after its bounds raises :class:`ScoreOverflow`."""
    try:
        return _evaluate_partition(prog, prep, first, last, at, trace, network, day, False)
    except ScoreOverflow:
        return _evaluate_partition(prog, prep, first, last, at, trace, network, day, True)


def _evaluate_partition(
    prog: Program,
    prep: Prepared,
    first: int,
    last: int,
    at: int,
    trace: bool,
    network: NetworkState | None,
    day: DayTables | None,
    exact: bool,
) -> PartState:
    """:func:`evaluate_partition`, contributions in Python integers with ``exact``."""
    c = prog.compiled
    lo, hi = prep.record_range(first, last)
    n = last - first
    width = c.n_slots + 1
    t, rows = cell_rows(prep, lo, hi, day if day is not None else DayTables.of(prep.tables, at))
    # cells are row-major (row * n + subject - first), so a slot's row is contiguous
    key = rows.astype(np.intp)
    key *= n
    key += prep.subject[lo:hi]
    if first:
        key -= first
    cells = n * width
    counts = np.bincount(key, minlength=cells).reshape(width, n)
    amounts, amount_bound = (
        _amounts(prog, prep, lo, hi, rows, first, n) if len(c.amount_slots) else (None, 0)
    )
    latest = _latest(prep, lo, t, key, cells).reshape(width, n) if len(c.days_since_slots) else None

    n_rules = len(c.rules)
    # measures are int64, or Python integers where sums of amounts pass 64 bits; rows that
    # nothing reads stay unwritten unless traced
    blank = np.zeros if trace else np.empty
    measure = blank((n_rules, n), dtype=np.int64 if amounts is None else amounts.dtype)
    has = np.ones((n_rules, n), dtype=np.bool_)
    contribution = blank((n_rules, n), dtype=object if exact else np.int64)
    # rules without cap or per that no condition reads add up by weight (``weighed``);
    # where that could overflow, they are evaluated one by one like the others
    weighed: list[tuple[LinearGroup, I64, I64]] = []
    use = [False, False]  # whether the count and the amount weights are used
    for k, (group, direct, weights, matrix, bound) in enumerate(
        (
            (prog.linear_counts, prog.direct_counts, prog.count_weights, counts, hi - lo),
            (prog.linear_amounts, prog.direct_amounts, prog.amount_weights, amounts, amount_bound),
        )
    ):
        if matrix is None:
            continue
        group.evaluate(matrix, measure, contribution)
        total = None if exact else weights.apply(matrix, bound)
        if total is None:
            direct.evaluate(matrix, measure, contribution)
        else:
            weighed.append((direct, matrix, total))
            use[k] = True
    for r in prog.other_rules:
        rule = c.rules[r]
        rule_rows = prog.rule_rows[r]
        if rule.measure == MEASURE_COUNT:
            measure[r] = _sum_columns(counts, rule_rows)
        elif rule.measure == MEASURE_AMOUNT:
            assert amounts is not None
            measure[r] = _sum_columns(amounts, rule_rows)
        else:
            assert latest is not None
            last_day = (
                latest[rule_rows].max(axis=0)
                if len(rule_rows)
                else np.full(n, _NO_DAY, dtype=np.int64)
            )
            has[r] = last_day != _NO_DAY
            measure[r] = np.where(has[r], at - last_day, 0)
        contribution[r] = _contribution(rule, measure[r], has[r], exact)
    if prog.peer_rules:
        if network is None:
            raise ValueError(f"scheme {c.id!r} reads peer ratings: evaluate it with ratings")
        for r in prog.peer_rules:
            measure[r], has[r] = network.peer_measure(r, first, last)
            contribution[r] = _contribution(c.rules[r], measure[r], has[r], exact)

    spec = c.scheme.score
    summed = contribution[prog.summed[use[0], use[1]]] if weighed else contribution
    score = _score(spec.base, spec.min, spec.max, summed, [w for _, _, w in weighed])
    if trace:  # the weighed rules one by one, to show (the score is already summed)
        for direct, matrix, _ in weighed:
            direct.evaluate(matrix, measure, contribution)

    if prog.grade_bounds is not None:
        # how many bounds each score reaches: one compare per bound (a binary search per
        # score is slower for a handful of grades)
        found = (score >= prog.grade_bounds[:, None]).sum(axis=0, dtype=np.int16)
        grade = len(prog.grade_names) - 1 - found
    else:
        grade = np.full(n, len(prog.grade_names) - 1, dtype=np.int16)
        for g in range(len(prog.grade_names) - 2, -1, -1):
            least = prog.grade_min[g]
            assert least is not None  # validated: every grade but the last has a min
            grade[score >= least] = g

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
    slot = rows.astype(np.int64) - 1
    slot[slot < 0] = c.n_slots
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
    prog: Program,
    prep: Prepared,
    lo: int,
    hi: int,
    rows: npt.NDArray[Any],
    first: int,
    n: int,
) -> tuple[I64, int]:
    """Sums of amounts per amount row and subject (``[amount rows, n]``) over the records an
    amount rule reads, exact; and a bound on every such sum."""
    types = prep.type_index[lo:hi]
    hit = np.zeros(hi - lo, dtype=np.bool_)
    for k in np.flatnonzero(prep.tables.amount).tolist():  # Python ints keep compares narrow
        hit |= types == k
    where = np.flatnonzero(hit)
    values = prep.amount[lo:hi][where]
    key = prog.amount_row[rows[where]] * n
    key += prep.subject[lo:hi][where]
    if first:
        key -= first
    width = len(prog.compiled.amount_slots) + 1
    cells = width * n
    peak = int(values.max()) if len(values) else 0
    bound = peak * len(values)
    if bound < _FLOAT_EXACT:
        sums = np.bincount(key, weights=values.astype(np.float64), minlength=cells)
        return sums.astype(np.int64).reshape(width, n), bound
    if bound <= _INT64_MAX:
        exact = np.zeros(cells, dtype=np.int64)
        np.add.at(exact, key, values)
        return exact.reshape(width, n), bound
    # sums that may pass 64 bits: Python integers, kept only where they are needed
    big = np.zeros(cells, dtype=object)
    np.add.at(big, key, values.astype(object))
    if max(big.max(), 0) <= _INT64_MAX:
        return big.astype(np.int64).reshape(width, n), bound
    return big.reshape(width, n), bound


def _latest(prep: Prepared, lo: int, t: npt.NDArray[np.intp], key: I64, cells: int) -> I64:
    """Latest occurrence per cell, over the records a days_since rule reads."""
    latest = np.full(cells, _NO_DAY, dtype=np.int64)
    where = np.flatnonzero(prep.tables.days_since[t])
    np.maximum.at(latest, key[where], prep.occurred[lo : lo + len(key)][where].astype(np.int64))
    return latest


def _score(
    base: int, low: int | None, high: int | None, contribution: I64, extra: list[I64]
) -> I64:
    """``base + sum(contributions) + sum(extra)``, raised to ``low`` and lowered to ``high``;
    exact.

    Sums that may pass 64 bits are added as Python integers and bounded before they are
    stored; a bounded score that still does not fit raises ScoreOverflow.
    """
    parts = contribution.shape[0] + len(extra)
    peak = max(
        [int(np.abs(contribution).max()) if contribution.size else 0]
        + [int(np.abs(e).max()) for e in extra if e.size]
    )
    if parts and peak > (_INT64_MAX - abs(base)) // (parts + 1):
        exact = base + contribution.astype(object).sum(axis=0)
        for e in extra:
            exact = exact + e.astype(object)
        if low is not None:
            exact = np.maximum(exact, low)
        if high is not None:
            exact = np.minimum(exact, high)
        if any(abs(int(v)) > _INT64_MAX for v in exact):
            raise ScoreOverflow(
                "a score is beyond the 64-bit range; bound it with score min/max or cap the rules"
            )
        out: I64 = exact.astype(np.int64)
        return out
    score: I64 = base + contribution.sum(axis=0, dtype=np.int64)
    for e in extra:
        score += e
    if low is not None:
        np.maximum(score, low, out=score)
    if high is not None:
        np.minimum(score, high, out=score)
    return score


def linear(
    quotient: I64,
    points: I64 | int,
    cap: I64 | int,
    capped: Bools | bool,
    *,
    exact: bool = False,
) -> I64:
    """``points * quotient`` clipped to ``[-cap, cap]`` where capped, computed without
    overflow (``quotient >= 0``); an uncapped product beyond 64 bits raises ScoreOverflow,
    or with ``exact`` is a Python integer (the result is then an object array)."""
    p = np.asarray(points, dtype=np.int64)
    c = np.where(capped, cap, _INT64_MAX).astype(np.int64)
    over = quotient > c // np.maximum(np.abs(p), 1)
    if not over.any():
        out: I64 = quotient * p
        return out
    if bool((over & ~np.asarray(capped) & (p != 0)).any()):
        if exact:
            product = quotient.astype(object) * p.astype(object)
            out = np.where(over & np.asarray(capped), np.sign(p) * c, product)
            return out
        raise ScoreOverflow(
            "a rule's contribution (points times its measure) is beyond the "
            "64-bit range; give the rule a cap"
        )
    out = np.where(over, np.sign(p) * c, np.where(over, 0, quotient) * p)
    return out


def _contribution(rule: CompiledRule, measure: I64, has: Bools, exact: bool) -> I64:
    if rule.points is not None:
        out = linear(
            measure // rule.per, rule.points, rule.cap or 0, rule.cap is not None, exact=exact
        )
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
    processes: bool = False,
) -> Evaluated:
    """Evaluate every subject of ``prep`` at day ``at``, partition by partition (with the
    network facts of that day when the scheme uses relations or peer ratings), on
    ``workers`` threads, or forked processes with ``processes``."""
    n = prep.n_subjects
    parts = partitions(prep, records_per_partition)
    threads = workers if workers is not None else default_workers()
    fork = (
        processes
        and threads > 1
        and len(parts) > 1
        and prep.n_records >= forked.MIN_RECORDS
        and forked.available()
    )
    empty = forked.shared_empty if fork else np.empty
    out = Evaluated(
        score=empty(n, np.int64),
        grade=empty(n, np.int16),
        lists=empty((len(prog.list_ids), n), np.bool_),
        applied=empty((len(prog.measure_ids), n), np.bool_),
        network=network,
    )

    day = DayTables.of(prep.tables, at)

    def run(bounds: tuple[int, int]) -> None:
        a, b = bounds
        st = evaluate_partition(prog, prep, a, b, at, network=network, day=day)
        out.score[a:b] = st.score
        out.grade[a:b] = st.grade
        out.lists[:, a:b] = st.lists
        out.applied[:, a:b] = st.applied

    if fork:
        forked.map_forked(run, parts, threads)
    elif threads <= 1 or len(parts) <= 1:
        for p in parts:
            run(p)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, parts))
    return out

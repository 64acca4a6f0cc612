"""Every agent's state under one scheme, kept current week by week with the kernel.

Evaluating every subject at every step would cost agents times steps. But a subject's
state at a date is a function of the slots its records fall in (SCHEME.md §3-§4, the
kernel's :func:`~socialcredit.engine.kernel.cell_rows`), and a record's slot changes only
on a few days the kernel names (:func:`~socialcredit.engine.kernel.change_days`: when it
comes into effect, when its age crosses a band cut or leaves every window) and on the day a
``ref`` record ends it. So when records are written, the tracker files their subjects under
the weeks of those days; at each week's evaluation it re-evaluates, with the kernel, only
the subjects filed there (and, every week, subjects a ``days_since`` rule reads, whose
measure grows daily). Every other subject keeps its state; a subject without records has
the state of the empty ledger, evaluated once. The work grows with the records, not with
agents times weeks, and the states are exactly the kernel's (a test checks them against a
full evaluation of the exported ledger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.engine import Engine
from socialcredit.engine.columns import prepare_arrays, type_tables
from socialcredit.engine.compiled import NEVER
from socialcredit.engine.kernel import PartState, change_days, evaluate_partition
from socialcredit.lab.ledger import Ledger
from socialcredit.lab.penalties import Sanctions

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Change:
    """The subjects re-evaluated at one week, with their states before and after."""

    agents: I64  # agent rows, ascending
    score: tuple[I64, I64]  # (before, after)
    grade: tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]
    lists: tuple[Bools, Bools]  # [lists, agents]
    denied: tuple[I64, I64]  # size of the denied set
    with_false: tuple[Bools, Bools]  # a false record counts for the subject
    bought: tuple[I64, I64]  # points held from redeeming rules

    def __len__(self) -> int:
        return len(self.agents)


class Tracker:
    """Per-agent states of one partition under one scheme (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        type_names: list[str],
        scored: Bools,
        ledger: Ledger,
        *,
        start: int,
        weeks: int,
        redeeming: tuple[int, ...] = (),
    ) -> None:
        self.engine = engine
        self.compiled = engine.compiled
        self.tables = type_tables(self.compiled, pa.array(type_names, pa.string()))
        self.scored = scored
        self.ledger = ledger
        self.first_evaluation = start + 6
        self.weeks = weeks
        self.redeeming = np.asarray(redeeming, dtype=np.int64)
        self.sanctions = Sanctions.of(self.compiled.scheme)
        self.pending: list[list[I64]] = [[] for _ in range(weeks)]
        self.filed = 0  # records filed so far (the ledger only grows)
        self.always = np.zeros(len(scored), dtype=np.bool_)
        self.always_agents = np.zeros(0, dtype=np.int64)
        self._mark = np.zeros(len(scored), dtype=np.bool_)  # scratch: agents to evaluate
        empty = self._evaluate(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 1, start)
        n = len(scored)
        self.score: I64 = np.full(n, empty.score[0], dtype=np.int64)
        self.grade = np.full(n, empty.grade[0], dtype=np.int16)
        self.lists: Bools = np.repeat(empty.lists, n, axis=1)
        self.denied: I64 = np.full(n, self.sanctions.denied(empty.applied)[0], dtype=np.int64)
        self.with_false = np.zeros(n, dtype=np.bool_)
        self.bought: I64 = np.full(n, self._bought(empty)[0], dtype=np.int64)

    # ---- filing records under the weeks their subjects change --------------------------

    def _week_of(self, days: I64) -> I64:
        """The first evaluation (week index) on or after each day (at most ``weeks``)."""
        out: I64 = np.clip(-((self.first_evaluation - days) // 7), 0, self.weeks)
        return out

    def _file_new_records(self) -> None:
        led = self.ledger
        lo, hi = self.filed, led.size
        self.filed = hi
        if hi == lo:
            return
        subject = led.column("subject")[lo:hi].astype(np.int64)
        type_index = led.column("type")[lo:hi]
        days = change_days(
            self.tables, type_index, led.column("occurred")[lo:hi], led.column("recorded")[lo:hi]
        )
        weeks = self._week_of(days)
        # a cut reached before the record is in effect changes nothing (it is in the dump)
        weeks[:, 1:][days[:, 1:] <= days[:, :1]] = self.weeks
        agents = np.broadcast_to(subject[:, None], weeks.shape)
        soon = (weeks < self.weeks) & self.scored[subject][:, None]
        weeks, agents = weeks[soon], agents[soon]
        ref = led.column("ref")[lo:hi]
        enders = np.flatnonzero(ref >= 0)
        if len(enders):  # the day a ref record ends a record: that record's subject changes
            ended = led.column("subject")[ref[enders]].astype(np.int64)
            when = self._week_of(led.column("recorded")[lo:hi][enders].astype(np.int64))
            soon = (when < self.weeks) & self.scored[ended]
            weeks = np.concatenate([weeks, when[soon]])
            agents = np.concatenate([agents, ended[soon]])
        if len(weeks):
            small = np.int16 if self.weeks < 2**15 else np.int32
            order = np.argsort(weeks.astype(small), kind="stable")  # a radix sort for int16
            weeks, agents = weeks[order], agents[order]
            cuts = np.flatnonzero(np.diff(weeks)) + 1
            starts = np.concatenate([[0], cuts])
            for first, group in zip(starts, np.split(agents, cuts), strict=True):
                self.pending[int(weeks[first])].append(group)
        daily = self.tables.days_since[type_index] & self.scored[subject]
        if daily.any():
            fresh = np.unique(subject[daily])
            fresh = fresh[~self.always[fresh]]
            self.always[fresh] = True
            self.always_agents = np.union1d(self.always_agents, fresh)

    # ---- evaluating ------------------------------------------------------------------

    def _evaluate(self, rows: I64, owner: I64, n: int, at: int) -> PartState:
        led = self.ledger
        ended = led.column("ended")[rows]
        prep = prepare_arrays(
            self.compiled,
            self.tables,
            n,
            owner.astype(np.int32),
            led.column("type")[rows],
            led.column("occurred")[rows],
            led.column("recorded")[rows],
            led.column("amount")[rows],
            ended if bool((ended != NEVER).any()) else None,
        )
        return evaluate_partition(self.engine.program, prep, 0, n, at, trace=True)

    def _bought(self, st: PartState) -> I64:
        if not len(self.redeeming):
            return np.zeros(st.score.shape[0], dtype=np.int64)
        assert st.contribution is not None
        out: I64 = st.contribution[self.redeeming].sum(axis=0)
        return out

    def update(self, week: int, at: int) -> Change:
        """Re-evaluate, at day ``at`` (week ``week``'s evaluation), the subjects whose
        records change slot since the previous week; return their states before and after,
        and keep the new ones."""
        self._file_new_records()
        parts = self.pending[week]
        self.pending[week] = []
        if len(self.always_agents):
            parts.append(self.always_agents)
        mark = self._mark
        for part in parts:
            mark[part] = True
        agents = np.flatnonzero(mark).astype(np.int64)
        mark[agents] = False
        if not len(agents):
            return self._unchanged()
        rows, owner = self.ledger.records_of(agents)
        st = self._evaluate(rows, owner, len(agents), at)
        assert st.slot is not None
        counting = st.slot < self.compiled.n_slots
        with_false = np.zeros(len(agents), dtype=np.bool_)
        with_false[owner[counting & self.ledger.column("false")[rows]]] = True
        denied = self.sanctions.denied(st.applied)
        bought = self._bought(st)
        change = Change(
            agents=agents,
            score=(self.score[agents], st.score),
            grade=(self.grade[agents], st.grade),
            lists=(self.lists[:, agents], st.lists),
            denied=(self.denied[agents], denied),
            with_false=(self.with_false[agents], with_false),
            bought=(self.bought[agents], bought),
        )
        self.score[agents] = st.score
        self.grade[agents] = st.grade
        self.lists[:, agents] = st.lists
        self.denied[agents] = denied
        self.with_false[agents] = with_false
        self.bought[agents] = bought
        return change

    def _unchanged(self) -> Change:
        none = np.zeros(0, dtype=np.int64)
        grades = np.zeros(0, dtype=np.int16)
        lists = self.lists[:, :0]
        flags = np.zeros(0, dtype=np.bool_)
        return Change(
            none,
            (none, none),
            (grades, grades),
            (lists, lists),
            (none, none),
            (flags, flags),
            (none, none),
        )

    # ---- reading -----------------------------------------------------------------------

    def black_listed(self) -> Bools:
        """Per agent: on a black list (unscored agents never are)."""
        return self.sanctions.black_listed(self.lists) & self.scored

    def penalized(self, agents: I64 | None = None) -> Bools:
        """Per agent (or of ``agents``): on a black list, denied an action, or scored below
        the base; never for unscored agents."""
        sel = slice(None) if agents is None else agents
        out: Bools = (
            self.sanctions.black_listed(self.lists[:, sel])
            | (self.denied[sel] > 0)
            | (self.score[sel] < self.sanctions.base)
        ) & self.scored[sel]
        return out

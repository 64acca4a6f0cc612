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

**Schemes of the network extension** (docs/networks.md) are tracked the same way, in the
engine's two stages. The tracker keeps, per ``related`` condition, which agents satisfy
its ``where`` (which reads only scores, grades and lists without relations, so an agent's
answer changes only when the agent is re-evaluated) and, per agent, how many of its
related agents do. When a re-evaluated agent's answer changes, the counts of its related
agents (the condition's graph, :mod:`socialcredit.lab.networks`) are corrected, and the
agents whose condition flips are evaluated again with the condition decided. Peer measures
(EigenTrust) are handed in by the step loop when it recomputes them
(:meth:`Tracker.set_reputation`); the agents whose measure changed are re-evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.engine import Engine
from socialcredit.engine.columns import prepare_arrays, type_tables
from socialcredit.engine.compiled import NEVER
from socialcredit.engine.kernel import PartState, change_days, evaluate_partition
from socialcredit.engine.network import (
    NetworkState,
    PreparedNetwork,
    Reputation,
    where_targets,
)
from socialcredit.lab.ledger import Ledger
from socialcredit.lab.networks import Friends, neighbours
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


@dataclass(frozen=True)
class _States:
    """The states of some agents (columns in the agents' order)."""

    score: I64
    grade: npt.NDArray[np.int16]
    lists: Bools  # [lists, agents]
    denied: I64
    with_false: Bools
    bought: I64

    def merged(self, agents: I64, other: _States, others: I64) -> tuple[I64, _States]:
        """These states of ``agents`` and ``other``'s of ``others`` (which win), for the
        union of both, ascending."""
        both = np.union1d(agents, others).astype(np.int64)
        take, redo = np.searchsorted(both, agents), np.searchsorted(both, others)

        def merge(first: npt.NDArray[Any], second: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.empty((*first.shape[:-1], len(both)), dtype=first.dtype)
            out[..., take] = first
            out[..., redo] = second
            return out

        return both, _States(
            merge(self.score, other.score),
            merge(self.grade, other.grade),
            merge(self.lists, other.lists),
            merge(self.denied, other.denied),
            merge(self.with_false, other.with_false),
            merge(self.bought, other.bought),
        )


class Tracker:
    """Per-agent states of one partition under one scheme (see the module doc).

    ``links`` gives, for each ``related`` condition of the scheme (in the engine's order),
    the graph of its related agents; ``reputation`` the peer measures at the start (both
    only for schemes of the network extension)."""

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
        links: Sequence[Friends] = (),
        reputation: Reputation | None = None,
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
        n = len(scored)
        self._network(links, reputation, n)
        none = np.zeros(0, dtype=np.int64)
        if self.plan is None or not self.plan.uses_relations:
            uniform = np.zeros(n, dtype=np.int64)
            patterns = np.zeros((0, 1), dtype=np.bool_)
        else:
            uniform, patterns = self._start_relations(none, start)
        self.uniform = patterns.shape[1] == 1
        """Whether every agent starts in the same state (the empty ledger's)."""
        # the empty ledger's state, once per pattern of relation conditions (usually one)
        empty = self._evaluate(none, none, patterns.shape[1], start, related=patterns)
        self.score: I64 = empty.score[uniform]
        self.grade = empty.grade[uniform]
        self.lists: Bools = empty.lists[:, uniform]
        self.denied: I64 = self.sanctions.denied(empty.applied)[uniform]
        self.with_false = np.zeros(n, dtype=np.bool_)
        self.bought: I64 = self._bought(empty)[uniform]

    def _network(self, links: Sequence[Friends], reputation: Reputation | None, n: int) -> None:
        """The network facts of every agent at the start."""
        self.plan = self.engine.program.plan
        k = len(self.plan.related) if self.plan is not None else 0
        if len(links) != k:
            raise ValueError(f"the scheme has {k} related conditions; {len(links)} graphs given")
        self.links = list(links)
        self.at_least = np.array(
            [c.related.at_least for c in self.plan.related] if self.plan is not None else [],
            dtype=np.int64,
        )
        self.targets = np.zeros((k, n), dtype=np.bool_)  # the agent satisfies the where
        self.counts = np.zeros((k, n), dtype=np.int64)  # related agents that satisfy it
        self.holds = np.zeros((k, n), dtype=np.bool_)  # the condition holds for the agent
        self.rating = np.zeros(n, dtype=np.int64)
        self.rated = np.zeros(n, dtype=np.bool_)
        self.trust = np.zeros(n, dtype=np.int64)
        self._dirty = np.zeros(0, dtype=np.int64)  # agents whose peer measures changed
        if self.plan is not None and self.plan.uses_ratings:
            if reputation is None:
                raise ValueError("a scheme on peer ratings needs the reputation at the start")
            self._set_peer(reputation)
        empty32 = np.zeros(0, dtype=np.int32)
        self._net = (
            PreparedNetwork(
                self.plan,
                pa.array([], pa.string()),
                pa.array([], pa.string()),
                {},
                empty32,
                empty32,
                np.zeros(0, dtype=np.int64),
                empty32,
            )
            if self.plan is not None
            else None
        )

    def _start_relations(self, none: I64, start: int) -> tuple[I64, Bools]:
        """Which agents satisfy each ``where`` before any record (all scored agents or
        none), the counts and conditions that follow, and the distinct patterns of
        conditions: (each agent's pattern, the patterns as columns)."""
        assert self.plan is not None
        k_all = len(self.plan.related)
        first = self._evaluate(none, none, 1, start, related=np.zeros((k_all, 1), np.bool_))
        where = where_targets(self.plan, first.score, first.grade, first.lists)[:, 0]
        scored = self.scored
        for k in range(k_all):
            if not where[k]:
                continue
            self.targets[k] = scored
            graph = self.links[k]
            running = np.concatenate(([0], np.cumsum(scored[graph.indices])))
            self.counts[k] = running[graph.indptr[1:]] - running[graph.indptr[:-1]]
        self.holds = (self.counts >= self.at_least[:, None]) & scored
        code = np.zeros(len(scored), dtype=np.int64)
        for k in range(k_all):
            code |= self.holds[k].astype(np.int64) << k
        if not code.any():
            return np.zeros(len(scored), dtype=np.int64), np.zeros((k_all, 1), np.bool_)
        values, inverse = np.unique(code, return_inverse=True)
        patterns = ((values[None, :] >> np.arange(k_all)[:, None]) & 1).astype(np.bool_)
        return inverse.reshape(-1).astype(np.int64), patterns

    def _set_peer(self, rep: Reputation) -> None:
        """Take the peer measures of ``rep`` (per scored agent, in agent order)."""
        rows = np.flatnonzero(self.scored)
        rating = np.zeros_like(self.rating)
        rated = np.zeros_like(self.rated)
        trust = np.zeros_like(self.trust)
        rating[rows], rated[rows], trust[rows] = rep.rating, rep.rated, rep.trust_per_mille
        moved = (rating != self.rating) | (rated != self.rated) | (trust != self.trust)
        self._dirty = np.union1d(self._dirty, np.flatnonzero(moved & self.scored))
        self.rating, self.rated, self.trust = rating, rated, trust

    def set_reputation(self, rep: Reputation) -> None:
        """New peer measures (the engine's :func:`~socialcredit.engine.network.reputation`
        over the scored agents in agent order); the agents whose measures changed are
        re-evaluated at the next :meth:`update`."""
        self._set_peer(rep)

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

    def _evaluate(
        self,
        rows: I64,
        owner: I64,
        n: int,
        at: int,
        *,
        agents: I64 | None = None,
        related: Bools | None = None,
    ) -> PartState:
        """Evaluate ``n`` subjects owning records ``rows`` at ``at``, with the network facts
        of ``agents`` (or the relation conditions ``related``, columns per subject)."""
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
        network = self._state(agents, n, at, related)
        return evaluate_partition(self.engine.program, prep, 0, n, at, trace=True, network=network)

    def _state(
        self, agents: I64 | None, n: int, at: int, related: Bools | None
    ) -> NetworkState | None:
        """The network facts of ``agents`` (or of ``n`` agents at the start, with the
        conditions ``related`` and the peer measures of agent 0)."""
        if self.plan is None or self._net is None:
            return None
        sel: I64 = agents if agents is not None else np.zeros(n, dtype=np.int64)
        if related is None:
            related = self.holds[:, sel]
        rep = None
        if self.plan.uses_ratings:
            empty32 = np.zeros(0, dtype=np.int32)
            rep = Reputation(
                trust=self.trust[sel],
                trust_per_mille=self.trust[sel],
                rating=self.rating[sel],
                rated=self.rated[sel],
                iterations=0,
                change=0,
                rater=empty32,
                ratee=empty32,
                stars=np.zeros(0, dtype=np.int64),
                day=empty32,
            )
        counts = np.zeros(related.shape, dtype=np.int64)
        return NetworkState(self._net, at, rep, related, related, counts)

    def _bought(self, st: PartState) -> I64:
        if not len(self.redeeming):
            return np.zeros(st.score.shape[0], dtype=np.int64)
        assert st.contribution is not None
        out: I64 = st.contribution[self.redeeming].sum(axis=0)
        return out

    def update(self, week: int, at: int) -> Change:
        """Re-evaluate, at day ``at`` (week ``week``'s evaluation), the subjects whose
        records change slot since the previous week (and, under a scheme of the network
        extension, whose peer measures changed, and whose relation conditions flip as a
        result); return their states before and after, and keep the new ones."""
        self._file_new_records()
        parts = self.pending[week]
        self.pending[week] = []
        if len(self.always_agents):
            parts.append(self.always_agents)
        if len(self._dirty):
            parts.append(self._dirty)
            self._dirty = np.zeros(0, dtype=np.int64)
        mark = self._mark
        for part in parts:
            mark[part] = True
        agents = np.flatnonzero(mark).astype(np.int64)
        mark[agents] = False
        if not len(agents):
            return self._unchanged()
        new = self._states(agents, at)
        if self.plan is not None and self.plan.uses_relations:
            flipped = self._relations(agents, new)
            if len(flipped):  # stage 2: evaluate again those whose conditions flipped
                agents, new = new.merged(agents, self._states(flipped, at), flipped)
        change = Change(
            agents=agents,
            score=(self.score[agents], new.score),
            grade=(self.grade[agents], new.grade),
            lists=(self.lists[:, agents], new.lists),
            denied=(self.denied[agents], new.denied),
            with_false=(self.with_false[agents], new.with_false),
            bought=(self.bought[agents], new.bought),
        )
        self.score[agents] = new.score
        self.grade[agents] = new.grade
        self.lists[:, agents] = new.lists
        self.denied[agents] = new.denied
        self.with_false[agents] = new.with_false
        self.bought[agents] = new.bought
        return change

    def _states(self, agents: I64, at: int) -> _States:
        """The states of ``agents`` at ``at``: score, grade, lists, size of the denied
        set, whether a false record counts, points held from redeeming rules."""
        rows, owner = self.ledger.records_of(agents)
        st = self._evaluate(rows, owner, len(agents), at, agents=agents)
        assert st.slot is not None
        counting = st.slot < self.compiled.n_slots
        with_false = np.zeros(len(agents), dtype=np.bool_)
        with_false[owner[counting & self.ledger.column("false")[rows]]] = True
        denied = self.sanctions.denied(st.applied)
        return _States(st.score, st.grade, st.lists, denied, with_false, self._bought(st))

    def _relations(self, agents: I64, new: _States) -> I64:
        """Take the re-evaluated agents' answers to each ``where``, correct the counts of
        their related agents, and return the agents whose relation conditions flip."""
        assert self.plan is not None
        where = where_targets(self.plan, new.score, new.grade, new.lists) & self.scored[agents]
        flip = where != self.targets[:, agents]
        if not flip.any():
            return np.zeros(0, dtype=np.int64)
        self.targets[:, agents] = where
        touched: list[I64] = []
        for k, graph in enumerate(self.links):
            rows = agents[flip[k]]
            if not len(rows):
                continue
            which, mates = neighbours(graph, rows)
            sign = np.where(where[k, flip[k]], 1, -1).astype(np.int64)
            np.add.at(self.counts[k], mates, sign[which])
            touched.append(mates)
        if not touched:
            return np.zeros(0, dtype=np.int64)
        rows = np.unique(np.concatenate(touched))
        holds = (self.counts[:, rows] >= self.at_least[:, None]) & self.scored[rows]
        moved = (holds != self.holds[:, rows]).any(axis=0)
        self.holds[:, rows] = holds
        out: I64 = rows[moved]
        return out

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

"""The step loop: a world, a scheme, weekly steps, and the kernel's states after each.

Each week, for each conduct of the world, events are drawn per group of agents (a Poisson
count per group, then the agents), so the cost grows with the events, not with agents times
types. Agencies record a share of them (detection coverage), some records are false
(misidentification), some false records are contested and voided by a later record whose
``ref`` names them, some judgments are fulfilled (again a ``ref`` record), and people
donate. The week's records are appended to the ledger, and the scheme is evaluated by the
same kernel as ``socialcredit score`` (:class:`socialcredit.engine.Engine`). Its states feed
back: a penalized subject's rates of penalized conduct fall (deterrence) and its donations
rise (redemption).

Everything is drawn from generators seeded by ``seed``: the population from
``default_rng([seed, 0])`` (the same for every scheme), the conduct from
``default_rng([seed, 1])`` (common random numbers: two schemes that change nothing in
behaviour see the same conduct). A run is exactly reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import from_day, to_day
from socialcredit.engine import Engine, States
from socialcredit.engine.kernel import record_slots
from socialcredit.lab.metrics import MetricsTable, gini
from socialcredit.lab.penalties import black_listed, denied_counts, penalized, penalized_types
from socialcredit.lab.population import (
    N_GROUPS,
    PERSON,
    Population,
    build_population,
)
from socialcredit.lab.world import DECILES, Conduct, LoadedWorld
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.scheme import Finding, LoadedScheme, audit, is_critical

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
DAYS_PER_YEAR = 365
WEEKS_PER_YEAR = 52
PERIOD_WEEKS = 13
"""The periods compared by the deterrence metric: the first and the last 13 weeks."""


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on: the world, the size, the length and the seed."""

    world: LoadedWorld
    persons: int
    organizations: int
    years: int
    seed: int

    @property
    def weeks(self) -> int:
        """Weekly steps."""
        return WEEKS_PER_YEAR * self.years

    @property
    def start(self) -> int:
        """The first day (day number)."""
        return to_day(self.world.world.start)

    @property
    def end(self) -> int:
        """The last day, the date of the final states."""
        return self.start + 7 * self.weeks - 1

    def parameters(self) -> dict[str, Any]:
        """The parameters, as recorded in the report."""
        return {
            "world": self.world.world.world,
            "world_source": self.world.source,
            "persons": self.persons,
            "organizations": self.organizations,
            "years": self.years,
            "weeks": self.weeks,
            "seed": self.seed,
            "start": from_day(self.start).isoformat(),
            "end": from_day(self.end).isoformat(),
        }


def make_settings(
    world: LoadedWorld, *, population: int | None = None, years: int = 1, seed: int = 7
) -> Settings:
    """Settings for a world; ``population`` replaces its persons, organizations scale."""
    pop = world.world.population
    persons = population if population is not None else pop.persons
    organizations = round(pop.organizations * persons / pop.persons)
    if persons < 1 or years < 1:
        raise ValueError("population and years must be at least 1")
    return Settings(world, persons, organizations, years, seed)


@dataclass
class Ledger:
    """The records of a run as growing numpy columns; a record's id is its row."""

    subject: list[I64] = field(default_factory=list)  # agent row
    type: list[I64] = field(default_factory=list)  # index in the type names
    occurred: list[I64] = field(default_factory=list)
    recorded: list[I64] = field(default_factory=list)
    amount: list[I64] = field(default_factory=list)
    ref: list[I64] = field(default_factory=list)  # id of the ended record, -1 for none
    false: list[Bools] = field(default_factory=list)
    size: int = 0

    def add(
        self,
        subject: I64,
        type_code: int,
        occurred: I64,
        recorded: I64,
        *,
        amount: I64 | None = None,
        ref: I64 | None = None,
        false: bool = False,
    ) -> I64:
        """Append records; return their ids."""
        n = len(subject)
        self.subject.append(subject)
        self.type.append(np.full(n, type_code, dtype=np.int64))
        self.occurred.append(occurred)
        self.recorded.append(recorded)
        self.amount.append(amount if amount is not None else np.zeros(n, dtype=np.int64))
        self.ref.append(ref if ref is not None else np.full(n, -1, dtype=np.int64))
        self.false.append(np.full(n, false, dtype=np.bool_))
        ids = np.arange(self.size, self.size + n, dtype=np.int64)
        self.size += n
        return ids

    def column(self, name: str) -> npt.NDArray[Any]:
        """One column, concatenated (and kept so, for the next call)."""
        parts: list[npt.NDArray[Any]] = getattr(self, name)
        if len(parts) != 1:
            joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            parts[:] = [joined]
        return parts[0]


@dataclass(frozen=True)
class Run:
    """The outcome of one scheme on one world."""

    settings: Settings
    scheme: LoadedScheme
    findings: list[Finding]
    population: Population
    records: pa.Table  # the ledger at the end, canonical schema, in recording order
    false_record: Bools  # per row of ``records``: the conduct never happened
    states: States  # the kernel's states at the end
    metrics: pa.Table

    @property
    def critical(self) -> bool:
        """Whether the scheme has critical rights-audit findings."""
        return is_critical(self.findings)

    @property
    def subjects(self) -> pa.Table:
        """The canonical subjects table."""
        return self.population.subjects


WeekHook = Callable[[int], None]


def simulate(
    settings: Settings,
    scheme: LoadedScheme,
    *,
    population: Population | None = None,
    on_week: WeekHook | None = None,
) -> Run:
    """Run ``scheme`` on the world of ``settings``, week by week; see the module doc."""
    if population is None:
        population = build_population(
            settings.world.world,
            settings.persons,
            settings.organizations,
            np.random.default_rng([settings.seed, 0]),
        )
    return _Simulation(settings, scheme, population).run(on_week)


class _Simulation:
    def __init__(self, settings: Settings, scheme: LoadedScheme, pop: Population) -> None:
        self.settings = settings
        self.loaded = scheme
        self.scheme = scheme.scheme
        self.world = settings.world.world
        self.pop = pop
        self.rng = np.random.default_rng([settings.seed, 1])
        self.engine = Engine(self.scheme)
        self.findings = audit(self.scheme, scheme.places)
        self.penalized_types = penalized_types(self.scheme)
        names: dict[str, None] = {}
        for c in self.world.behaviour:
            names.setdefault(c.type, None)
            if c.resolution is not None:
                names.setdefault(c.resolution.type, None)
        if self.world.appeals is not None:
            names.setdefault(self.world.appeals.type, None)
        if self.world.redemption is not None:
            names.setdefault(self.world.redemption.type, None)
        self.type_names = list(names)
        self.type_code = {t: i for i, t in enumerate(self.type_names)}
        self.ledger = Ledger()
        self.subjects = pop.subjects
        self.penalized = np.zeros(pop.size, dtype=np.bool_)
        scored_kinds = {0 if k == "person" else 1 for k in self.scheme.subjects}
        self.scored = np.isin(pop.kind, list(scored_kinds))
        self.n_scored = int(self.scored.sum())
        self.state_of: I64 | None = None  # per agent: its row in the states, -1 if unscored
        self.metrics = MetricsTable(self.scheme.scheme, is_critical(self.findings))
        self.group_propensity = pop.group_propensity()
        self.group_size = np.diff(pop.bounds).astype(np.float64)
        # accumulators
        self.conduct_by_week = np.zeros(settings.weeks, dtype=np.int64)
        self.sanctioned_weeks = np.zeros(N_GROUPS, dtype=np.int64)
        self.wrongful_weeks = 0
        self.ever_wrongful = np.zeros(pop.size, dtype=np.bool_)
        self.denied_weekly: list[float] = []
        self.donated = np.zeros(DECILES + 1, dtype=np.float64)
        self.false_count = 0
        self.voided_count = 0
        self.previous_lists: Bools | None = None

    # ---- the loop -----------------------------------------------------------------

    def run(self, on_week: WeekHook | None) -> Run:
        states: States | None = None
        for week in range(self.settings.weeks):
            first = self.settings.start + 7 * week
            known = min(1.0, week / self.world.responses.deterrence.learning_weeks)
            for conduct in self.world.behaviour:
                self._conduct(conduct, week, first, known)
            self._donations(first)
            states = self._evaluate(week, first + 6)
            if on_week is not None:
                on_week(week)
        assert states is not None
        self._summaries(states)
        records, false = self._canonical()
        return Run(
            self.settings,
            self.loaded,
            self.findings,
            self.pop,
            records,
            false,
            states,
            self.metrics.to_table(),
        )

    # ---- drawing events -------------------------------------------------------------

    def _groups(self, kind: str) -> npt.NDArray[np.intp]:
        return np.arange(2 * DECILES) if kind == "person" else np.arange(2 * DECILES, N_GROUPS)

    def _draw(
        self,
        groups: npt.NDArray[np.intp],
        expected: npt.NDArray[np.float64],
        *,
        by_propensity: bool,
    ) -> I64:
        """Agents of events: a Poisson count per group, then agents within each group
        (in proportion to propensity, or uniformly)."""
        counts = self.rng.poisson(expected)
        g = np.repeat(groups, counts)
        lo, hi = self.pop.bounds[g], self.pop.bounds[g + 1]
        u = self.rng.random(len(g))
        if by_propensity:
            cum = self.pop.cum_propensity
            target = cum[lo] + u * (cum[hi] - cum[lo])
            agents = np.searchsorted(cum, target, side="right").astype(np.int64) - 1
        else:
            agents = lo + (u * (hi - lo)).astype(np.int64)
        out: I64 = np.clip(agents, lo, hi - 1)
        return out

    def _multipliers(self, c: Conduct, groups: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        out = np.ones(len(groups), dtype=np.float64)
        area = np.where(groups % (2 * DECILES) < DECILES, 0, 1)
        if c.kind == "organization":
            area = groups - 2 * DECILES
        out *= np.where(area == 0, c.by_area.urban, c.by_area.rural)
        if c.kind == "person" and c.by_decile is not None:
            out *= np.asarray(c.by_decile, dtype=np.float64)[groups % DECILES]
        return out

    def _conduct(self, c: Conduct, week: int, first: int, known: float) -> None:
        rng = self.rng
        groups = self._groups(c.kind)
        scale = c.rate * 7 / DAYS_PER_YEAR * self._multipliers(c, groups)
        weight = self.group_size[groups] if c.legal else self.group_propensity[groups]
        penalized = c.type in self.penalized_types
        response = self.world.responses
        if penalized and c.legal:
            scale = scale * (1 - response.chilling)
        elif penalized:
            scale = scale * (1 - response.deterrence.general * known)
        agents = self._draw(groups, scale * weight, by_propensity=not c.legal)
        specific = response.deterrence.specific
        if penalized and not c.legal and specific > 0:
            keep = ~self.penalized[agents] | (rng.random(len(agents)) >= specific)
            agents = agents[keep]
        if penalized:
            self.conduct_by_week[week] += int(self.scored[agents].sum())
        seen = agents[rng.random(len(agents)) < self.world.detection.coverage[c.category]]
        ids = self._record(c, seen, first)
        if c.resolution is not None and len(ids):
            ended = rng.random(len(ids)) < c.resolution.share
            when = self.ledger.column("recorded")[ids[ended]]
            when = when + 1 + rng.poisson(c.resolution.mean_days, size=len(when))
            self.ledger.add(
                self.ledger.column("subject")[ids[ended]],
                self.type_code[c.resolution.type],
                when,
                when,
                ref=ids[ended],
            )
        if not c.legal and self.world.detection.false_record_rate > 0:
            self._false_records(c, len(seen), first)

    def _record(self, c: Conduct, agents: I64, first: int, *, false: bool = False) -> I64:
        rng = self.rng
        n = len(agents)
        occurred = first + rng.integers(0, 7, size=n)
        recorded = occurred + rng.poisson(self.world.detection.delay_days, size=n)
        amount = rng.poisson(c.amount, size=n).astype(np.int64) if c.amount else None
        return self.ledger.add(
            agents, self.type_code[c.type], occurred, recorded, amount=amount, false=false
        )

    def _false_records(self, c: Conduct, true_records: int, first: int) -> None:
        """Records of conduct that never happened, on subjects of the same kind picked at
        random; some are contested and voided (when the scheme allows appeals)."""
        rng = self.rng
        n = rng.poisson(self.world.detection.false_record_rate * true_records)
        lo, hi = (
            (int(self.pop.bounds[0]), int(self.pop.bounds[2 * DECILES]))
            if c.kind == "person"
            else (int(self.pop.bounds[2 * DECILES]), int(self.pop.bounds[N_GROUPS]))
        )
        if n == 0 or hi == lo:
            return
        agents = rng.integers(lo, hi, size=n).astype(np.int64)
        ids = self._record(c, agents, first, false=True)
        self.false_count += n
        appeals = self.world.appeals
        if appeals is None or not self.scheme.appeal_days:
            return
        decile = self.pop.decile[agents]
        contest = np.where(
            decile > 0,
            np.asarray(appeals.contest_by_decile)[np.maximum(decile, 1) - 1],
            appeals.contest_organization,
        )
        voided = (rng.random(n) < contest) & (rng.random(n) < appeals.upheld)
        when = self.ledger.column("recorded")[ids[voided]] + appeals.delay_days
        self.ledger.add(agents[voided], self.type_code[appeals.type], when, when, ref=ids[voided])
        self.voided_count += int(voided.sum())

    def _donations(self, first: int) -> None:
        r = self.world.redemption
        if r is None:
            return
        rng = self.rng
        groups = self._groups("person")
        boost = max(1.0, r.when_penalized)
        rate = np.asarray(r.rate_by_decile, dtype=np.float64)[groups % DECILES]
        agents = self._draw(
            groups, rate * 7 / DAYS_PER_YEAR * boost * self.group_size[groups], by_propensity=False
        )
        accept = np.where(self.penalized[agents], r.when_penalized, 1.0) / boost
        agents = agents[rng.random(len(agents)) < accept]
        agents = agents[rng.random(len(agents)) < self.world.detection.coverage[r.category]]
        decile = self.pop.decile[agents]
        amount = rng.poisson(np.asarray(r.amount_by_decile)[decile - 1]).astype(np.int64)
        occurred = first + rng.integers(0, 7, size=len(agents))
        recorded = occurred + rng.poisson(self.world.detection.delay_days, size=len(agents))
        self.ledger.add(agents, self.type_code[r.type], occurred, recorded, amount=amount)
        np.add.at(self.donated, decile, amount)

    # ---- evaluating with the kernel --------------------------------------------------

    def _table(self) -> pa.Table:
        """The ledger in the kernel's compact form: integer ids and refs, dictionary-encoded
        subjects (indices into the sorted codes) and types."""
        led = self.ledger
        ref = led.column("ref")
        return pa.Table.from_arrays(
            [
                pa.array(np.arange(led.size, dtype=np.int64)),
                pa.DictionaryArray.from_arrays(
                    pa.array(self.pop.rank[led.column("subject")]), self.pop.sorted_codes
                ),
                pa.DictionaryArray.from_arrays(
                    pa.array(led.column("type").astype(np.int32)),
                    pa.array(self.type_names, pa.string()),
                ),
                pa.array(led.column("occurred").astype(np.int32)).view(pa.date32()),
                pa.array(led.column("recorded").astype(np.int32)).view(pa.date32()),
                pa.array(led.column("amount")),
                pa.array(ref, pa.int64(), mask=ref < 0),
            ],
            names=list(RECORDS_SCHEMA.names),
        )

    def _evaluate(self, week: int, at: int) -> States:
        prepared = self.engine.prepare(self.subjects, self._table())
        states = self.engine.evaluate(prepared, at)
        if self.state_of is None:
            found = pc.index_in(self.pop.codes, value_set=prepared.codes).fill_null(-1)
            self.state_of = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        rows = self.state_of[self.scored]
        pen = penalized(states)
        self.penalized[:] = False
        self.penalized[self.scored] = pen[rows]

        # wrongful listings: on a black list while a false record counts for the subject
        slots = record_slots(prepared, 0, prepared.n_records, at)
        counting = slots < prepared.compiled.n_slots
        false = self.ledger.column("false")[prepared.source_rows(0, prepared.n_records)]
        with_false = np.zeros(len(states), dtype=np.bool_)
        with_false[prepared.subject[counting & false]] = True
        black = black_listed(states)
        wrongful = with_false & black
        self.wrongful_weeks += int(wrongful.sum())
        self.ever_wrongful[self.scored] |= wrongful[rows]

        denied = denied_counts(states)
        sanctioned = black | (denied > 0)
        agent_sanctioned = np.zeros(self.pop.size, dtype=np.bool_)
        agent_sanctioned[self.scored] = sanctioned[rows]
        group_of = np.repeat(np.arange(N_GROUPS), np.diff(self.pop.bounds))
        self.sanctioned_weeks += np.bincount(group_of[agent_sanctioned], minlength=N_GROUPS).astype(
            np.int64
        )
        self._weekly(week, at, states, wrongful, denied, pen)
        return states

    def _weekly(
        self, week: int, at: int, states: States, wrongful: Bools, denied: I64, pen: Bools
    ) -> None:
        date = from_day(at).isoformat()
        n = max(len(states), 1)

        def add(metric: str, value: float, group: str = "") -> None:
            self.metrics.add(metric, value, group=group, week=week, date=date)

        for name, size in states.list_sizes().items():
            add("list_size", size, name)
        lists = states.raw.lists
        if self.previous_lists is not None:
            entered = (lists & ~self.previous_lists).sum(axis=1)
            left = (~lists & self.previous_lists).sum(axis=1)
        else:
            entered, left = lists.sum(axis=1), np.zeros(len(lists), dtype=np.int64)
        for i, name in enumerate(states.program.list_ids):
            add("list_entries", int(entered[i]), name)
            add("list_exits", int(left[i]), name)
        self.previous_lists = lists.copy()
        for grade, count in states.grade_counts().items():
            add("grade_share", count / n, grade)
        score = states.raw.score
        if len(score):
            for q in (10, 50, 90):
                add("score_percentile", float(np.percentile(score, q)), f"p{q}")
            add("score_mean", float(score.mean()))
        add("score_gini", gini(score))
        add("penalized", int(pen.sum()))
        add("wrongfully_listed", int(wrongful.sum()))
        per_1000 = float(denied.sum()) / n * 1000
        self.denied_weekly.append(per_1000)
        add("denied_per_1000", per_1000)
        add("penalized_conduct", int(self.conduct_by_week[week]))

    # ---- the end ---------------------------------------------------------------------

    def _summaries(self, states: States) -> None:
        m = self.metrics
        weeks = self.settings.weeks
        m.add("records", self._canonical_mask().sum())
        m.add("false_records", self.false_count)
        m.add("false_records_voided", self.voided_count)
        m.add("wrongful_person_weeks", self.wrongful_weeks)
        m.add("wrongfully_listed_subjects", int(self.ever_wrongful.sum()))
        m.add("score_gini_final", gini(states.raw.score))
        m.add("denied_per_1000_per_year", float(np.mean(self.denied_weekly)))
        span = min(PERIOD_WEEKS, weeks)
        per_year = WEEKS_PER_YEAR / span * 1000 / max(self.n_scored, 1)
        first, last = self.conduct_by_week[:span].sum(), self.conduct_by_week[-span:].sum()
        m.add("penalized_conduct_per_1000", first * per_year, group="first")
        m.add("penalized_conduct_per_1000", last * per_year, group="last")
        size = np.diff(self.pop.bounds)
        total = max(int(self.sanctioned_weeks.sum()), 1)
        for label, gs in self._sanction_groups():
            people = int(size[gs].sum())
            held = int(self.sanctioned_weeks[gs].sum())
            m.add("sanctioned_share", held / max(people * weeks, 1), group=label)
            m.add("sanctions_borne", held / total, group=label)
        persons_by_decile = np.bincount(self.pop.decile[self.pop.kind == PERSON], minlength=11)
        for d in range(1, DECILES + 1):
            m.add(
                "donated_per_person",
                self.donated[d] / max(int(persons_by_decile[d]), 1),
                group=f"decile_{d:02d}",
            )

    def _sanction_groups(self) -> list[tuple[str, npt.NDArray[np.intp]]]:
        out = [(f"decile_{d:02d}", np.array([d - 1, DECILES + d - 1])) for d in range(1, 11)]
        out.append(("urban", np.arange(DECILES)))
        out.append(("rural", np.arange(DECILES, 2 * DECILES)))
        out.append(("organization", np.arange(2 * DECILES, N_GROUPS)))
        return out

    def _canonical_mask(self) -> Bools:
        out: Bools = self.ledger.column("recorded") <= self.settings.end
        return out

    def _canonical(self) -> tuple[pa.Table, Bools]:
        """The ledger at the end in the canonical schema: records recorded by the last day,
        in recording order, with string ids; and the false-record flags, row by row."""
        led = self.ledger
        keep = np.flatnonzero(self._canonical_mask())
        recorded = led.column("recorded")[keep]
        keep = keep[np.lexsort((keep, recorded))]
        ids = np.char.add("sim-", np.char.zfill(np.arange(led.size).astype(str), 9))
        ref = led.column("ref")[keep]
        refs: list[str | None] = [
            str(i) if r >= 0 else None
            for i, r in zip(ids[np.maximum(ref, 0)].tolist(), ref.tolist(), strict=True)
        ]
        table = pa.Table.from_arrays(
            [
                pa.array(ids[keep].tolist(), pa.string()),
                self.pop.sorted_codes.take(pa.array(self.pop.rank[led.column("subject")[keep]])),
                pa.array(self.type_names, pa.string()).take(pa.array(led.column("type")[keep])),
                pa.array(led.column("occurred")[keep].astype(np.int32)).view(pa.date32()),
                pa.array(led.column("recorded")[keep].astype(np.int32)).view(pa.date32()),
                pa.array(led.column("amount")[keep], pa.int64()),
                pa.array(refs, pa.string()),
            ],
            schema=RECORDS_SCHEMA,
        )
        flags: Bools = led.column("false")[keep]
        return table, flags

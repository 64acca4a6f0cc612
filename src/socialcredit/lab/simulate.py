"""The step loop: a world, schemes, weekly steps, and the kernel's states after each.

Each week, for each conduct of the world, events are drawn per group of agents (a Poisson
count per group, then the agents), so the cost grows with the events, not with agents times
types. Agencies record a share of them (detection coverage), some records are false
(misidentification), some false records are contested and voided by a later record whose
``ref`` names them, some judgments are fulfilled (again a ``ref`` record), and people
donate. The week's records are appended to the ledger, and the scheme is evaluated by the
same kernel as ``socialcredit score``, for the subjects whose records change slot
(:mod:`socialcredit.lab.tracking`). Its states feed back: a penalized subject's rates of
penalized conduct fall (deterrence) and its donations rise (redemption).

The population is simulated in **partitions** of at most ``partition_size`` persons (and
organizations in proportion), one after another; each is simulated for all weeks under
every scheme, its counts are added to the run's (:mod:`socialcredit.lab.tally`) and its
ledger is written to disk or dropped. Memory is bounded by the partition, not the
population. Agents interact only through the networks of a world that has them
(households and friends, drawn within the partition: a modelling choice, docs/lab.md),
which is all a scheme's relation conditions and peer ratings read, so partitions stay
independent.

Everything is drawn from generators seeded by ``seed`` and the partition ``p``: the
population from ``default_rng([seed, 0, p])`` (the same for every scheme), the conduct
from ``default_rng([seed, 1, p])`` (common random numbers: two schemes that change nothing
in behaviour see the same conduct); peer ratings, for a scheme that reads them, from
``default_rng([seed, 2, p])``. A run is exactly reproducible.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.days import from_day, to_day
from socialcredit.engine import Engine, States
from socialcredit.engine.network import PreparedNetwork, Reputation, reputation
from socialcredit.heap import keep_freed_memory
from socialcredit.lab.ledger import Ledger
from socialcredit.lab.metrics import MetricsTable
from socialcredit.lab.networks import (
    ExposureCounts,
    Friends,
    draw_raters,
    draw_stars,
    household_graph,
    padded,
    ratings_table,
    relations_table,
    union,
)
from socialcredit.lab.penalties import penalized_types, redeeming_rules
from socialcredit.lab.population import (
    N_GROUPS,
    ORGANIZATION,
    PERSON,
    Population,
    build_population,
)
from socialcredit.lab.resources import records_per_year
from socialcredit.lab.tally import Histogram, Tally
from socialcredit.lab.tracking import Change, Tracker
from socialcredit.lab.world import DECILES, Conduct, LoadedWorld, Ratings
from socialcredit.scheme import Finding, LoadedScheme, audit, is_critical

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
DAYS_PER_YEAR = 365
WEEKS_PER_YEAR = 52
PARTITION_PERSONS = 4_000_000
"""Persons per partition by default: a partition of the town of 700,000 is the whole town."""
SYNTHETIC_REGIONS = 10_000
"""Synthetic regions of codes, shared out among partitions so that no two share a code."""


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on: the world, the size, the length, the seed and the
    partition size (which fixes the random streams, so it is part of the run)."""

    world: LoadedWorld
    persons: int
    organizations: int
    years: int
    seed: int
    partition_size: int = PARTITION_PERSONS

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

    @property
    def n_partitions(self) -> int:
        """How many partitions the population is simulated in."""
        return math.ceil(self.persons / self.partition_size)

    def partition(self, p: int) -> tuple[int, int]:
        """Persons and organizations of partition ``p`` (sizes differ by at most one)."""
        n = self.n_partitions
        persons = self.persons // n + (p < self.persons % n)
        organizations = self.organizations // n + (p < self.organizations % n)
        return persons, organizations

    def regions(self, p: int) -> list[str] | None:
        """The synthetic regions of partition ``p``'s codes (None: all of them)."""
        n = self.n_partitions
        if n == 1:
            return None
        k = SYNTHETIC_REGIONS // n
        return [f"{r:06d}" for r in range(p * k, (p + 1) * k)]

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
            "partition_size": self.partition_size,
            "partitions": self.n_partitions,
            "start": from_day(self.start).isoformat(),
            "end": from_day(self.end).isoformat(),
        }


def make_settings(
    world: LoadedWorld,
    *,
    population: int | None = None,
    years: int = 1,
    seed: int = 7,
    partition_size: int = PARTITION_PERSONS,
) -> Settings:
    """Settings for a world; ``population`` replaces its persons, organizations scale."""
    pop = world.world.population
    persons = population if population is not None else pop.persons
    organizations = round(pop.organizations * persons / pop.persons)
    if persons < 1 or years < 1 or partition_size < 1:
        raise ValueError("population, years and partition size must be at least 1")
    settings = Settings(world, persons, organizations, years, seed, partition_size)
    if settings.n_partitions > SYNTHETIC_REGIONS:
        raise ValueError(
            f"{persons:,} persons in partitions of {partition_size:,} make "
            f"{settings.n_partitions:,} partitions; at most {SYNTHETIC_REGIONS:,} "
            f"(use a partition size of at least {math.ceil(persons / SYNTHETIC_REGIONS):,})"
        )
    return settings


@dataclass(frozen=True)
class StateCounts:
    """The final states of a run too large to keep, as counts."""

    n_scored: int
    lists: dict[str, int]

    def __len__(self) -> int:
        return self.n_scored

    def list_sizes(self) -> dict[str, int]:
        """How many subjects are on each list."""
        return dict(self.lists)


@dataclass(frozen=True)
class Run:
    """The outcome of one scheme on one world.

    ``population``, ``records``, ``false_record``, ``scores_by_agent``,
    ``lists_by_agent``, ``relations`` and ``ratings`` are kept for a run of one partition
    asked to keep its ledger (``keep_ledger``), and ``states`` is then the kernel's
    :class:`~socialcredit.engine.States` of the whole ledger (with the relations and
    ratings, for a scheme that reads them) at the end; otherwise they are None and
    ``states`` holds counts.
    """

    settings: Settings
    scheme: LoadedScheme
    findings: list[Finding]
    population: Population | None
    records: pa.Table | None  # the ledger at the end, canonical schema, in recording order
    false_record: Bools | None  # per row of ``records``: the conduct never happened
    states: States | StateCounts  # the final states
    metrics: pa.Table
    scores_by_agent: I64 | None  # the simulator's final scores, per agent (unscored: -1)
    relations: pa.Table | None = None  # the partition's networks, as the relations input
    lists_by_agent: Bools | None = None  # [lists, agents]: the simulator's final lists
    ratings: pa.Table | None = None  # the peer ratings drawn, as the ratings input

    @property
    def critical(self) -> bool:
        """Whether the scheme has critical rights-audit findings."""
        return is_critical(self.findings)

    @property
    def subjects(self) -> pa.Table:
        """The canonical subjects table (runs that kept their population)."""
        if self.population is None:
            raise ValueError("this run did not keep its population")
        return self.population.subjects


StepHook = Callable[[int], None]
LedgerSink = Callable[[int, str, Population, pa.Table, Bools, pa.Table | None], None]
"""Receives each partition's ledger: (partition, scheme, population, records, false flags,
peer ratings or None for a scheme that reads none)."""


def simulate(
    settings: Settings,
    scheme: LoadedScheme,
    *,
    population: Population | None = None,
    on_week: StepHook | None = None,
    keep_ledger: bool = True,
) -> Run:
    """Run ``scheme`` on the world of ``settings``, week by week; see the module doc."""
    return simulate_all(
        settings, [scheme], population=population, on_step=on_week, keep_ledger=keep_ledger
    )[0]


def draw_population(settings: Settings, p: int) -> Population:
    """The agents of partition ``p``."""
    persons, organizations = settings.partition(p)
    return build_population(
        settings.world.world,
        persons,
        organizations,
        np.random.default_rng([settings.seed, 0, p]),
        regions=settings.regions(p),
    )


def simulate_all(
    settings: Settings,
    schemes: list[LoadedScheme],
    *,
    population: Population | None = None,
    on_step: StepHook | None = None,
    keep_ledger: bool = False,
    ledger_sink: LedgerSink | None = None,
    workers: int = 1,
) -> list[Run]:
    """Run every scheme on the world, partition after partition.

    ``on_step(k)`` is told of ``k`` more weekly steps done (partitions times schemes times
    weeks in all); ``ledger_sink`` receives each partition's ledger under each scheme (in
    the process that simulated it). With ``keep_ledger`` (one partition only) the runs keep
    their ledger and final states. With ``workers`` above 1, partitions are simulated in
    that many processes at once; the counts are added in partition order, so the metrics
    are the same as with one.

    The process's C heap is set to keep freed memory for reuse
    (:func:`~socialcredit.heap.keep_freed_memory`): partitions and weekly steps free and
    draw arrays of the same sizes again and again.
    """
    keep_freed_memory()
    single = settings.n_partitions == 1
    if keep_ledger and not single:
        raise ValueError("only a run of one partition keeps its ledger in memory")
    if population is not None and not single:
        raise ValueError("a population can be given only to a run of one partition")
    contexts = [_Scheme(settings, s) for s in schemes]
    tallies = [c.tally() for c in contexts]
    kept: list[_Partition] = []
    if workers > 1 and not single:
        for part_tallies in _in_processes(settings, schemes, ledger_sink, workers):
            for tally, part_tally in zip(tallies, part_tallies, strict=True):
                tally.merge(part_tally)
            if on_step is not None:
                on_step(settings.weeks * len(schemes))
    else:
        for p in range(settings.n_partitions):
            pop = population if population is not None else draw_population(settings, p)
            for ctx, tally in zip(contexts, tallies, strict=True):
                part = _simulate_partition(
                    settings, ctx, pop, p, on_step, ledger_sink, keep=keep_ledger
                )
                tally.merge(part.tally)
                if keep_ledger:
                    kept.append(part)
                del part  # a partition's arrays go before the next one is drawn
            del pop
    runs = []
    for i, (ctx, tally) in enumerate(zip(contexts, tallies, strict=True)):
        metrics = MetricsTable(ctx.name, ctx.critical)
        tally.metrics(metrics, settings.start)
        runs.append(_run(settings, ctx, tally, metrics, kept[i] if keep_ledger else None))
    return runs


def _simulate_partition(
    settings: Settings,
    ctx: _Scheme,
    pop: Population,
    p: int,
    on_step: StepHook | None,
    ledger_sink: LedgerSink | None,
    keep: bool = False,
) -> _Partition:
    # a written ledger keeps every peer rating, so that its ratings file is complete
    part = _Partition(settings, ctx, pop, p, keep=keep or ledger_sink is not None)
    part.run(on_step)
    if ledger_sink is not None:
        records, false = part.canonical()
        ledger_sink(p, ctx.name, pop, records, false, part.ratings_table())
    return part


def _partition_tallies(
    settings: Settings, schemes: list[LoadedScheme], p: int, ledger_sink: LedgerSink | None
) -> list[Tally]:
    """Every scheme's tally of partition ``p`` (run in a worker process)."""
    pop = draw_population(settings, p)
    return [
        _simulate_partition(settings, _Scheme(settings, s), pop, p, None, ledger_sink).tally
        for s in schemes
    ]


def _in_processes(
    settings: Settings, schemes: list[LoadedScheme], ledger_sink: LedgerSink | None, workers: int
) -> Iterator[list[Tally]]:
    """The tallies of every partition, in partition order, simulated by ``workers``
    processes (at most ``workers`` partitions are waiting to be merged at a time)."""
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[list[Tally]]] = deque()
        following = iter(range(settings.n_partitions))
        try:
            for p in following:
                pending.append(pool.submit(_partition_tallies, settings, schemes, p, ledger_sink))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _run(
    settings: Settings, ctx: _Scheme, tally: Tally, metrics: MetricsTable, part: _Partition | None
) -> Run:
    counts = StateCounts(
        tally.n_scored, {n: int(tally.list_size[-1, i]) for i, n in enumerate(tally.list_names)}
    )
    if part is None:
        return Run(
            settings, ctx.loaded, ctx.findings, None, None, None, counts, metrics.to_table(), None
        )
    records, false = part.canonical()
    relations, ratings = part.network_tables()
    prepared = ctx.engine.prepare(part.pop.subjects, records)
    network = (
        ctx.engine.prepare_network(prepared, relations=relations, ratings=ratings)
        if ctx.engine.uses_relations or ctx.engine.uses_ratings
        else None
    )
    states = ctx.engine.evaluate(prepared, settings.end, network=network)
    scores = np.where(part.scored, part.tracker.score, -1)
    return Run(
        settings,
        ctx.loaded,
        ctx.findings,
        part.pop,
        records,
        false,
        states,
        metrics.to_table(),
        scores,
        relations,
        part.tracker.lists & part.scored,
        ratings,
    )


class _Scheme:
    """What every partition needs of one scheme."""

    def __init__(self, settings: Settings, loaded: LoadedScheme) -> None:
        self.loaded = loaded
        self.scheme = loaded.scheme
        self.name = self.scheme.scheme
        self.engine = Engine(self.scheme)
        self.plan = self.engine.program.plan
        world = settings.world.world
        self.ratings: Ratings | None = None
        if self.engine.uses_ratings:
            self.ratings = world.ratings or default_ratings(settings.world)
        self.networks = world.networks is not None
        self.findings = audit(self.scheme, loaded.places)
        self.critical = is_critical(self.findings)
        self.penalized_types = penalized_types(self.scheme)
        names: dict[str, None] = {}
        for c in world.behaviour:
            names.setdefault(c.type, None)
            if c.resolution is not None:
                names.setdefault(c.resolution.type, None)
        if world.appeals is not None:
            names.setdefault(world.appeals.type, None)
        if world.redemption is not None:
            names.setdefault(world.redemption.type, None)
        self.type_names = list(names)
        self.type_code = {t: i for i, t in enumerate(self.type_names)}
        self.redeeming = (
            redeeming_rules(self.scheme, world.redemption.type) if world.redemption else ()
        )
        self.scored_kinds = [0 if k == "person" else 1 for k in self.scheme.subjects]
        self.weeks = settings.weeks

    def tally(self) -> Tally:
        program = self.engine.program
        return Tally(
            self.weeks,
            program.list_ids,
            program.grade_names,
            networks=self.networks,
            ratings=self.ratings.trust_every_weeks if self.ratings is not None else 0,
        )


def default_ratings(world: LoadedWorld) -> Ratings:
    """The peer ratings of a world without a ``ratings`` section: the defaults, among
    friends when the world has networks, else among anyone (docs/lab.md)."""
    return Ratings(among="friends" if world.world.networks is not None else "anyone")


class _Partition:
    """One partition of the population under one scheme, for all weeks."""

    def __init__(
        self, settings: Settings, ctx: _Scheme, pop: Population, p: int, *, keep: bool = False
    ) -> None:
        self.settings = settings
        self.keep = keep
        self.ctx = ctx
        self.world = settings.world.world
        self.pop = pop
        self.p = p
        self.rng = np.random.default_rng([settings.seed, 1, p])
        per_person, per_org = records_per_year(self.world)
        expected = (pop.persons * per_person + pop.organizations * per_org) * settings.years
        self.ledger = Ledger(pop.size, capacity=1024 + int(1.1 * expected))
        self.scored = np.isin(pop.kind, ctx.scored_kinds)
        # peer ratings drawn so far (agent rows, stars, day), a chunk per week
        self.rating_chunks: list[tuple[I64, I64, I64, I64]] = []
        self.ratings_rng = np.random.default_rng([settings.seed, 2, p])
        self.tracker = Tracker(
            ctx.engine,
            ctx.type_names,
            self.scored,
            self.ledger,
            start=settings.start,
            weeks=settings.weeks,
            redeeming=ctx.redeeming,
            links=self._links(),
            reputation=self._reputation(settings.start) if ctx.ratings is not None else None,
        )
        self.penalized = self.tracker.penalized()
        self.exposure = (
            ExposureCounts(self.tracker.black_listed()[: pop.persons], pop.homes, pop.friends)
            if pop.has_networks
            else None
        )
        self.group_propensity = pop.group_propensity()
        self.group_size = np.diff(pop.bounds).astype(np.float64)
        self.tally = ctx.tally()
        self._start_tally()
        self.wrongful_since = np.full(pop.size, -1, dtype=np.int32)
        self.ever_wrongful = np.zeros(pop.size, dtype=np.bool_)
        self.wrongful_now = 0
        self.sanctioned_now = np.zeros(N_GROUPS, dtype=np.int64)

    def _start_tally(self) -> None:
        """Counts before any record: every scored subject has the empty ledger's state
        (under relation conditions that hold before any record, one per pattern)."""
        t, tr, pop = self.tally, self.tracker, self.pop
        size = np.diff(pop.bounds)
        kinds = np.array([PERSON] * (2 * DECILES) + [ORGANIZATION] * 2)
        scored_size = np.where(np.isin(kinds, self.ctx.scored_kinds), size, 0)
        t.n_scored = n = int(scored_size.sum())
        t.group_size += scored_size
        by_decile = size[: 2 * DECILES].reshape(2, DECILES).sum(axis=0)
        t.persons_by_decile[1:] += by_decile
        if pop.has_networks:
            t.network_persons += pop.persons
            assert pop.homes is not None and pop.friends is not None
            t.households += pop.homes.count
            t.friendships += pop.friends.edges
        if not tr.uniform:
            self._start_tally_of_agents()
            return
        self.list_count = tr.lists[:, 0].astype(np.int64) * n
        self.grade_count = np.zeros(len(t.grade_names), dtype=np.int64)
        self.grade_count[tr.grade[0]] = n
        self.hist = Histogram.of(tr.score[:1], np.array([n], dtype=np.int64))
        self.pen_count = int(self.penalized.sum())
        self.denied_total = int(tr.denied[0]) * n
        self.bought_total = int(tr.bought[0]) * n
        empty_sanctioned = bool(tr.sanctions.black_listed(tr.lists[:, :1])[0] or tr.denied[0] > 0)
        self.sanctioned_now = scored_size.astype(np.int64) * empty_sanctioned

    def _start_tally_of_agents(self) -> None:
        """The counts before any record, agent by agent (agents start in different
        states)."""
        t, tr = self.tally, self.tracker
        scored = self.scored
        self.list_count = tr.lists[:, scored].sum(axis=1).astype(np.int64)
        self.grade_count = np.bincount(tr.grade[scored], minlength=len(t.grade_names)).astype(
            np.int64
        )
        self.hist = Histogram.of(tr.score[scored])
        self.pen_count = int(self.penalized.sum())
        self.denied_total = int(tr.denied[scored].sum())
        self.bought_total = int(tr.bought[scored].sum())
        sanctioned = (tr.black_listed() | (tr.denied > 0)) & scored
        self.sanctioned_now = np.bincount(self.pop.group[sanctioned], minlength=N_GROUPS).astype(
            np.int64
        )

    # ---- networks ----------------------------------------------------------------------

    def _links(self) -> list[Friends]:
        """For each relation condition of the scheme, the graph of related agents: the
        household and friends of a person (the lab draws no employers or legal
        representatives, so those ways relate no one)."""
        plan, pop = self.ctx.plan, self.pop
        if plan is None or not plan.uses_relations:
            return []
        n = pop.size
        made: dict[tuple[str, ...], Friends] = {}
        out = []
        for cond in plan.related:
            via = tuple(sorted(set(cond.related.via)))
            if via not in made:
                graphs = []
                if pop.homes is not None and "household" in via:
                    graphs.append(household_graph(pop.homes, n))
                if pop.friends is not None and "friend" in via:
                    graphs.append(padded(pop.friends, n))
                empty = Friends(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32))
                made[via] = union(graphs, n) if graphs else empty
            out.append(made[via])
        return out

    def _ratings(self) -> tuple[I64, I64, I64, I64]:
        """Every peer rating drawn so far: rater, ratee (agent rows), stars, day."""
        if not self.rating_chunks:
            none = np.zeros(0, dtype=np.int64)
            return none, none, none, none
        if len(self.rating_chunks) > 1:
            parts = list(zip(*self.rating_chunks, strict=True))
            joined = tuple(np.concatenate(p) for p in parts)
            self.rating_chunks = [(joined[0], joined[1], joined[2], joined[3])]
        return self.rating_chunks[0]

    def _reputation(self, at: int) -> Reputation:
        """The engine's EigenTrust over the ratings among scored agents at ``at``, per
        scored agent in agent order (the engine's result does not depend on the order of
        subjects, only on who rated whom)."""
        plan = self.ctx.plan
        assert plan is not None
        rater, ratee, stars, day = self._ratings()
        window = self.ctx.scheme.ratings.window_days if self.ctx.scheme.ratings else None
        if not self.keep and window is not None and len(day):
            # a rating that no longer counts never will again (later dates count fewer)
            fresh = day > at - window
            rater, ratee, stars, day = rater[fresh], ratee[fresh], stars[fresh], day[fresh]
            self.rating_chunks = [(rater, ratee, stars, day)]
        scored = self.scored
        index = (np.cumsum(scored) - 1).astype(np.int32)
        keep = scored[rater] & scored[ratee]
        n = int(scored.sum())
        net = PreparedNetwork(
            plan,
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
            {},
            index[rater[keep]],
            index[ratee[keep]],
            stars[keep],
            day[keep].astype(np.int32),
        )
        return reputation(net, at)

    def _draw_ratings(self, week: int, first: int) -> None:
        """A week of peer ratings among the persons (docs/lab.md): raters uniformly, each
        rating a friend (or anyone); stars ``1 + Binomial(stars - 1, q)``, ``q`` lower for
        a ratee of worse conduct (propensity) and for one on a black list."""
        r = self.ctx.ratings
        assert r is not None
        rng, pop = self.ratings_rng, self.pop
        graph = pop.friends if r.among == "friends" else None
        rater, ratee = draw_raters(rng, pop.persons, r.per_person_per_week, graph)
        listed = self.tracker.sanctions.black_listed(self.tracker.lists[:, ratee])
        quality = r.quality - r.conduct * (pop.propensity[ratee] - 1) - r.stigma * listed
        scheme_ratings = self.ctx.scheme.ratings
        top = scheme_ratings.stars if scheme_ratings is not None else 5
        stars = draw_stars(rng, quality, top)
        day = first + rng.integers(0, 7, size=len(rater))
        # one rating per rater, ratee and day (the ratings input allows no two that differ)
        key = (rater * pop.persons + ratee) * 7 + (day - first)
        _, once = np.unique(key, return_index=True)
        once.sort()
        rater, ratee, stars, day = rater[once], ratee[once], stars[once], day[once]
        self.rating_chunks.append((rater, ratee, stars, day.astype(np.int64)))
        self.tally.ratings_given[week] += len(rater)

    def _peer_tally(self) -> None:
        """The distribution of the peer measures just computed, over the scored agents."""
        tr, scored = self.tracker, self.scored
        rated = scored & tr.rated
        self.peer_rated = int(rated.sum())
        self.peer_rating = Histogram.of(tr.rating[rated])
        self.peer_trust = Histogram.of(tr.trust[scored])

    def _tally_peer_week(self, week: int) -> None:
        t = self.tally
        t.rated[week] += self.peer_rated
        t.peer_rating[week] = self.peer_rating
        t.peer_trust[week] = self.peer_trust

    def network_tables(self) -> tuple[pa.Table | None, pa.Table | None]:
        """The partition's networks and peer ratings, as the inputs of the network
        extension (docs/networks.md): None where the world has no networks, or the scheme
        reads no ratings."""
        pop = self.pop
        relations = (
            relations_table(pop.person_codes, pop.homes, pop.friends) if pop.has_networks else None
        )
        return relations, self.ratings_table()

    def ratings_table(self) -> pa.Table | None:
        """The peer ratings drawn by the end, as the ratings input (None for a scheme that
        reads no ratings)."""
        if self.ctx.ratings is None:
            return None
        rater, ratee, stars, day = self._ratings()
        keep = day <= self.settings.end
        return ratings_table(self.pop.codes, rater[keep], ratee[keep], stars[keep], day[keep])

    # ---- the loop -----------------------------------------------------------------

    def run(self, on_step: StepHook | None) -> None:
        s = self.settings
        for week in range(s.weeks):
            first = s.start + 7 * week
            known = min(1.0, week / self.world.responses.deterrence.learning_weeks)
            for conduct in self.world.behaviour:
                self._conduct(conduct, week, first, known)
            self._donations(first)
            ratings = self.ctx.ratings
            if ratings is not None:
                self._draw_ratings(week, first)
                every = ratings.trust_every_weeks
                if (week + 1) % every == 0 or week == s.weeks - 1 or week == 0:
                    self.tracker.set_reputation(self._reputation(first + 6))
                    self._peer_tally()
                self._tally_peer_week(week)
            self._account(week, self.tracker.update(week, first + 6))
            if on_step is not None:
                on_step(1)
        self._finish()

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
            # groups are ascending ranges of ``cum``, so sorting keeps each target in its
            # group; sorted keys make the search walk the table in order (6x faster)
            target.sort()
            agents = self.pop.at_propensity(target)
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
        penalized = c.type in self.ctx.penalized_types
        response = self.world.responses
        scored_kind = (0 if c.kind == "person" else 1) in self.ctx.scored_kinds
        if penalized and scored_kind:
            without = float((scale * weight).sum())
            if c.legal:
                self.tally.legal_without[week] += without
            else:
                self.tally.conduct_without[week] += without
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
            events = int(self.scored[agents].sum())
            if c.legal:
                self.tally.legal[week] += events
            else:
                self.tally.conduct[week] += events
        seen = agents[rng.random(len(agents)) < self.world.detection.coverage[c.category]]
        ids = self._record(c, seen, first)
        if c.resolution is not None and len(ids):
            ended = rng.random(len(ids)) < c.resolution.share
            when = self.ledger.column("recorded")[ids[ended]].astype(np.int64)
            when = when + 1 + rng.poisson(c.resolution.mean_days, size=len(when))
            self.ledger.add(
                self.ledger.column("subject")[ids[ended]].astype(np.int64),
                self.ctx.type_code[c.resolution.type],
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
            agents, self.ctx.type_code[c.type], occurred, recorded, amount=amount, false=false
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
        self.tally.false_records += n
        appeals = self.world.appeals
        if appeals is None or not self.ctx.scheme.appeal_days:
            return
        decile = self.pop.decile[agents]
        contest = np.where(
            decile > 0,
            np.asarray(appeals.contest_by_decile)[np.maximum(decile, 1) - 1],
            appeals.contest_organization,
        )
        voided = (rng.random(n) < contest) & (rng.random(n) < appeals.upheld)
        when = self.ledger.column("recorded")[ids[voided]].astype(np.int64) + appeals.delay_days
        self.ledger.add(
            agents[voided], self.ctx.type_code[appeals.type], when, when, ref=ids[voided]
        )
        self.tally.false_voided += int(voided.sum())

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
        self.ledger.add(agents, self.ctx.type_code[r.type], occurred, recorded, amount=amount)
        np.add.at(self.tally.donated, decile, amount)

    # ---- counting ----------------------------------------------------------------------

    def _account(self, week: int, ch: Change) -> None:
        """Update the running counts with the subjects that changed, and tally the week."""
        t, tr, agents = self.tally, self.tracker, ch.agents
        sanctions = tr.sanctions
        if len(agents):
            (l0, l1), (d0, d1) = ch.lists, ch.denied
            entered = (l1 & ~l0).sum(axis=1)
            left = (l0 & ~l1).sum(axis=1)
            self.list_count += entered - left
            t.list_entries[week] += entered
            t.list_exits[week] += left
            g = len(t.grade_names)
            self.grade_count += np.bincount(ch.grade[1], minlength=g) - np.bincount(
                ch.grade[0], minlength=g
            )
            if not np.array_equal(ch.score[0], ch.score[1]):
                moved = ch.score[0] != ch.score[1]
                self.hist = self.hist.shifted(ch.score[0][moved], ch.score[1][moved])
            pen = tr.penalized(agents)
            self.pen_count += int(pen.sum()) - int(self.penalized[agents].sum())
            self.penalized[agents] = pen
            self.denied_total += int(d1.sum() - d0.sum())
            self.bought_total += int(ch.bought[1].sum() - ch.bought[0].sum())
            black0, black1 = sanctions.black_listed(l0), sanctions.black_listed(l1)
            group = self.pop.group[agents]
            was, now = black0 | (d0 > 0), black1 | (d1 > 0)
            self.sanctioned_now += np.bincount(group[now], minlength=N_GROUPS) - np.bincount(
                group[was], minlength=N_GROUPS
            )
            self._wrongful(week, agents, black0 & ch.with_false[0], black1 & ch.with_false[1])
        if self.exposure is not None:
            self._exposure(week, ch)
        t.list_size[week] += self.list_count
        t.grade_count[week] += self.grade_count
        t.scores[week] = self.hist
        t.penalized[week] += self.pen_count
        t.wrongful[week] += self.wrongful_now
        t.denied[week] += self.denied_total
        t.bought[week] += self.bought_total
        t.sanctioned_weeks += self.sanctioned_now

    def _exposure(self, week: int, ch: Change) -> None:
        """Network exposure: persons with a listed (black list) household member or friend,
        among all persons and among the persons not listed themselves."""
        exp, t = self.exposure, self.tally
        assert exp is not None
        persons = ch.agents < self.pop.persons
        if persons.any():
            rows = ch.agents[persons]
            listed = self.tracker.sanctions.black_listed(ch.lists[1][:, persons])
            exp.update(rows, listed & self.scored[rows])
        t.exposed[week] += exp.exposed
        t.exposed_unlisted[week] += exp.exposed_unlisted
        t.listed_persons[week] += exp.n_listed

    def _wrongful(self, week: int, agents: I64, was: Bools, now: Bools) -> None:
        """Wrongful listings: spells on a black list while a false record counts."""
        began, ended = agents[now & ~was], agents[was & ~now]
        self.wrongful_now += len(began) - len(ended)
        if len(ended):
            lengths = week - self.wrongful_since[ended]
            np.add.at(self.tally.spells_closed, lengths, 1)
            self.wrongful_since[ended] = -1
        self.wrongful_since[began] = week
        self.ever_wrongful[began] = True

    def _finish(self) -> None:
        t, s = self.tally, self.settings
        open_ = np.flatnonzero(self.wrongful_since >= 0)
        np.add.at(t.spells_open, s.weeks - self.wrongful_since[open_], 1)
        t.wrongful_subjects += int(self.ever_wrongful.sum())
        t.records += int((self.ledger.column("recorded") <= s.end).sum())
        persons = self.scored & (self.pop.kind == PERSON)
        t.bought_final += np.bincount(
            self.pop.decile[persons],
            weights=self.tracker.bought[persons],
            minlength=DECILES + 1,
        ).astype(np.int64)

    def canonical(self) -> tuple[pa.Table, Bools]:
        """The partition's ledger at the end, canonical schema (see :class:`Ledger`)."""
        prefix = "sim-" if self.settings.n_partitions == 1 else f"sim-{self.p:05d}-"
        return self.ledger.canonical(self.pop.codes, self.ctx.type_names, self.settings.end, prefix)

"""What a run counts, in a form that adds up across partitions of the population.

Every weekly figure is a sum over subjects (list sizes, flows, grade counts, penalized,
wrongfully listed, denied actions, conduct) or a histogram of scores, from which the
percentiles, the mean and the Gini coefficient are computed exactly as from the scores
themselves. So partitions simulated one after another (or apart) are merged by adding
their tallies, and the metrics of a run of 1.41 billion agents are those of one
population. :meth:`Tally.metrics` turns a tally into the rows of docs/lab.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from socialcredit.days import from_day
from socialcredit.lab.metrics import MetricsTable
from socialcredit.lab.networks import EXPOSURE_GROUPS
from socialcredit.lab.population import N_GROUPS
from socialcredit.lab.world import DECILES

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

WEEKS_PER_YEAR = 52
PERIOD_WEEKS = 13
"""The periods compared by the deterrence and chilling metrics: the first and last 13 weeks."""
SPELL_BUCKETS = ((1, 4), (5, 13), (14, 26), (27, 52), (53, None))
"""Lengths (weeks) of wrongful listings, as reported by ``wrongful_spells``."""


@dataclass
class Histogram:
    """Counts of integer values: sorted distinct values and how many have each."""

    values: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    counts: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, values: I64, counts: I64 | None = None) -> Histogram:
        """The histogram of ``values`` (each weighted by ``counts`` when given)."""
        distinct, inverse = np.unique(values, return_inverse=True)
        weights = np.ones(len(values), dtype=np.int64) if counts is None else counts
        total = np.bincount(inverse.reshape(-1), weights=weights, minlength=len(distinct))
        total = np.rint(total).astype(np.int64)
        keep = total != 0
        return cls(distinct[keep].astype(np.int64), total[keep])

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram.of(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.counts, other.counts]),
        )

    def shifted(self, removed: I64, added: I64) -> Histogram:
        """This histogram with ``removed`` values taken out and ``added`` put in."""
        return Histogram.of(
            np.concatenate([self.values, removed, added]),
            np.concatenate(
                [
                    self.counts,
                    np.full(len(removed), -1, dtype=np.int64),
                    np.ones(len(added), dtype=np.int64),
                ]
            ),
        )

    @property
    def n(self) -> int:
        """How many values."""
        return int(self.counts.sum())

    def _at(self, positions: I64) -> F64:
        """The values at 0-based positions of the sorted values."""
        cum = np.cumsum(self.counts)
        out: F64 = self.values[np.searchsorted(cum, positions, side="right")].astype(np.float64)
        return out

    def percentile(self, q: float) -> float:
        """As ``numpy.percentile(values, q)`` (linear interpolation)."""
        n = self.n
        h = (n - 1) * q / 100
        lo = int(np.floor(h))
        below, above = self._at(np.array([lo, min(lo + 1, n - 1)], dtype=np.int64))
        return float(below + (h - lo) * (above - below))

    def mean(self) -> float:
        """The mean value."""
        return float((self.values.astype(np.float64) * self.counts).sum() / max(self.n, 1))

    def gini(self) -> float:
        """As :func:`socialcredit.lab.metrics.gini` of the values."""
        n = self.n
        if n == 0:
            return 0.0
        x = self.values.astype(np.float64)
        if x[0] < 0:
            x = x - x[0]
        total = float((x * self.counts).sum())
        if total == 0:
            return 0.0
        b = np.cumsum(self.counts).astype(np.float64)
        a = b - self.counts
        # sum of (2i - n - 1) over the ranks a+1..b of each value
        weight = (b * (b + 1) - a * (a + 1)) - (n + 1) * (b - a)
        return float((weight * x).sum() / (n * total))


@dataclass
class Tally:
    """The counts of one scheme over a run (or over some partitions of it)."""

    weeks: int
    list_names: tuple[str, ...]
    grade_names: tuple[str, ...]
    networks: bool = False  # the world has networks: count exposure
    ratings: int = 0  # the scheme reads peer ratings: weeks between trust evaluations
    n_scored: int = 0
    list_size: I64 = field(init=False)  # [weeks, lists]
    list_entries: I64 = field(init=False)
    list_exits: I64 = field(init=False)
    grade_count: I64 = field(init=False)  # [weeks, grades]
    scores: list[Histogram] = field(init=False)  # per week
    penalized: I64 = field(init=False)  # [weeks]
    wrongful: I64 = field(init=False)
    denied: I64 = field(init=False)  # denied-set sizes, summed
    bought: I64 = field(init=False)  # points held from donations, summed
    conduct: I64 = field(init=False)  # true events of penalized misconduct, scored subjects
    conduct_without: F64 = field(init=False)  # expected events without the scheme
    legal: I64 = field(init=False)  # true events of legal conduct the scheme penalizes
    legal_without: F64 = field(init=False)
    sanctioned_weeks: I64 = field(default_factory=lambda: np.zeros(N_GROUPS, dtype=np.int64))
    group_size: I64 = field(default_factory=lambda: np.zeros(N_GROUPS, dtype=np.int64))
    persons_by_decile: I64 = field(default_factory=lambda: np.zeros(DECILES + 1, np.int64))
    donated: F64 = field(default_factory=lambda: np.zeros(DECILES + 1, dtype=np.float64))
    bought_final: I64 = field(default_factory=lambda: np.zeros(DECILES + 1, dtype=np.int64))
    spells_closed: I64 = field(init=False)  # [weeks + 1]: wrongful listings by length
    spells_open: I64 = field(init=False)  # ... still running at the end (length so far)
    wrongful_subjects: int = 0
    records: int = 0
    false_records: int = 0
    false_voided: int = 0
    network_persons: int = 0  # persons with networks (households and friends)
    households: int = 0
    friendships: int = 0
    exposed: I64 = field(init=False)  # [weeks, 3]: household, friend, either
    exposed_unlisted: I64 = field(init=False)  # [weeks, 3]: ... of persons not listed
    listed_persons: I64 = field(init=False)  # [weeks]: persons on a black list
    ratings_given: I64 = field(init=False)  # [weeks]
    rated: I64 = field(init=False)  # [weeks]: scored subjects with a peer rating
    peer_rating: list[Histogram] = field(init=False)  # per week, hundredths of a star
    peer_trust: list[Histogram] = field(init=False)  # per week, thousandths of the average

    def __post_init__(self) -> None:
        w, lists, grades = self.weeks, len(self.list_names), len(self.grade_names)
        self.list_size = np.zeros((w, lists), dtype=np.int64)
        self.list_entries = np.zeros((w, lists), dtype=np.int64)
        self.list_exits = np.zeros((w, lists), dtype=np.int64)
        self.grade_count = np.zeros((w, grades), dtype=np.int64)
        self.scores = [Histogram() for _ in range(w)]
        for name in ("penalized", "wrongful", "denied", "bought", "conduct", "legal"):
            setattr(self, name, np.zeros(w, dtype=np.int64))
        self.conduct_without = np.zeros(w, dtype=np.float64)
        self.legal_without = np.zeros(w, dtype=np.float64)
        self.spells_closed = np.zeros(w + 1, dtype=np.int64)
        self.spells_open = np.zeros(w + 1, dtype=np.int64)
        self.exposed = np.zeros((w, 3), dtype=np.int64)
        self.exposed_unlisted = np.zeros((w, 3), dtype=np.int64)
        for name in ("listed_persons", "ratings_given", "rated"):
            setattr(self, name, np.zeros(w, dtype=np.int64))
        self.peer_rating = [Histogram() for _ in range(w)]
        self.peer_trust = [Histogram() for _ in range(w)]

    def merge(self, other: Tally) -> None:
        """Add another partition's tally to this one."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, np.ndarray):
                mine += value
            elif name in ("scores", "peer_rating", "peer_trust"):
                mine = [a + b for a, b in zip(mine, value, strict=True)]
                setattr(self, name, mine)
            elif isinstance(value, int) and name not in ("weeks", "networks", "ratings"):
                setattr(self, name, mine + value)

    # ---- metrics -------------------------------------------------------------------------

    def metrics(self, table: MetricsTable, start: int) -> None:
        """Add the weekly and summary rows (docs/lab.md) to ``table``."""
        n = max(self.n_scored, 1)
        for week in range(self.weeks):
            date = from_day(start + 7 * week + 6).isoformat()

            def add(
                metric: str, value: float, group: str = "", week: int = week, date: str = date
            ) -> None:
                table.add(metric, value, group=group, week=week, date=date)

            for i, name in enumerate(self.list_names):
                add("list_size", self.list_size[week, i], name)
            for i, name in enumerate(self.list_names):
                add("list_entries", self.list_entries[week, i], name)
                add("list_exits", self.list_exits[week, i], name)
            for i, grade in enumerate(self.grade_names):
                add("grade_share", self.grade_count[week, i] / n, grade)
            hist = self.scores[week]
            if hist.n:
                for q in (10, 50, 90):
                    add("score_percentile", hist.percentile(q), f"p{q}")
                add("score_mean", hist.mean())
            add("score_gini", hist.gini())
            add("penalized", self.penalized[week])
            add("wrongfully_listed", self.wrongful[week])
            add("denied_per_1000", self.denied[week] / n * 1000)
            add("penalized_conduct", self.conduct[week])
            add("penalized_legal_conduct", self.legal[week])
            add("points_bought_back", self.bought[week])
            if self.networks:
                self._exposure(add, week)
            if self.ratings:
                self._peers(add, week)
        self._summaries(table)
        if self.networks:
            persons = max(self.network_persons, 1)
            table.add("network_households", self.households)
            table.add("network_household_size_mean", self.network_persons / max(self.households, 1))
            table.add("network_friends_mean_degree", 2 * self.friendships / persons)
        if self.ratings:
            table.add("network_trust_evaluated_every_weeks", self.ratings)

    def _exposure(self, add: Callable[..., None], week: int) -> None:
        """Shares of persons with a listed household member, friend, either: of all
        persons, and of the persons not listed themselves."""
        persons = max(self.network_persons, 1)
        free = max(self.network_persons - int(self.listed_persons[week]), 1)
        for k, group in enumerate(EXPOSURE_GROUPS):
            add("network_exposure", self.exposed[week, k] / persons, group)
        for k, group in enumerate(EXPOSURE_GROUPS):
            add("network_exposure_unlisted", self.exposed_unlisted[week, k] / free, group)

    def _peers(self, add: Callable[..., None], week: int) -> None:
        """Peer ratings given, and the peer measures of the last trust evaluation."""
        add("network_ratings_given", self.ratings_given[week])
        add("network_rated_share", self.rated[week] / max(self.n_scored, 1))
        rating, trust = self.peer_rating[week], self.peer_trust[week]
        if rating.n:
            for q in (10, 50, 90):
                add("network_peer_rating", rating.percentile(q) / 100, f"p{q}")
            add("network_peer_rating", rating.mean() / 100, "mean")
        if trust.n:
            for q in (10, 50, 90):
                add("network_peer_trust", trust.percentile(q) / 1000, f"p{q}")

    def _summaries(self, m: MetricsTable) -> None:
        weeks = self.weeks
        n = max(self.n_scored, 1)
        m.add("records", self.records)
        m.add("false_records", self.false_records)
        m.add("false_records_voided", self.false_voided)
        m.add("wrongful_person_weeks", int(self.wrongful.sum()))
        m.add("wrongfully_listed_subjects", self.wrongful_subjects)
        self._spells(m)
        m.add("score_gini_final", self.scores[-1].gini())
        m.add("denied_per_1000_per_year", float(np.mean(self.denied / n * 1000)))
        span = min(PERIOD_WEEKS, weeks)
        per_year = WEEKS_PER_YEAR / span * 1000 / n
        for metric, observed, without in (
            ("penalized_conduct_per_1000", self.conduct, self.conduct_without),
            ("penalized_legal_conduct_per_1000", self.legal, self.legal_without),
        ):
            m.add(
                metric,
                float(without.sum()) * WEEKS_PER_YEAR / weeks * 1000 / n,
                group="without_scheme",
            )
            m.add(metric, observed[:span].sum() * per_year, group="first")
            m.add(metric, observed[-span:].sum() * per_year, group="last")
        total = max(int(self.sanctioned_weeks.sum()), 1)
        for label, gs in sanction_groups():
            people = int(self.group_size[gs].sum())
            held = int(self.sanctioned_weeks[gs].sum())
            m.add("sanctioned_share", held / max(people * weeks, 1), group=label)
            m.add("sanctions_borne", held / total, group=label)
        for d in range(1, DECILES + 1):
            persons = max(int(self.persons_by_decile[d]), 1)
            m.add("donated_per_person", self.donated[d] / persons, group=f"decile_{d:02d}")
            m.add(
                "points_bought_back_per_person",
                self.bought_final[d] / persons,
                group=f"decile_{d:02d}",
            )

    def _spells(self, m: MetricsTable) -> None:
        """Wrongful listings (spells of consecutive weeks on a black list while a false
        record counts): how many, how long, and how many still run at the end."""
        lengths = np.arange(self.weeks + 1, dtype=np.float64)
        both = self.spells_closed + self.spells_open
        count = int(both.sum())
        m.add("wrongful_spells", count)
        m.add("wrongful_spells_open_at_end", int(self.spells_open.sum()))
        if count:
            hist = Histogram(np.arange(self.weeks + 1, dtype=np.int64)[both > 0], both[both > 0])
            m.add("wrongful_spell_weeks", float((lengths * both).sum() / count), group="mean")
            for q in (50, 90):
                m.add("wrongful_spell_weeks", hist.percentile(q), group=f"p{q}")
            m.add("wrongful_spell_weeks", float(hist.values[-1]), group="max")
        for lo, hi in SPELL_BUCKETS:
            label = f"weeks_{lo:02d}_{hi:02d}" if hi is not None else f"weeks_{lo:02d}_plus"
            m.add(
                "wrongful_spells", int(both[lo : None if hi is None else hi + 1].sum()), group=label
            )


def sanction_groups() -> list[tuple[str, npt.NDArray[np.intp]]]:
    """The groups of the sanction metrics: income deciles, areas, organizations."""
    out = [(f"decile_{d:02d}", np.array([d - 1, DECILES + d - 1])) for d in range(1, 11)]
    out.append(("urban", np.arange(DECILES)))
    out.append(("rural", np.arange(DECILES, 2 * DECILES)))
    out.append(("organization", np.arange(2 * DECILES, N_GROUPS)))
    return out

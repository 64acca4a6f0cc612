"""Explanations (SCHEME.md section 8): why a subject has its state.

An explanation runs the kernel's own partition function on the subject alone with
``trace=True``, and reads the rules' measures, contributions and the slots of the records
from it; nothing here recomputes scheme semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from socialcredit.days import day_text, from_day
from socialcredit.engine.columns import Prepared
from socialcredit.engine.conditions import condition_parts, render_condition
from socialcredit.engine.kernel import Program, evaluate_partition
from socialcredit.engine.network import NetworkState, rated_by, related_to
from socialcredit.engine.states import States
from socialcredit.errors import UnknownSubject
from socialcredit.ids import mask, mask_unknown
from socialcredit.scheme.model import Condition, Related

UNKNOWN_TYPE = "its type is not in the scheme's catalogue"


@dataclass(frozen=True)
class RuleExplanation:
    """One rule: the records that counted, the measure and the contribution."""

    id: str
    measure_kind: str
    measure: int | None  # None: a days_since rule with no record
    contribution: int
    records: tuple[str, ...]
    window_days: int | None
    ratings: tuple[RatingShown, ...] = ()  # peer rules: the ratings that counted


@dataclass(frozen=True)
class RatingShown:
    """A peer rating that counted for a peer rule (docs/networks.md section 4): the rater
    (a person's code masked), the stars, the date, and the rater's trust in thousandths
    of the average, which weighs the rating."""

    rater: str
    stars: int
    date: str
    rater_trust: int


@dataclass(frozen=True)
class ConditionTrace:
    """A condition with whether it held, and the same for its parts.

    For a relation condition, ``related`` names the related subjects that satisfy its
    ``where`` (persons' codes masked), and ``count`` says how many there are.
    """

    text: str
    holds: bool
    parts: tuple[ConditionTrace, ...] = ()
    related: tuple[str, ...] = ()
    count: int | None = None


@dataclass(frozen=True)
class ListExplanation:
    """A list and whether (and by which condition) the subject is on it."""

    id: str
    kind: str
    member: bool
    publish: bool
    condition: ConditionTrace


@dataclass(frozen=True)
class MeasureExplanation:
    """A measure, whether it applies, and its condition."""

    id: str
    applies: bool
    deny: tuple[str, ...]
    grant: tuple[str, ...]
    condition: ConditionTrace


@dataclass(frozen=True)
class NotCounted:
    """A record of the subject that counts for no rule at this date, and why."""

    id: str
    type: str
    reason: str


@dataclass(frozen=True)
class Explanation:
    """Everything behind one subject's state at one date."""

    code: str
    kind: str
    scheme: str
    at: str
    base: int
    rules: tuple[RuleExplanation, ...]
    unbounded_score: int
    score: int
    grade: str
    lists: tuple[ListExplanation, ...]
    measures: tuple[MeasureExplanation, ...]
    not_counted: tuple[NotCounted, ...] = field(default=())

    @property
    def denied(self) -> list[str]:
        """The denied set, sorted."""
        return sorted({a for m in self.measures if m.applies for a in m.deny})

    @property
    def granted(self) -> list[str]:
        """The granted set, sorted."""
        return sorted({a for m in self.measures if m.applies for a in m.grant})


def explain(states: States, code: str) -> Explanation:
    """Explain the state of subject ``code`` in ``states``."""
    i = states.index(code)
    if i is None:
        shown = mask_unknown(code)
        raise UnknownSubject(f"{shown!r} is not a subject scored by scheme {states.scheme_id!r}")
    return explain_index(states.program, states, i)


def explain_index(prog: Program, states: States, i: int) -> Explanation:
    """Explain the subject in row ``i``."""
    prep, at = states.prepared, states.at
    c = prog.compiled
    scheme = c.scheme
    network = states.raw.network
    part = evaluate_partition(prog, prep, i, i + 1, at, trace=True, network=network)
    assert part.facts is not None and part.contribution is not None and part.slot is not None
    lo, hi = prep.record_range(i, i + 1)
    ids = [
        str(x)
        for x in prep.records.column("id").take(pa.array(prep.source_rows(lo, hi))).to_pylist()
    ]
    slots = part.slot

    rules = []
    for r, (rule, spec) in enumerate(zip(c.rules, scheme.rules, strict=True)):
        counted = np.isin(slots, rule.slots)
        has = bool(part.facts.has_measure[r, 0])
        rules.append(
            RuleExplanation(
                id=rule.id,
                measure_kind=spec.measure,
                measure=int(part.facts.measure[r, 0]) if has else None,
                contribution=int(part.contribution[r, 0]),
                records=tuple(ids[k] for k in np.flatnonzero(counted)),
                window_days=spec.window_days,
                ratings=_ratings(network, i) if r in prog.peer_rules else (),
            )
        )
    unbounded = scheme.score.base + sum(r.contribution for r in rules)

    def trace(cond: Condition) -> ConditionTrace:
        facts = part.facts
        assert facts is not None
        related: tuple[str, ...] = ()
        count = None
        if isinstance(cond, Related) and network is not None:
            related, count = _related(network, prog, cond, i)
        return ConditionTrace(
            render_condition(cond),
            bool(prog.condition(cond)(facts)[0]),
            tuple(trace(sub) for sub in condition_parts(cond)),
            related,
            count,
        )

    lists = tuple(
        ListExplanation(spec.id, spec.kind, bool(part.lists[k, 0]), spec.publish, trace(spec.when))
        for k, spec in enumerate(scheme.lists)
    )
    measures = tuple(
        MeasureExplanation(
            m.id, bool(part.applied[k, 0]), tuple(m.deny), tuple(m.grant), trace(m.when)
        )
        for k, m in enumerate(scheme.measures)
    )
    not_counted = tuple(
        NotCounted(ids[k], _type_name(prep, lo + k), _why_not(prep, lo + k, at))
        for k in np.flatnonzero(slots == c.n_slots).tolist()
    )
    return Explanation(
        code=str(states.codes[i]),
        kind=str(states.kinds[i]),
        scheme=scheme.scheme,
        at=from_day(at).isoformat(),
        base=scheme.score.base,
        rules=tuple(rules),
        unbounded_score=unbounded,
        score=int(part.score[0]),
        grade=prog.grade_names[int(part.grade[0])],
        lists=lists,
        measures=measures,
        not_counted=not_counted,
    )


def _ratings(network: NetworkState | None, i: int) -> tuple[RatingShown, ...]:
    """The ratings of subject ``i`` that counted, as the reputation used them."""
    if network is None or network.reputation is None:
        return ()
    rep = network.reputation
    net = network.net
    out = []
    for k in rated_by(network, i).tolist():
        rater = int(rep.rater[k])
        out.append(
            RatingShown(
                mask(str(net.codes[rater]), str(net.kinds[rater])),
                int(rep.stars[k]),
                from_day(int(rep.day[k])).isoformat(),
                int(rep.trust_per_mille[rater]),
            )
        )
    return tuple(out)


def _related(
    network: NetworkState, prog: Program, cond: Related, i: int
) -> tuple[tuple[str, ...], int]:
    """The related subjects that satisfy a relation condition's ``where``, masked."""
    assert prog.plan is not None
    k = prog.plan.related_index[id(cond)]
    net = network.net
    shown = tuple(
        mask(str(net.codes[o]), str(net.kinds[o])) for o in related_to(network, k, i).tolist()
    )
    return shown, int(network.counts[k, i])


def _type_name(prep: Prepared, row: int) -> str:
    return prep.tables.names[int(prep.type_index[row])]


OUTSIDE_WINDOWS = "outside the window of every rule that uses its type"


def _why_not(prep: Prepared, row: int, at: int) -> str:
    """Why a record counts for no rule at ``at`` (read off the same columns as the kernel)."""
    c = prep.compiled
    code = int(prep.tables.code[int(prep.type_index[row])])
    if code == len(c.types):
        return UNKNOWN_TYPE
    rules = [r for r in c.scheme.rules if c.types[code] in r.types]
    if not rules:
        return "no rule uses its type"
    occurred = int(prep.occurred[row])
    if occurred > at:
        return f"it occurred after {from_day(at).isoformat()}"
    if prep.ended_day(row) <= at:
        ended = from_day(prep.ended_day(row)).isoformat()
        return f"ended on {ended} by a record that resolves or voids it"
    windows = [r.window_days for r in rules]
    longest = None if None in windows else max(w for w in windows if w is not None)
    if longest is not None and at - occurred >= longest:
        return OUTSIDE_WINDOWS
    start = max(int(prep.recorded[row]), int(c.floor[code]))
    effective = max(occurred, start + int(c.delay[code]))
    if effective > at:
        if longest is not None and effective - occurred >= longest:
            return (
                f"it never counts: it would take effect on {day_text(effective)}, after it "
                f"leaves the window of every rule that uses its type on "
                f"{day_text(occurred + longest)}"
            )
        when = day_text(effective)  # the first day it counts
        since = when if when.startswith("after") else f"from {when}"
        return f"not yet in effect: in its notice period; it counts {since}"
    return OUTSIDE_WINDOWS

"""What a scheme penalizes and who it sanctions, read off the scheme and the kernel's states.

These read the scheme's structure (like the rights audit) and the kernel's output; they do
not evaluate anything themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from socialcredit.engine import States
from socialcredit.scheme.audit import condition_rules
from socialcredit.scheme.model import Rule, Scheme

Bools = npt.NDArray[np.bool_]


def _values(rule: Rule) -> list[int]:
    values = [rule.points] if rule.points is not None else [b.points for b in rule.bins or ()]
    if rule.none_points is not None:
        values.append(rule.none_points)
    return values


def _negative(rule: Rule) -> bool:
    return any(v < 0 for v in _values(rule))


def _rewarding(rule: Rule) -> bool:
    """Only ever adds points: its records move a subject away from sanctions."""
    values = _values(rule)
    return all(v >= 0 for v in values) and any(v > 0 for v in values)


def penalized_types(scheme: Scheme) -> frozenset[str]:
    """Record types the scheme penalizes: read by a rule that can take points away, or by a
    rule a black list or a denying measure depends on (rules that only add points excepted:
    a heroic act keeps a subject off a list of low grades)."""
    rules = {r.id: r for r in scheme.rules}
    chosen = {r.id for r in scheme.rules if _negative(r)}
    by_list: dict[str, set[str]] = {}
    for spec in scheme.lists:
        deps = condition_rules(scheme, spec.when, by_list)
        by_list[spec.id] = deps
        if spec.kind == "black":
            chosen |= deps
    for m in scheme.measures:
        if m.deny:
            chosen |= condition_rules(scheme, m.when, by_list)
    return frozenset(t for r in chosen if not _rewarding(rules[r]) for t in rules[r].types)


@dataclass(frozen=True)
class Sanctions:
    """Who a scheme sanctions, read off the kernel's raw states (lists and applied measures)."""

    black: tuple[int, ...]  # rows of the black lists
    member: npt.NDArray[np.int64]  # [measures, distinct deny entries]: the measure denies it
    base: int

    @classmethod
    def of(cls, scheme: Scheme) -> Sanctions:
        """The sanctions of a scheme."""
        entries = sorted({d for m in scheme.measures for d in m.deny})
        index = {e: i for i, e in enumerate(entries)}
        member = np.zeros((len(scheme.measures), len(entries)), dtype=np.int64)
        for i, m in enumerate(scheme.measures):
            for d in m.deny:
                member[i, index[d]] = 1
        black = tuple(i for i, spec in enumerate(scheme.lists) if spec.kind == "black")
        return cls(black, member, scheme.score.base)

    def black_listed(self, lists: Bools) -> Bools:
        """Per subject (columns of ``lists``): on any black list."""
        if not self.black:
            return np.zeros(lists.shape[1], dtype=np.bool_)
        out: Bools = np.asarray(lists[list(self.black)].any(axis=0), dtype=np.bool_)
        return out

    def denied(self, applied: Bools) -> npt.NDArray[np.int64]:
        """Per subject (columns of ``applied``): the size of its denied set (distinct
        entries, SCHEME.md §6)."""
        if not self.member.shape[1]:
            return np.zeros(applied.shape[1], dtype=np.int64)
        covered = applied.T.astype(np.int64) @ self.member > 0
        out: npt.NDArray[np.int64] = covered.sum(axis=1)
        return out


def black_listed(states: States) -> Bools:
    """Per scored subject: on any black list."""
    return Sanctions.of(states.program.compiled.scheme).black_listed(states.raw.lists)


def denied_counts(states: States) -> npt.NDArray[np.int64]:
    """Per scored subject: the size of its denied set (distinct entries, SCHEME.md §6)."""
    return Sanctions.of(states.program.compiled.scheme).denied(states.raw.applied)


def penalized(states: States) -> Bools:
    """Per scored subject: penalized, that is on a black list, denied an action, or scored
    below the scheme's base (its records took points away)."""
    base = states.program.compiled.scheme.score.base
    out: Bools = black_listed(states) | (denied_counts(states) > 0) | (states.raw.score < base)
    return out


def redeeming_rules(scheme: Scheme, record_type: str) -> tuple[int, ...]:
    """Rules that only add points and read ``record_type`` (donations): the points a subject
    holds from them are points bought back."""
    return tuple(i for i, r in enumerate(scheme.rules) if record_type in r.types and _rewarding(r))

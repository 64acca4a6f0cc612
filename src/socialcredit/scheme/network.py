"""Where a scheme uses the network extension (docs/networks.md): relation conditions and
rules on peer ratings, each with its place in the file.

The engine numbers relation conditions in the order given here, and the rights audit and
the command line name these places.
"""

from __future__ import annotations

from collections.abc import Iterator

from socialcredit.scheme.model import (
    PEER_MEASURES,
    AllOf,
    AnyOf,
    Condition,
    Not,
    Related,
    Scheme,
)

Loc = tuple[str | int, ...]


def _walk(cond: Condition, loc: Loc) -> Iterator[tuple[Loc, Related]]:
    if isinstance(cond, Related):
        yield (*loc, "related"), cond
    elif isinstance(cond, AllOf):
        for j, part in enumerate(cond.all):
            yield from _walk(part, (*loc, "all", j))
    elif isinstance(cond, AnyOf):
        for j, part in enumerate(cond.any):
            yield from _walk(part, (*loc, "any", j))
    elif isinstance(cond, Not):
        yield from _walk(cond.not_, (*loc, "not"))


def related_conditions(scheme: Scheme) -> list[tuple[Loc, Related]]:
    """Every ``related`` condition with its place: lists first, then measures, each
    condition depth-first in the order written."""
    out: list[tuple[Loc, Related]] = []
    for i, spec in enumerate(scheme.lists):
        out.extend(_walk(spec.when, ("lists", i, "when")))
    for i, m in enumerate(scheme.measures):
        out.extend(_walk(m.when, ("measures", i, "when")))
    return out


def peer_rules(scheme: Scheme) -> list[int]:
    """The indices of the rules whose measure is read from peer ratings."""
    return [i for i, rule in enumerate(scheme.rules) if rule.measure in PEER_MEASURES]


def uses_relations(scheme: Scheme) -> bool:
    """Whether the scheme needs the relations input."""
    return bool(related_conditions(scheme))


def uses_ratings(scheme: Scheme) -> bool:
    """Whether the scheme needs the ratings input."""
    return bool(peer_rules(scheme))

"""Compile a scheme into the small arrays the kernel works with.

A record's *slot* is the pair (its type, its age band). The age bands of a type are cut at
the distinct windows of the rules that use it, so that every record of one slot counts for
exactly the same rules: a rule's measure is a reduction over its slots. Slots that no rule
can use are folded into a dump slot, and so are unknown types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from socialcredit.scheme.model import Scheme

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

NEVER = np.iinfo(np.int32).max
"""The day number standing for "never" (a record that is never ended)."""

MEASURE_COUNT, MEASURE_AMOUNT, MEASURE_DAYS_SINCE = 0, 1, 2
MEASURE_PEER_RATING, MEASURE_PEER_TRUST = 3, 4  # read no records (engine/network.py)
_MEASURES = {
    "count": MEASURE_COUNT,
    "amount": MEASURE_AMOUNT,
    "days_since": MEASURE_DAYS_SINCE,
    "peer_rating": MEASURE_PEER_RATING,
    "peer_trust": MEASURE_PEER_TRUST,
}


@dataclass(frozen=True)
class CompiledRule:
    """One rule, ready for vector evaluation."""

    id: str
    measure: int
    slots: I64  # the slots whose records count for this rule
    points: int | None
    per: int
    cap: int | None
    bin_max: tuple[int | None, ...]
    bin_points: tuple[int, ...]
    none_points: int | None


@dataclass(frozen=True)
class CompiledScheme:
    """A scheme as arrays: type vocabulary, delays, age bands, slots and rules.

    ``types`` is the vocabulary of record types (the catalogue); type code ``len(types)``
    stands for every type the scheme does not know. Per type code:

    - ``delay``: days from recording to effect (``notice_days`` for adverse types);
    - ``floor``: the day a record's notice period starts at the earliest: ``in_force``
      for adverse types when the scheme is in force from a day (a record recorded before
      it takes effect ``notice_days`` after that day), else the least day (none).
    - ``cuts``: the band cuts, padded with ``NEVER``; a record of age ``a`` is in band
      ``sum(a >= cuts[t])``;
    - ``slot_base``: ``slot = slot_map[slot_base[t] + band]`` maps (type, band) to a slot
      in ``[0, n_slots]``, where ``n_slots`` is the dump.
    """

    scheme: Scheme
    types: tuple[str, ...]
    delay: I32
    floor: I32
    cuts: I32
    slot_base: I32
    slot_map: I32
    n_slots: int
    rules: tuple[CompiledRule, ...]
    amount_slots: I64
    days_since_slots: I64

    @property
    def id(self) -> str:
        """The scheme identifier."""
        return self.scheme.scheme


def compile_scheme(scheme: Scheme, in_force: int | None = None) -> CompiledScheme:
    """Compile a validated scheme. ``in_force``: the day (a day number) from which the
    scheme is in force over records already recorded, for a service that gives notice of
    them when it starts to run the scheme: an adverse record takes effect ``notice_days``
    after ``max(recorded_at, in_force)``; None (the default, and SCHEME.md's ``evaluate``):
    ``notice_days`` after ``recorded_at``."""
    types = tuple(scheme.records)
    n_types = len(types)
    code = {t: i for i, t in enumerate(types)}

    delay = np.zeros(n_types + 1, dtype=np.int32)
    floor = np.full(n_types + 1, np.iinfo(np.int32).min, dtype=np.int32)
    for t, spec in scheme.records.items():
        if spec.adverse:
            # no date is NEVER days after another: a longer delay is the same
            delay[code[t]] = min(scheme.notice_days or 0, NEVER)
            if in_force is not None:
                floor[code[t]] = in_force

    # Band cuts per type: the distinct finite windows of the rules using it.
    windows: dict[int, set[int]] = {i: set() for i in range(n_types)}
    for rule in scheme.rules:
        for t in rule.types:
            if rule.window_days is not None:
                windows[code[t]].add(rule.window_days)
    width = max([len(w) for w in windows.values()] + [1])
    cuts = np.full((n_types + 1, width), NEVER, dtype=np.int32)
    for i, ws in windows.items():
        for j, w in enumerate(sorted(ws)):
            cuts[i, j] = min(w, NEVER)  # no age reaches NEVER days: a longer window is the same
    band_count = [len(windows[i]) + 1 for i in range(n_types)]

    # Which rules each (type, band) pair counts for; pairs with the same rule set per type
    # would be mergeable, but distinct pairs keep explanations simple.
    rule_sets: list[list[int]] = []
    slot_base = np.zeros(n_types + 1, dtype=np.int32)
    offset = 0
    for i in range(n_types):
        slot_base[i] = offset
        bounds = sorted(windows[i])
        for b in range(band_count[i]):
            upper = bounds[b] if b < len(bounds) else None  # ages < upper
            users = [
                r
                for r, rule in enumerate(scheme.rules)
                if types[i] in rule.types
                and (rule.window_days is None or (upper is not None and upper <= rule.window_days))
            ]
            rule_sets.append(users)
        offset += band_count[i]
    slot_base[n_types] = offset  # unknown types: one pair, never used
    rule_sets.append([])

    used = [p for p, users in enumerate(rule_sets) if users]
    n_slots = len(used)
    slot_map = np.full(len(rule_sets), n_slots, dtype=np.int32)
    for s, p in enumerate(used):
        slot_map[p] = s

    rules = []
    for r, rule in enumerate(scheme.rules):
        slots = np.array([slot_map[p] for p in used if r in rule_sets[p]], dtype=np.int64)
        rules.append(
            CompiledRule(
                id=rule.id,
                measure=_MEASURES[rule.measure],
                slots=slots,
                points=rule.points,
                per=rule.per or 1,
                cap=rule.cap,
                bin_max=tuple(b.max for b in rule.bins or ()),
                bin_points=tuple(b.points for b in rule.bins or ()),
                none_points=rule.none_points,
            )
        )
    amount_slots = _union([r.slots for r in rules if r.measure == MEASURE_AMOUNT])
    days_slots = _union([r.slots for r in rules if r.measure == MEASURE_DAYS_SINCE])
    return CompiledScheme(
        scheme=scheme,
        types=types,
        delay=delay,
        floor=floor,
        cuts=cuts,
        slot_base=slot_base,
        slot_map=slot_map,
        n_slots=n_slots,
        rules=tuple(rules),
        amount_slots=amount_slots,
        days_since_slots=days_slots,
    )


def _union(arrays: list[I64]) -> I64:
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(arrays)).astype(np.int64)

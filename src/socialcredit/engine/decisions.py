"""Decisions (SCHEME.md section 6): may this subject do this action?

A :class:`Decider` holds, for every subject, the set of measures that apply to it as a
bitmask, and for every action asked about, the masks of the measures whose ``deny`` or
``grant`` covers it. A decision is then one AND of two integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from socialcredit.engine.states import States
from socialcredit.errors import UnknownSubject
from socialcredit.ids import mask

Outcome = Literal["allowed", "denied", "granted"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "denied", "granted")


def covers(entry: str, action: str) -> bool:
    """Whether a deny/grant entry covers an action: the action itself or one below it."""
    return action == entry or action.startswith(entry + ".")


@dataclass(frozen=True)
class Decision:
    """The answer to "may ``code`` do ``action``", with the measures behind it."""

    code: str
    action: str
    outcome: Outcome
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        """True unless denied (granted actions are allowed)."""
        return self.outcome != "denied"


class Decider:
    """Answers decisions for every subject of one :class:`States`."""

    def __init__(self, states: States) -> None:
        self.states = states
        measures = states.program.compiled.scheme.measures
        self.measure_ids = tuple(m.id for m in measures)
        self._deny = [tuple(m.deny) for m in measures]
        self._grant = [tuple(m.grant) for m in measures]
        applied = states.raw.applied  # [measures, n]
        if len(measures) <= 64:
            weights = (np.uint64(1) << np.arange(len(measures), dtype=np.uint64))[:, None]
            self.bits: npt.NDArray[np.uint64] = (
                (applied.astype(np.uint64) * weights).sum(axis=0, dtype=np.uint64)
                if len(measures)
                else np.zeros(applied.shape[1], dtype=np.uint64)
            )
            self._wide: list[int] | None = None
        else:
            self.bits = np.zeros(applied.shape[1], dtype=np.uint64)
            self._wide = [
                int.from_bytes(np.packbits(col, bitorder="little").tobytes(), "little")
                for col in applied.T
            ]
        self._masks: dict[str, tuple[int, int]] = {}

    def masks(self, action: str) -> tuple[int, int]:
        """The (deny, grant) measure masks of an action, cached."""
        found = self._masks.get(action)
        if found is None:
            deny = sum(
                1 << i for i, d in enumerate(self._deny) if any(covers(e, action) for e in d)
            )
            grant = sum(
                1 << i for i, g in enumerate(self._grant) if any(covers(e, action) for e in g)
            )
            found = self._masks[action] = (deny, grant)
        return found

    def applied_mask(self, i: int) -> int:
        """The measures applying to the subject in row ``i``, as a bitmask."""
        return self._wide[i] if self._wide is not None else int(self.bits[i])

    def may(self, code: str, action: str) -> Decision:
        """Decide one action for one subject."""
        i = self.states.index(code)
        if i is None:
            raise UnknownSubject(
                f"{mask(code, 'person')!r} is not a subject scored by scheme "
                f"{self.states.scheme_id!r}"
            )
        deny, grant = self.masks(action)
        applied = self.applied_mask(i)
        hit = applied & deny
        if hit:
            return Decision(code, action, "denied", self._names(hit))
        hit = applied & grant
        if hit:
            return Decision(code, action, "granted", self._names(hit))
        return Decision(code, action, "allowed", ())

    def _names(self, mask: int) -> tuple[str, ...]:
        return tuple(m for i, m in enumerate(self.measure_ids) if mask >> i & 1)

    def may_many(self, rows: npt.NDArray[np.int64], action: str) -> npt.NDArray[np.int8]:
        """Outcome codes (0 allowed, 1 denied, 2 granted; see OUTCOMES) for many rows."""
        deny, grant = self.masks(action)
        if self._wide is not None:
            out: npt.NDArray[np.int8] = np.zeros(len(rows), dtype=np.int8)
            for k, r in enumerate(rows.tolist()):
                a = self._wide[r]
                out[k] = 1 if a & deny else (2 if a & grant else 0)
            return out
        applied = self.bits[rows]
        denied = (applied & np.uint64(deny)) != 0
        granted = (applied & np.uint64(grant)) != 0
        out = granted.astype(np.int8) * 2
        out[denied] = 1
        return out

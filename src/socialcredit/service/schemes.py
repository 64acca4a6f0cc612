"""The active schemes of a service: loaded, audited, refused when a finding is critical."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import LAST_DAY, to_day
from socialcredit.engine import Engine
from socialcredit.errors import RefusedScheme, SocialCreditError
from socialcredit.scheme import Finding, LoadedScheme, audit, load
from socialcredit.scheme.model import Scheme

__all__ = ["ActiveScheme", "day_numbers", "load_active", "reach"]


@dataclass(frozen=True)
class ActiveScheme:
    """A scheme the service runs on real records, with its audit and compiled engine."""

    loaded: LoadedScheme
    findings: tuple[Finding, ...]
    engine: Engine
    version: str  # the first 16 hex digits of the SHA-256 of the YAML text
    # the day the service first ran the scheme, when the adverse records already in the
    # ledger then count from their notice (socialcredit.service.activation); None: every
    # record counts from its own recorded_at
    in_force: dt.date | None = None

    def since(self, day: dt.date | None) -> ActiveScheme:
        """This scheme, in force over the records already there from ``day``."""
        if day == self.in_force:
            return self
        in_force = None if day is None else to_day(day)
        return replace(self, in_force=day, engine=Engine(self.scheme, in_force=in_force))

    @cached_property
    def reach(self) -> dict[str, int | None]:
        """Each adverse type some rule reads, with the longest window of those rules
        (None: a rule without window)."""
        return reach(self.scheme)

    def takes_effect(
        self, types: pa.Array, kinds: pa.Array, occurred: pa.Array, recorded: pa.Array
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """For records as columns (their subjects' kinds beside them): whether each is an
        adverse record the scheme would count once it takes effect -- its subject's kind
        scored, its type adverse and read by a rule, and younger than that rule's window on
        the day it takes effect, a day in the calendar -- and that day (a day number):
        ``notice_days`` after ``recorded_at``, or after the day in force when that is
        later. Records ended by a ``ref`` are the caller's to leave out."""
        n = len(types)
        reach = self.reach
        if not reach or not n:
            return np.zeros(n, np.bool_), np.zeros(n, np.int64)
        names = pa.array(list(reach), pa.string())
        position = pc.index_in(types, value_set=names)
        ok = pc.and_(
            pc.is_valid(position),
            pc.is_in(kinds, value_set=pa.array(list(self.scheme.subjects), pa.string())),
        )
        able = np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), np.bool_)
        start = day_numbers(recorded)
        if self.in_force is not None:
            np.maximum(start, to_day(self.in_force), out=start)
        effective = start + min(self.scheme.notice_days or 0, LAST_DAY)
        able &= effective <= LAST_DAY
        longest = np.array([LAST_DAY if w is None else w for w in reach.values()], np.int64)
        window = longest[np.asarray(pc.fill_null(position, 0).to_numpy(), np.intp)]
        able &= effective - day_numbers(occurred) < window
        return able, effective

    @property
    def scheme(self) -> Scheme:
        """The validated scheme."""
        return self.loaded.scheme

    @property
    def id(self) -> str:
        """The scheme's identifier."""
        return self.loaded.scheme.scheme


def reach(scheme: Scheme) -> dict[str, int | None]:
    """Each adverse type some rule of ``scheme`` reads, with the longest window of those
    rules (None: a rule without window)."""
    out: dict[str, int | None] = {}
    for rule in scheme.rules:
        for t in rule.types:
            if scheme.records[t].adverse:
                old, window = out.get(t, 0), rule.window_days
                out[t] = None if old is None or window is None else max(old, window)
    return out


def day_numbers(dates: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Dates as int64 day numbers."""
    return np.asarray(dates.cast(pa.int32()).to_numpy(zero_copy_only=False), np.int64)


def load_active(names: list[str]) -> dict[str, ActiveScheme]:
    """Load and audit each scheme; refuse any with a critical finding, or two with one id."""
    active: dict[str, ActiveScheme] = {}
    for name in names:
        loaded = load(name)
        findings = audit(loaded.scheme, loaded.places)
        critical = [f for f in findings if f.severity == "critical"]
        if critical:
            raise RefusedScheme(
                f"scheme {loaded.scheme.scheme!r} ({loaded.source}) has critical rights-audit "
                f"findings and is refused on real records: " + "; ".join(str(f) for f in critical)
            )
        sid = loaded.scheme.scheme
        if sid in active:
            raise SocialCreditError(f"two active schemes are named {sid!r}")
        version = hashlib.sha256(loaded.text.encode("utf-8")).hexdigest()[:16]
        active[sid] = ActiveScheme(loaded, tuple(findings), Engine(loaded.scheme), version)
    return active

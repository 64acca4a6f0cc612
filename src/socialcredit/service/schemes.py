"""The active schemes of a service: loaded, audited, refused when a finding is critical."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace

from socialcredit.days import to_day
from socialcredit.engine import Engine
from socialcredit.errors import RefusedScheme, SocialCreditError
from socialcredit.scheme import Finding, LoadedScheme, audit, load
from socialcredit.scheme.model import Scheme

__all__ = ["ActiveScheme", "load_active"]


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

    @property
    def scheme(self) -> Scheme:
        """The validated scheme."""
        return self.loaded.scheme

    @property
    def id(self) -> str:
        """The scheme's identifier."""
        return self.loaded.scheme.scheme


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

"""The engine: compile a scheme, evaluate it over records, explain and decide.

Pure functions of their inputs: no I/O, no global state.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from socialcredit.days import to_day
from socialcredit.engine.columns import Prepared, prepare
from socialcredit.engine.compiled import CompiledScheme, compile_scheme
from socialcredit.engine.kernel import Program, evaluate_all
from socialcredit.engine.states import OUTPUT_SCHEMA, States
from socialcredit.scheme.model import Scheme

__all__ = [
    "OUTPUT_SCHEMA",
    "CompiledScheme",
    "Engine",
    "Prepared",
    "States",
    "compile_scheme",
    "evaluate",
]


class Engine:
    """A compiled scheme, ready to evaluate any number of ledgers at any dates."""

    def __init__(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self.compiled = compile_scheme(scheme)
        self.program = Program.of(self.compiled)

    def prepare(self, subjects: pa.Table, records: pa.Table) -> Prepared:
        """Prepare canonical subjects and records for evaluation (independent of the date)."""
        return prepare(self.compiled, subjects, records)

    def evaluate(
        self, prepared: Prepared, at: dt.date | str | int, *, workers: int | None = None
    ) -> States:
        """The state of every scored subject at ``at``."""
        day = at if isinstance(at, int) else to_day(at)
        raw = evaluate_all(self.program, prepared, day, workers=workers)
        return States(self.program, prepared, day, raw)


def evaluate(
    scheme: Scheme, subjects: pa.Table, records: pa.Table, at: dt.date | str | int
) -> States:
    """``evaluate(scheme, subjects, records, at)`` of SCHEME.md: one state per scored subject."""
    engine = Engine(scheme)
    return engine.evaluate(engine.prepare(subjects, records), at)

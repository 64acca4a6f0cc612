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
from socialcredit.engine.network import (
    NetworkState,
    PreparedNetwork,
    final_state,
    first_state,
    prepare_network,
)
from socialcredit.engine.states import OUTPUT_SCHEMA, States
from socialcredit.scheme.model import Scheme

__all__ = [
    "OUTPUT_SCHEMA",
    "CompiledScheme",
    "Engine",
    "Prepared",
    "PreparedNetwork",
    "States",
    "compile_scheme",
    "evaluate",
]


class Engine:
    """A compiled scheme, ready to evaluate any number of ledgers at any dates."""

    def __init__(self, scheme: Scheme, *, in_force: int | None = None) -> None:
        """``in_force``: the day number from which the scheme is in force over records
        recorded before it (see :func:`compile_scheme`); None: SCHEME.md's ``evaluate``."""
        self.scheme = scheme
        self.in_force = in_force
        self.compiled = compile_scheme(scheme, in_force)
        self.program = Program.of(self.compiled)

    def prepare(
        self, subjects: pa.Table, records: pa.Table, *, processes: bool = False
    ) -> Prepared:
        """Prepare canonical subjects and records for evaluation (independent of the date).

        With ``processes``, the passes over large inputs run on forked processes (POSIX).
        """
        return prepare(self.compiled, subjects, records, processes=processes)

    @property
    def uses_relations(self) -> bool:
        """Whether the scheme has relation conditions (docs/networks.md section 3)."""
        return self.program.plan is not None and self.program.plan.uses_relations

    @property
    def uses_ratings(self) -> bool:
        """Whether the scheme has rules on peer ratings (docs/networks.md section 4)."""
        return self.program.plan is not None and self.program.plan.uses_ratings

    def prepare_network(
        self,
        prepared: Prepared,
        *,
        relations: pa.Table | None = None,
        ratings: pa.Table | None = None,
    ) -> PreparedNetwork:
        """Prepare the relations and ratings tables for the subjects of ``prepared``.

        Raises ValueError when the scheme needs a table that is not given.
        """
        missing = [
            name
            for name, needed, table in (
                ("relations", self.uses_relations, relations),
                ("ratings", self.uses_ratings, ratings),
            )
            if needed and table is None
        ]
        if missing:
            raise ValueError(f"scheme {self.scheme.scheme!r} needs {' and '.join(missing)}")
        assert self.program.plan is not None
        return prepare_network(
            self.program.plan, prepared.codes, prepared.kinds, relations, ratings
        )

    def evaluate(
        self,
        prepared: Prepared,
        at: dt.date | str | int,
        *,
        workers: int | None = None,
        network: PreparedNetwork | None = None,
        processes: bool = False,
    ) -> States:
        """The state of every scored subject at ``at``.

        Partitions of subjects are evaluated on ``workers`` threads (default: the cores),
        or, with ``processes``, on as many forked processes when the input is large: the
        kernel's short array operations leave threads waiting on the interpreter lock, so
        processes scale where threads barely do. A scheme with relation conditions or peer
        rules needs ``network`` (:meth:`prepare_network`); the evaluation order is that of
        docs/networks.md.
        """
        day = at if isinstance(at, int) else to_day(at)
        if not (self.uses_relations or self.uses_ratings):
            raw = evaluate_all(self.program, prepared, day, workers=workers, processes=processes)
            return States(self.program, prepared, day, raw)
        if network is None:
            raise ValueError(
                f"scheme {self.scheme.scheme!r} uses relations or peer ratings: pass "
                "network=engine.prepare_network(prepared, relations=..., ratings=...)"
            )
        if not network.codes.equals(prepared.codes):
            raise ValueError("the network was prepared for other subjects")
        state: NetworkState = first_state(network, day)
        if self.uses_relations:
            first = evaluate_all(
                self.program, prepared, day, workers=workers, network=state, processes=processes
            )
            state = final_state(state, first.score, first.grade, first.lists)
        raw = evaluate_all(
            self.program, prepared, day, workers=workers, network=state, processes=processes
        )
        return States(self.program, prepared, day, raw)


def evaluate(
    scheme: Scheme,
    subjects: pa.Table,
    records: pa.Table,
    at: dt.date | str | int,
    *,
    relations: pa.Table | None = None,
    ratings: pa.Table | None = None,
) -> States:
    """``evaluate(scheme, subjects, records, at)`` of SCHEME.md: one state per scored subject.

    ``relations`` and ``ratings`` are the inputs of the network extension
    (docs/networks.md), needed by the schemes that use it.
    """
    engine = Engine(scheme)
    prepared = engine.prepare(subjects, records)
    if not (engine.uses_relations or engine.uses_ratings):
        return engine.evaluate(prepared, at)
    network = engine.prepare_network(prepared, relations=relations, ratings=ratings)
    return engine.evaluate(prepared, at, network=network)

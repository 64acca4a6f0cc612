"""Where the rows of a table came from, so that every problem names its place.

A table read from a file travels with an :class:`Origin`: the file's name and, for each
row, its physical line in a CSV file (the header is line 1) or its 1-based row number in
a Parquet file or an in-memory table. Filtering the table filters the origin alongside
(:meth:`Origin.take`), so a problem found late (say, a ``ref`` to a record missing from
the ledger) still names the line the user can open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from socialcredit.errors import Problem

__all__ = ["Origin"]

Unit = Literal["line", "row"]


@dataclass(frozen=True)
class Origin:
    """The source of a table and the line (or row) number of each of its rows."""

    source: str
    numbers: npt.NDArray[np.int64]
    unit: Unit = "line"

    @classmethod
    def rows(cls, source: str, n: int) -> Origin:
        """An origin numbering ``n`` rows 1..n, as for a Parquet file or a table."""
        return cls(source, np.arange(1, n + 1, dtype=np.int64), "row")

    @classmethod
    def one(cls, source: str) -> Origin:
        """The origin of a single row given whole (on the command line): its problems name
        ``source`` with no line or row."""
        return cls(source, np.zeros(1, dtype=np.int64), "line")

    def __len__(self) -> int:
        return len(self.numbers)

    def take(self, indices: npt.ArrayLike) -> Origin:
        """The origin of the rows at ``indices`` (as ``pyarrow.Table.take`` selects them)."""
        return Origin(self.source, self.numbers[np.asarray(indices, dtype=np.int64)], self.unit)

    def place(self, index: int) -> str:
        """Name the place of a row for a message: ``line 7`` or ``row 6``."""
        return f"{self.unit} {int(self.numbers[index])}"

    def problem(self, index: int, where: str, message: str) -> Problem:
        """A problem of the row at ``index``; for rows (not lines) the message names the row."""
        number = int(self.numbers[index])
        if self.unit == "row":
            message = f"{message} (row {number})"
        return Problem(self.source, number, where, message)

"""The states of all scored subjects at one date, and their batch output (SCHEME.md §7)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from socialcredit.days import from_day
from socialcredit.engine.columns import Prepared
from socialcredit.engine.kernel import Evaluated, Program

Bools = npt.NDArray[np.bool_]

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("code", pa.string(), nullable=False),
        pa.field("score", pa.int64(), nullable=False),
        pa.field("grade", pa.string(), nullable=False),
        pa.field("lists", pa.string(), nullable=False),
        pa.field("denied", pa.string(), nullable=False),
        pa.field("granted", pa.string(), nullable=False),
    ]
)


def label_sets(member: Bools, names: list[tuple[str, ...]]) -> pa.Array:
    """For each column of ``member`` ([k, n]), the sorted union of the names of its true rows
    joined with ``;``. Works on the distinct membership patterns, not per subject."""
    k, n = member.shape
    if n == 0:
        return pa.array([], pa.string())
    if k == 0:
        return pa.repeat(pa.scalar("", pa.string()), n)
    packed = np.packbits(member.T, axis=1)
    patterns, inverse = np.unique(packed, axis=0, return_inverse=True)
    labels = []
    for row in np.unpackbits(patterns, axis=1, count=k).astype(bool):
        chosen: set[str] = set()
        for i in np.flatnonzero(row):
            chosen.update(names[i])
        labels.append(";".join(sorted(chosen)))
    return pa.array(labels, pa.string()).take(pa.array(inverse.reshape(-1)))


_NEEDS_QUOTES = r'[",\r\n]'


def write_csv_minimal(table: pa.Table, out: IO[bytes]) -> None:
    """Write a table as CSV with minimal quoting and ``\n`` line ends."""
    needs = any(
        pa.types.is_string(col.type)
        and pc.any(pc.match_substring_regex(col, _NEEDS_QUOTES)).as_py()
        for col in table.columns
    ) or any(re.search(_NEEDS_QUOTES, name) for name in table.column_names)
    if not needs:
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        out.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, out, write_options=options)
        return
    out.write((",".join(map(_field, table.column_names)) + "\n").encode("utf-8"))
    for batch in table.to_batches(65536):
        rows = zip(*(col.to_pylist() for col in batch.columns), strict=True)
        out.write("".join(",".join(map(_field, row)) + "\n" for row in rows).encode("utf-8"))


def _field(value: object) -> str:
    """One CSV field, quoted (quotes doubled) when it holds a quote, comma, CR or LF."""
    text = str(value)
    if re.search(_NEEDS_QUOTES, text):
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclass
class States:
    """Every scored subject's state under one scheme at one date.

    Row ``i`` is the subject ``codes[i]``; rows are sorted by code in byte order.
    """

    program: Program
    prepared: Prepared
    at: int
    raw: Evaluated
    _index: dict[str, int] | None = field(default=None, repr=False)

    @property
    def scheme_id(self) -> str:
        """The identifier of the scheme."""
        return self.program.compiled.id

    @property
    def codes(self) -> pa.Array:
        """Codes of the scored subjects, sorted."""
        return self.prepared.codes

    @property
    def kinds(self) -> pa.Array:
        """Kinds of the scored subjects."""
        return self.prepared.kinds

    @property
    def date(self) -> str:
        """The date of evaluation, ``YYYY-MM-DD``."""
        return from_day(self.at).isoformat()

    def __len__(self) -> int:
        return len(self.raw.score)

    def index(self, code: str) -> int | None:
        """The row of a subject, or None if the scheme does not score it."""
        if self._index is None:
            self._index = {c: i for i, c in enumerate(self.codes.to_pylist())}
        return self._index.get(code)

    @cached_property
    def grade_labels(self) -> pa.Array:
        """The grade of each subject."""
        names = pa.array(self.program.grade_names, pa.string())
        return names.take(pa.array(self.raw.grade.astype(np.int32)))

    @cached_property
    def list_labels(self) -> pa.Array:
        """The lists of each subject, sorted and joined with ``;``."""
        return label_sets(self.raw.lists, [(i,) for i in self.program.list_ids])

    @cached_property
    def denied_labels(self) -> pa.Array:
        """The denied set of each subject, joined with ``;``."""
        names = [tuple(m.deny) for m in self.program.compiled.scheme.measures]
        return label_sets(self.raw.applied, names)

    @cached_property
    def granted_labels(self) -> pa.Array:
        """The granted set of each subject, joined with ``;``."""
        names = [tuple(m.grant) for m in self.program.compiled.scheme.measures]
        return label_sets(self.raw.applied, names)

    def to_table(self) -> pa.Table:
        """The batch output of SCHEME.md section 7 as an Arrow table."""
        return pa.Table.from_arrays(
            [
                self.codes,
                pa.array(self.raw.score),
                self.grade_labels,
                self.list_labels,
                self.denied_labels,
                self.granted_labels,
            ],
            schema=OUTPUT_SCHEMA,
        )

    def write_csv(self, out: IO[bytes]) -> None:
        """Write SCHEME.md section 7 CSV: header line, one row per subject, in code order.

        Values are quoted only where they must be (RFC 4180 minimal quoting), so the output
        reads the same to a CSV parser and to ``diff``.
        """
        write_csv_minimal(self.to_table(), out)

    def to_csv(self) -> str:
        """The section 7 CSV as a string."""
        buf = io.BytesIO()
        self.write_csv(buf)
        return buf.getvalue().decode("utf-8")

    def list_sizes(self) -> dict[str, int]:
        """How many subjects are on each list."""
        counts = self.raw.lists.sum(axis=1)
        return {name: int(counts[i]) for i, name in enumerate(self.program.list_ids)}

    def grade_counts(self) -> dict[str, int]:
        """How many subjects have each grade, in grade order."""
        counts = np.bincount(self.raw.grade, minlength=len(self.program.grade_names))
        return {g: int(counts[i]) for i, g in enumerate(self.program.grade_names)}

"""Reading the network inputs (docs/networks.md section 2): relations and peer ratings.

The files are read like the records files (:mod:`socialcredit.store.readers`: CSV with
the place of every row, or Parquet), checked whole with the same column-wise checks, and
returned as tables of the canonical schemas of :mod:`socialcredit.relations`. A file with
problems raises :class:`~socialcredit.errors.InvalidInput` listing every problem with its
line (CSV) or row (Parquet); nothing of it is used.

The checks against the subjects (codes registered, kinds that fit the relation) and
against the scheme (stars within its scale) are separate functions, since a file alone
knows neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import InvalidInput, Problem
from socialcredit.relations import (
    RATING_FIELDS,
    RATINGS_SCHEMA,
    RELATION_FIELDS,
    RELATION_KINDS,
    RELATIONS_SCHEMA,
)
from socialcredit.store.checks import _untidy, _untidy_message, as_mask, shown_code, sort_problems
from socialcredit.store.files import Format, Loaded, PathLike, _dates, _source
from socialcredit.store.origin import Origin
from socialcredit.store.readers import (
    ColumnKind,
    RawColumns,
    read_csv_columns,
    read_parquet_columns,
)

__all__ = [
    "NetworkCheck",
    "check_ratings_scale",
    "check_relations_kinds",
    "load_ratings",
    "load_relations",
    "parse_ratings",
    "parse_relations",
    "read_ratings",
    "read_relations",
]

_RELATIONS_REQUIRED = ("subject", "relation", "other")
_KINDS: dict[str, ColumnKind] = {"from": "date", "to": "date", "date": "date", "stars": "integer"}
MAX_STARS = 10
"""No scheme rates on more than 10 stars (docs/networks.md section 4)."""

_MISSING = {
    "subject": "missing: the code of the subject the relation is about",
    "relation": f"missing: one of {', '.join(RELATION_KINDS)}",
    "other": "missing: the code of the related subject",
    "rater": "missing: the code of the subject who rates",
    "ratee": "missing: the code of the subject rated",
    "stars": f"missing: a whole number of stars from 1 to {MAX_STARS}",
    "date": "missing: the date of the rating, as YYYY-MM-DD",
}
_ORDER = {name: i for i, name in enumerate(RELATION_FIELDS + RATING_FIELDS)}


def read_relations(path: PathLike) -> pa.Table:
    """Read and check a relations file (``.csv`` or ``.parquet``); a canonical table."""
    return load_relations(path).table


def read_ratings(path: PathLike) -> pa.Table:
    """Read and check a ratings file (``.csv`` or ``.parquet``); a canonical table."""
    return load_ratings(path).table


def load_relations(path: PathLike) -> Loaded:
    """As :func:`read_relations`, keeping the place of each row."""
    source, fmt = _source(path)
    return _relations(_raw(Path(path), fmt, source, RELATION_FIELDS, _RELATIONS_REQUIRED))


def load_ratings(path: PathLike) -> Loaded:
    """As :func:`read_ratings`, keeping the place of each row."""
    source, fmt = _source(path)
    return _ratings(_raw(Path(path), fmt, source, RATING_FIELDS, RATING_FIELDS))


def parse_relations(data: bytes, *, fmt: Format = "csv", source: str = "<bytes>") -> Loaded:
    """As :func:`load_relations`, for the contents of a file held in memory."""
    return _relations(_raw(data, fmt, source, RELATION_FIELDS, _RELATIONS_REQUIRED))


def parse_ratings(data: bytes, *, fmt: Format = "csv", source: str = "<bytes>") -> Loaded:
    """As :func:`load_ratings`, for the contents of a file held in memory."""
    return _ratings(_raw(data, fmt, source, RATING_FIELDS, RATING_FIELDS))


# -- from a file to columns --------------------------------------------------------------


def _raw(
    data: bytes | Path, fmt: Format, source: str, fields: tuple[str, ...], required: tuple[str, ...]
) -> RawColumns:
    if fmt == "csv":
        text = data if isinstance(data, bytes) else data.read_bytes()
        return read_csv_columns(text, source, fields, required)
    raw = read_parquet_columns(data, source, fields, required, _KINDS)
    stars = raw.columns.get("stars")
    if stars is not None and pa.types.is_integer(stars.type):
        raw.columns["stars"] = stars.cast(pa.string())  # checked as text, like a CSV cell
    return raw


# -- checks ------------------------------------------------------------------------------


def _text(raw: RawColumns, name: str) -> pa.ChunkedArray:
    if name not in raw.columns:
        return pa.chunked_array([pa.nulls(len(raw.origin), pa.string())])
    return raw.columns[name].cast(pa.string())


def _check_text(
    raw: RawColumns, name: str, required: bool, problems: list[Problem], bad: npt.NDArray[np.bool_]
) -> pa.ChunkedArray:
    """A text column: present where required, and plain (no control characters, no spaces
    at either end)."""
    column = _text(raw, name)
    if required:
        missing = np.flatnonzero(as_mask(pc.or_kleene(pc.is_null(column), pc.equal(column, ""))))
        for i in missing:
            problems.append(raw.origin.problem(int(i), name, _MISSING[name]))
        bad[missing] = True
    untidy = _untidy(column)
    for i in untidy:
        problems.append(raw.origin.problem(int(i), name, _untidy_message(column[int(i)].as_py())))
    bad[untidy] = True
    return column


def _finish(raw: RawColumns, table: pa.Table, problems: list[Problem], what: str) -> Loaded:
    problems = raw.problems + problems
    if problems:
        ordered = sorted(problems, key=lambda p: (p.source, p.line, _ORDER.get(p.where, -1)))
        raise InvalidInput(ordered, what=what)
    return Loaded(table.combine_chunks(), raw.origin)


def _relations(raw: RawColumns) -> Loaded:
    origin, n = raw.origin, len(raw.origin)
    problems: list[Problem] = []
    bad = np.zeros(n, dtype=np.bool_)
    subject = _check_text(raw, "subject", True, problems, bad)
    relation = _check_text(raw, "relation", True, problems, bad)
    other = _check_text(raw, "other", True, problems, bad)
    present = as_mask(pc.not_equal(relation, ""))
    unknown = np.flatnonzero(
        present & ~as_mask(pc.is_in(relation, value_set=pa.array(RELATION_KINDS)))
    )
    for i in unknown:
        problems.append(
            origin.problem(
                int(i),
                "relation",
                f"{relation[int(i)].as_py()!r} is not one of {', '.join(RELATION_KINDS)}",
            )
        )
    same = np.flatnonzero(as_mask(pc.and_(pc.equal(subject, other), pc.not_equal(subject, ""))))
    for i in same:
        problems.append(
            origin.problem(int(i), "other", "is the subject itself: a relation links two subjects")
        )
    dates = []
    for name in ("from", "to"):
        if name in raw.columns:
            parsed, _ = _dates(raw.columns[name], name, origin, problems)
        else:
            parsed = pa.chunked_array([pa.nulls(n, pa.date32())])
        dates.append(parsed.cast(pa.date32()))
    start, end = dates
    early = np.flatnonzero(as_mask(pc.less(end, start)))
    for i in early:
        problems.append(
            origin.problem(
                int(i),
                "to",
                f"{end[int(i)]} is before from {start[int(i)]}: a relation ends on or after "
                "the day it begins",
            )
        )
    table = pa.Table.from_arrays([subject, relation, other, start, end], schema=RELATIONS_SCHEMA)
    return _finish(raw, table, problems, origin.source)


def _ratings(raw: RawColumns) -> Loaded:
    origin, n = raw.origin, len(raw.origin)
    problems: list[Problem] = []
    bad = np.zeros(n, dtype=np.bool_)
    rater = _check_text(raw, "rater", True, problems, bad)
    ratee = _check_text(raw, "ratee", True, problems, bad)
    stars_text = _check_text(raw, "stars", True, problems, bad)
    same = np.flatnonzero(as_mask(pc.and_(pc.equal(rater, ratee), pc.not_equal(rater, ""))))
    for i in same:
        problems.append(origin.problem(int(i), "ratee", "is the rater: no one rates themselves"))
    digits = as_mask(
        pc.and_(pc.ascii_is_decimal(stars_text), pc.less_equal(pc.utf8_length(stars_text), 2))
    )
    values = np.zeros(n, dtype=np.int64)
    if digits.any():
        chosen = stars_text.filter(pa.array(digits))
        values[digits] = np.asarray(chosen.cast(pa.int64()).to_numpy(), dtype=np.int64)
    present = as_mask(pc.not_equal(stars_text, ""))
    wrong = np.flatnonzero(present & (~digits | (values < 1) | (values > MAX_STARS)))
    for i in wrong:
        problems.append(
            origin.problem(
                int(i),
                "stars",
                f"{stars_text[int(i)].as_py()!r} is not a whole number of stars from 1 to "
                f"{MAX_STARS}",
            )
        )
    day, day_bad = _dates(raw.columns["date"], "date", origin, problems)
    missing = np.flatnonzero(as_mask(pc.is_null(day)) & ~day_bad)
    for i in missing:
        problems.append(origin.problem(int(i), "date", _MISSING["date"]))
    table = pa.Table.from_arrays(
        [rater, ratee, pa.array(values), day.cast(pa.date32())], schema=RATINGS_SCHEMA
    )
    bad[wrong] = True
    bad |= as_mask(pc.is_null(day))
    problems += _conflicting_ratings(table, origin, ~bad)
    return _finish(raw, table, problems, origin.source)


def _conflicting_ratings(
    table: pa.Table, origin: Origin, valid: npt.NDArray[np.bool_]
) -> list[Problem]:
    """Two ratings by one rater of one ratee on one day with different stars (among the
    ``valid`` rows)."""
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        return []
    table = table.take(pa.array(rows, pa.int64()))
    n = table.num_rows
    key = pc.binary_join_element_wise(
        table.column("rater"),
        table.column("ratee"),
        table.column("date").cast(pa.string()),
        "\x1f",
    )
    codes = np.asarray(pc.dictionary_encode(key).combine_chunks().indices.to_numpy())
    stars = np.asarray(table.column("stars").to_numpy(), dtype=np.int64)
    order = np.lexsort((np.arange(n), codes))
    same = codes[order[1:]] == codes[order[:-1]]
    differ = np.flatnonzero(same & (stars[order[1:]] != stars[order[:-1]]))
    out = []
    for k in differ:
        first, later = int(rows[order[k]]), int(rows[order[k + 1]])
        out.append(
            origin.problem(
                later,
                "stars",
                f"{stars[order[k + 1]]} stars, but {origin.place(first)} rates the same "
                f"subject by the same rater on the same day with {stars[order[k]]}: keep one",
            )
        )
    return out


# -- against the subjects and the scheme -------------------------------------------------


@dataclass(frozen=True)
class NetworkCheck:
    """What a check of a network table against the subjects found: the problems, and the
    rows kept whose codes are not among the subjects (they count for nothing)."""

    problems: list[Problem]
    unknown: int
    unknown_codes: list[str]


_KINDS_NEEDED = {
    # relation: (kind of subject, kind of other); None: any
    "household": ("person", "person"),
    "friend": ("person", "person"),
    "employer": ("person", "organization"),
    "legal_representative": ("organization", "person"),
}


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def check_relations_kinds(loaded: Loaded, subjects: pa.Table) -> NetworkCheck:
    """Check a relations table against the subjects (``code``, ``kind``): the kinds fit
    the relation (household and friend link persons; a person's employer is an
    organization; an organization's legal representative is a person). Rows naming a code
    that is not among the subjects are counted, not refused."""
    table, origin = loaded.table, loaded.origin
    codes = subjects.column("code")
    kinds = subjects.column("kind")
    problems: list[Problem] = []
    unknown = np.zeros(table.num_rows, dtype=np.bool_)
    unknown_codes: list[str] = []
    relation = table.column("relation")
    for side, name in ((0, "subject"), (1, "other")):
        column = table.column(name)
        found = pc.index_in(column, value_set=codes)
        missing = as_mask(pc.is_null(found))
        unknown |= missing
        unknown_codes += [str(c) for c in column.filter(pa.array(missing)).to_pylist()]
        kind = pc.take(kinds, pc.fill_null(found, 0))
        for rel, needed in _KINDS_NEEDED.items():
            want = needed[side]
            wrong = np.flatnonzero(
                ~missing & as_mask(pc.equal(relation, rel)) & ~as_mask(pc.equal(kind, want))
            )
            for i in wrong:
                code = str(column[int(i)])
                problems.append(
                    origin.problem(
                        int(i),
                        name,
                        f"{shown_code(code, str(kind[int(i)]))} is {_a(str(kind[int(i)]))}; "
                        f"in {_a(rel)} relation the {name} is {_a(want)}",
                    )
                )
    distinct = sorted(set(unknown_codes))
    return NetworkCheck(sort_problems(problems), int(unknown.sum()), distinct)


def check_ratings_scale(loaded: Loaded, stars: int, subjects: pa.Table) -> NetworkCheck:
    """Check a ratings table against a scheme's scale (1 to ``stars``) and the subjects:
    stars above the scale are problems; ratings by or of codes that are not among the
    subjects are counted, not refused."""
    table, origin = loaded.table, loaded.origin
    values = np.asarray(table.column("stars").to_numpy(), dtype=np.int64)
    problems = [
        origin.problem(int(i), "stars", f"{values[i]} stars; the scheme rates from 1 to {stars}")
        for i in np.flatnonzero(values > stars)
    ]
    codes = subjects.column("code")
    unknown = np.zeros(table.num_rows, dtype=np.bool_)
    unknown_codes: list[str] = []
    for name in ("rater", "ratee"):
        column = table.column(name)
        missing = as_mask(pc.invert(pc.is_in(column, value_set=codes)))
        unknown |= missing
        unknown_codes += [str(c) for c in column.filter(pa.array(missing)).to_pylist()]
    return NetworkCheck(problems, int(unknown.sum()), sorted(set(unknown_codes)))

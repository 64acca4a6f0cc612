"""The checks every batch of records and subjects passes before it is used.

One implementation serves both paths into the product: appending to a ledger (where the
batch is checked against the records and subjects already there) and scoring straight
from files (where there is no ledger, and the subjects file is the registry). Each check
is vectorized with ``pyarrow.compute``; Python loops run only over rows that have a
problem, to word its message.

* :func:`check_rows` -- each row on its own: required fields, plain text, dates in range,
  ``amount >= 0``, ``recorded_at >= occurred_at``, no ``ref`` to the record itself.
* :func:`check_batch` -- the rows together: ids repeated with different content (an exact
  repeat is collapsed), ids already in the ledger with different content (an identical
  record is skipped, so a re-import is harmless), ``ref`` to a record that does not exist
  or belongs to another subject, subjects that are not registered.
* :func:`check_subjects` -- a registry batch: codes valid for their kind, kinds known,
  one kind per code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import to_day
from socialcredit.errors import InvalidCode, InvalidInput, Problem
from socialcredit.ids import KINDS, mask, validate_code
from socialcredit.ids.batch import valid_mask
from socialcredit.records import (
    DOTTED_NAME,
    RECORD_FIELDS,
    RECORDS_SCHEMA,
    SUBJECT_FIELDS,
    SUBJECTS_SCHEMA,
)
from socialcredit.store.origin import Origin

__all__ = [
    "BatchCheck",
    "SubjectsCheck",
    "UnknownSubjects",
    "check_batch",
    "check_rows",
    "check_subjects",
    "conform_records",
    "conform_subjects",
    "count_distinct",
    "find_repeats",
    "shown_code",
]

UnknownSubjects = Literal["error", "keep"]
"""What :func:`check_batch` does with a record whose subject is not registered:
``"error"`` makes it a problem (a ledger); ``"keep"`` keeps the record and counts it
(scoring from files, where such a record simply scores nobody)."""

MIN_DAY = to_day(dt.date(1, 1, 1))
MAX_DAY = to_day(dt.date(9999, 12, 31))

_TEXT_FIELDS = ("id", "subject", "type", "ref")
_REQUIRED_TEXT = ("id", "subject", "type")
_MISSING = {
    "id": "missing: every record needs an id",
    "subject": "missing: the code of the subject the record is about",
    "type": "missing: the record's type, a dotted name such as traffic.red_light",
    "occurred_at": "missing: the date the conduct happened, as YYYY-MM-DD",
    "recorded_at": "missing: the date the record was recorded, as YYYY-MM-DD",
    "amount": "missing: a whole number >= 0",
}
# Whitespace at either end, or a control character anywhere (RE2 syntax).
_UNTIDY = r"^[\s\p{Z}]|[\s\p{Z}]$|[\x{00}-\x{1f}\x{7f}-\x{9f}]"
_ORDER = {name: i for i, name in enumerate(RECORD_FIELDS + SUBJECT_FIELDS)}
MAX_ID = 256
"""The longest record id, in characters (every store can index it: PostgreSQL's index
entries hold at most 2,704 bytes)."""


def shown_code(code: str, kind: str | None = None) -> str:
    """A subject code as a message may show it: a person's code is masked.

    When the kind is not known (a records file does not say it), the code is masked as a
    person's would be, since it may be one.
    """
    return mask(code, kind if kind in KINDS else "person")


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems in the order of the file: by line, then by the field's position."""
    return sorted(problems, key=lambda p: (p.source, p.line, _ORDER.get(p.where, -1)))


def as_mask(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """A boolean pyarrow array as a NumPy mask, nulls as False."""
    filled = pc.fill_null(values, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    return table.column(name)


# -- conforming tables to the canonical schemas ------------------------------------------


def conform_records(table: pa.Table, *, source: str) -> pa.Table:
    """Return ``table`` with exactly the columns of ``RECORDS_SCHEMA``, in order.

    Missing optional columns take their defaults (``recorded_at`` = ``occurred_at``,
    ``amount`` = 0, ``ref`` null); a missing required column, an unknown column or a
    column that cannot be cast is an :class:`InvalidInput`. Values are not checked here:
    that is :func:`check_rows`.
    """
    problems = _column_problems(
        table, RECORDS_SCHEMA, ("id", "subject", "type", "occurred_at"), source
    )
    if problems:
        raise InvalidInput(problems, what=source)
    n = table.num_rows
    arrays: list[pa.ChunkedArray | pa.Array] = []
    for f in RECORDS_SCHEMA:
        if f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        elif f.name == "recorded_at":
            arrays.append(table.column("occurred_at").cast(f.type))
        elif f.name == "amount":
            arrays.append(pa.array(np.zeros(n, dtype=np.int64)))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=RECORDS_SCHEMA)


def conform_subjects(table: pa.Table, *, source: str) -> pa.Table:
    """Return ``table`` with exactly the columns of ``SUBJECTS_SCHEMA``, in order."""
    problems = _column_problems(table, SUBJECTS_SCHEMA, SUBJECT_FIELDS, source)
    if problems:
        raise InvalidInput(problems, what=source)
    arrays = [table.column(f.name).cast(f.type) for f in SUBJECTS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SUBJECTS_SCHEMA)


def _column_problems(
    table: pa.Table, schema: pa.Schema, required: tuple[str, ...], source: str
) -> list[Problem]:
    problems = []
    expected = ", ".join(schema.names)
    for name in table.column_names:
        if name not in schema.names:
            problems.append(Problem(source, 0, name, f"unknown column; the columns are {expected}"))
    for name in required:
        if name not in table.column_names:
            problems.append(Problem(source, 0, name, "missing column (required)"))
    for f in schema:
        if f.name in table.column_names:
            have = table.schema.field(f.name).type
            if have != f.type and not _castable(have, f.type):
                problems.append(
                    Problem(source, 0, f.name, f"column of type {have}; expected {f.type}")
                )
    return problems


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_string(want):
        return bool(
            pa.types.is_string(have) or pa.types.is_large_string(have) or pa.types.is_null(have)
        )
    if pa.types.is_date32(want):
        return bool(pa.types.is_date(have) or pa.types.is_null(have))
    if pa.types.is_int64(want):
        return bool(pa.types.is_integer(have) or pa.types.is_null(have))
    return False


# -- each row on its own -----------------------------------------------------------------


def check_rows(
    table: pa.Table,
    origin: Origin,
    *,
    reported: Mapping[str, npt.NDArray[np.bool_]] | None = None,
) -> tuple[list[Problem], npt.NDArray[np.bool_]]:
    """Check each record of a canonical table on its own.

    Returns every problem found and a mask of the rows that have one. Checked: ``id``,
    ``subject``, ``type`` present and plain (no control characters, no spaces at either
    end), dates present and between years 1 and 9999, ``amount`` present and >= 0,
    ``recorded_at`` not before ``occurred_at``, ``ref`` not empty and not the record's own
    id. ``reported`` maps a field to a mask of cells already reported (a file reader leaves
    a null where it found a malformed date): those nulls are not reported again as missing.
    """
    n = table.num_rows
    bad = np.zeros(n, dtype=np.bool_)
    reported = reported or {}
    problems: list[Problem] = []

    def flag(mask: npt.NDArray[np.bool_], where: str, message: str | None = None) -> None:
        rows = np.flatnonzero(mask)
        for i in rows:
            problems.append(origin.problem(int(i), where, message or _MISSING[where]))
        bad[rows] = True

    for name in _REQUIRED_TEXT:
        col = _column(table, name)
        flag(as_mask(pc.or_kleene(pc.is_null(col), pc.equal(col, ""))), name)
    for name in ("occurred_at", "recorded_at", "amount"):
        missing = as_mask(pc.is_null(_column(table, name)))
        if name in reported:
            missing &= ~reported[name]
        if name == "recorded_at":  # its default is occurred_at: reported there
            missing &= ~as_mask(pc.is_null(_column(table, "occurred_at")))
        flag(missing, name)
    untidy_rows = {}
    for name in _TEXT_FIELDS:
        col = _column(table, name)
        untidy = untidy_rows[name] = _untidy(col)
        for i in untidy:
            value = col[int(i)].as_py()
            problems.append(origin.problem(int(i), name, _untidy_message(value)))
        bad[untidy] = True
    for name in ("id", "ref"):
        col = _column(table, name)
        flag(
            as_mask(pc.greater(pc.utf8_length(col), MAX_ID)),
            name,
            f"is longer than {MAX_ID} characters: a record id is at most {MAX_ID}",
        )
    # a type no scheme could read (each distinct type matched once); an empty or untidy
    # one is reported above
    types = _column(table, "type")
    distinct = pc.unique(types.drop_null())
    odd = pc.filter(
        distinct,
        pc.or_(
            pc.invert(pc.match_substring_regex(distinct, DOTTED_NAME)),
            pc.greater(pc.utf8_length(distinct), 128),
        ),
    )
    wrong = as_mask(pc.and_(pc.is_in(types, value_set=odd), pc.not_equal(types, "")))
    wrong[untidy_rows["type"]] = False
    flag(
        wrong,
        "type",
        "is not a dotted name of at most 128 characters (letters, digits, _ and -, in parts "
        "joined by dots), such as traffic.red_light: no scheme could read it",
    )
    ref = _column(table, "ref")
    flag(
        as_mask(pc.equal(ref, "")),
        "ref",
        "is empty: leave it out, or name the record this one resolves or voids",
    )
    flag(
        as_mask(pc.equal(ref, _column(table, "id"))),
        "ref",
        "names the record itself: a ref names another record, which this one resolves or voids",
    )

    occurred = pc.cast(_column(table, "occurred_at"), pa.int32())
    recorded = pc.cast(_column(table, "recorded_at"), pa.int32())
    out_of_range: list[npt.NDArray[np.bool_]] = []
    for name, days in (("occurred_at", occurred), ("recorded_at", recorded)):
        outside = as_mask(pc.or_(pc.less(days, MIN_DAY), pc.greater(days, MAX_DAY)))
        if out_of_range:  # a recorded_at equal to a bad occurred_at is reported there
            outside &= ~(out_of_range[0] & as_mask(pc.equal(recorded, occurred)))
        flag(outside, name, "must be a date between 0001-01-01 and 9999-12-31")
        out_of_range.append(outside)
    early = np.flatnonzero(
        as_mask(pc.less(recorded, occurred)) & ~out_of_range[0] & ~out_of_range[1]
    )
    for i in early:
        row = int(i)
        problems.append(
            origin.problem(
                row,
                "recorded_at",
                f"{_column(table, 'recorded_at')[row]} is before occurred_at "
                f"{_column(table, 'occurred_at')[row]}: a record is never recorded before the "
                "conduct happened",
            )
        )
    bad[early] = True
    negative = np.flatnonzero(as_mask(pc.less(_column(table, "amount"), 0)))
    for i in negative:
        value = _column(table, "amount")[int(i)].as_py()
        message = f"must be a whole number >= 0; got {value}"
        problems.append(origin.problem(int(i), "amount", message))
    bad[negative] = True
    return problems, bad


def _untidy(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Rows of a text column with a control character or surrounding whitespace."""
    # Fast path: printable ASCII without a space at either end is tidy; the regular
    # expression runs only on the other rows.
    plain = pc.and_(
        pc.ascii_is_printable(column),
        pc.invert(pc.or_(pc.starts_with(column, " "), pc.ends_with(column, " "))),
    )
    suspects = np.flatnonzero(~as_mask(pc.or_kleene(plain, pc.is_null(column))))
    if len(suspects) == 0:
        return suspects
    values = column.take(pa.array(suspects, pa.int64()))
    untidy: npt.NDArray[np.int64] = suspects[as_mask(pc.match_substring_regex(values, _UNTIDY))]
    return untidy


def _untidy_message(value: str) -> str:
    if any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in value):
        return "has a control character (such as a tab or a line break); use plain text"
    return "has spaces at its start or end; remove them"


# -- the rows together -------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCheck:
    """What :func:`check_batch` found.

    ``keep`` holds the indices (into the checked table, ascending) of the records to use:
    all rows but those with a problem, exact repeats of an earlier row, and records
    already in the ledger. ``duplicates`` counts the rows skipped as exact repeats or as
    already in the ledger; ``unknown_subjects`` counts the kept records whose subject is
    not registered (only with ``unknown_subjects="keep"``).
    """

    problems: list[Problem]
    keep: npt.NDArray[np.int64]
    duplicates: int = 0
    unknown_subjects: int = 0
    unknown_codes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the batch has no problem."""
        return not self.problems


def check_batch(
    records: pa.Table,
    *,
    origin: Origin,
    ledger: pa.Table | None = None,
    subjects: pa.Table | None = None,
    unknown_subjects: UnknownSubjects = "error",
) -> BatchCheck:
    """Check a batch of records, as a whole, against the ledger and the registry.

    ``records`` is a canonical table (see :func:`conform_records`) and ``origin`` the
    place of each of its rows. ``ledger`` holds the records already in the ledger whose id
    is an id or a ``ref`` of the batch (a store fetches just those), or is None when there
    is no ledger (scoring straight from files). ``subjects`` holds at least the registered
    subjects of the batch's records (``code`` and ``kind``), or is None to skip that check;
    ``unknown_subjects`` says whether an unregistered subject is a problem or is kept and
    counted.

    Nothing is raised: the caller decides, usually by raising
    ``InvalidInput(check.problems)`` when there are any.
    """
    n = records.num_rows
    problems, bad = check_rows(records, origin)
    repeat, found = find_repeats(records, origin, ~bad)
    problems += found
    live = ~bad & ~repeat

    in_ledger = np.zeros(n, dtype=np.bool_)
    if ledger is not None and ledger.num_rows:
        in_ledger, found = _against_ledger(records, origin, ledger, live)
        problems += found
        live &= ~in_ledger

    problems += _check_refs(records, origin, ledger, live)

    unknown = 0
    unknown_codes: list[str] = []
    if subjects is not None:
        known = as_mask(pc.is_in(_column(records, "subject"), value_set=_unique(subjects["code"])))
        missing = np.flatnonzero(live & ~known)
        if unknown_subjects == "error":
            problems += _unregistered(records, origin, subjects, missing)
        else:
            unknown = len(missing)
            codes = _column(records, "subject").take(pa.array(missing, pa.int64()))
            unknown_codes = sorted(pc.unique(codes).to_pylist())
    keep = np.flatnonzero(live).astype(np.int64)
    return BatchCheck(
        problems=sort_problems(problems),
        keep=keep,
        duplicates=int(repeat.sum() + in_ledger.sum()),
        unknown_subjects=unknown,
        unknown_codes=unknown_codes,
    )


def count_distinct(values: pa.ChunkedArray) -> int:
    """The number of distinct values (a hash aggregation: faster than ``pc.unique``)."""
    table = pa.table({"v": values})
    return int(table.group_by("v", use_threads=False).aggregate([]).num_rows)


def _unique(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def find_repeats(
    records: pa.Table,
    origin: Origin,
    candidates: npt.NDArray[np.bool_] | None = None,
    *,
    distinct_ids: int | None = None,
) -> tuple[npt.NDArray[np.bool_], list[Problem]]:
    """Find the rows that repeat an earlier row exactly, and ids reused for other content.

    Only the ``candidates`` rows (all by default) are considered. Returns a mask of the
    exact repeats (to drop silently) and a problem for each later row that reuses an id
    with different content, naming the place of the first. ``distinct_ids`` may give the
    number of distinct ids of the whole table, when it was counted already.
    """
    if candidates is None:
        candidates = np.ones(records.num_rows, dtype=np.bool_)
    n = records.num_rows
    repeat = np.zeros(n, dtype=np.bool_)
    rows = np.flatnonzero(candidates)
    part = records if len(rows) == n else records.take(pa.array(rows, pa.int64()))
    if len(rows) == n and distinct_ids == n:
        return repeat, []
    if distinct_ids is None or len(rows) < n:
        distinct_ids = count_distinct(part["id"])
    if distinct_ids == len(rows):
        return repeat, []
    keyed = part.append_column("__row", pa.array(np.arange(len(rows), dtype=np.int64)))
    firsts = np.sort(
        keyed.group_by(list(RECORD_FIELDS), use_threads=False)
        .aggregate([("__row", "min")])["__row_min"]
        .to_numpy()
    )
    is_first = np.zeros(len(rows), dtype=np.bool_)
    is_first[firsts] = True
    repeat[rows[~is_first]] = True

    distinct = part.take(pa.array(firsts, pa.int64()))
    counts = distinct.group_by("id").aggregate([("id", "count")])
    reused = counts.filter(pc.greater(counts["id_count"], 1))["id"]
    if len(reused) == 0:
        return repeat, []
    clash = firsts[as_mask(pc.is_in(distinct["id"], value_set=_unique(reused)))]
    ids = part["id"].take(pa.array(clash, pa.int64())).to_pylist()
    first_of: dict[str, int] = {}
    problems = []
    for j, record_id in sorted(zip(clash.tolist(), ids, strict=True), key=lambda t: t[0]):
        row = int(rows[j])
        if record_id not in first_of:
            first_of[record_id] = row
            continue
        earlier = first_of[record_id]
        differ = _differences(records, earlier, records, row)
        problems.append(
            origin.problem(
                row,
                "id",
                f"id {record_id!r} is also used on {origin.place(earlier)} for a different record "
                f"({differ}); an id names exactly one record",
            )
        )
    return repeat, problems


def _differences(
    a: pa.Table, i: int, b: pa.Table, j: int, *, labels: tuple[str, str] = ("", "")
) -> str:
    """Name the fields in which row i of a and row j of b differ, with both values."""
    left = a.slice(i, 1).to_pylist()[0]
    right = b.slice(j, 1).to_pylist()[0]
    parts = []
    for name in RECORD_FIELDS:
        if left[name] != right[name]:
            if name == "subject":  # a subject may be a person: never show a code whole
                left[name], right[name] = shown_code(left[name]), shown_code(right[name])
            if labels[0]:
                parts.append(
                    f"{name}: {labels[0]} {_text(left[name])}, {labels[1]} {_text(right[name])}"
                )
            else:
                parts.append(f"{name} {_text(left[name])} vs {_text(right[name])}")
    return "; ".join(parts)


def _text(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, str) else str(value)


def _against_ledger(
    records: pa.Table, origin: Origin, ledger: pa.Table, live: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], list[Problem]]:
    """Rows identical to a ledger record (skipped), and problems for ids reused differently."""
    n = records.num_rows
    same = np.zeros(n, dtype=np.bool_)
    position = pc.index_in(_column(records, "id"), value_set=_unique(ledger["id"]))
    pos = np.asarray(pc.fill_null(position, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    hit = np.flatnonzero(live & (pos >= 0))
    if len(hit) == 0:
        return same, []
    ours = records.take(pa.array(hit, pa.int64()))
    theirs = ledger.take(pa.array(pos[hit], pa.int64()))
    equal = np.ones(len(hit), dtype=np.bool_)
    for name in RECORD_FIELDS:
        a, b = ours[name], theirs[name]
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        equal &= as_mask(pc.or_kleene(pc.equal(a, b), both_null))
    same[hit[equal]] = True
    problems = []
    for k in np.flatnonzero(~equal):
        row = int(hit[k])
        record_id = ours["id"][int(k)].as_py()
        differ = _differences(theirs, int(k), ours, int(k), labels=("the ledger has", "this has"))
        problems.append(
            origin.problem(
                row,
                "id",
                f"record {record_id!r} is already in the ledger with other content ({differ}); "
                f"the ledger is never changed: record a correction as a new record whose ref is "
                f"{record_id!r}",
            )
        )
    return same, problems


def _check_refs(
    records: pa.Table, origin: Origin, ledger: pa.Table | None, live: npt.NDArray[np.bool_]
) -> list[Problem]:
    """Problems for refs of live rows naming no record, or a record of another subject."""
    ref = _column(records, "ref")
    rows = np.flatnonzero(live & as_mask(pc.is_valid(ref)))
    if len(rows) == 0:
        return []
    take = pa.array(rows, pa.int64())
    refs = ref.take(take)
    subject = _column(records, "subject").take(take)
    in_batch = pc.index_in(refs, value_set=_unique(_column(records, "id")))
    target_subject = _column(records, "subject").take(in_batch)
    if ledger is not None and ledger.num_rows:
        in_ledger = pc.index_in(refs, value_set=_unique(ledger["id"]))
        target_subject = pc.coalesce(target_subject, ledger["subject"].take(in_ledger))
    missing = as_mask(pc.is_null(target_subject))
    foreign = as_mask(pc.not_equal(target_subject, subject))
    problems = []
    where = "in the ledger nor in this batch" if ledger is not None else "in this file"
    for k in np.flatnonzero(missing | foreign):
        row, target = int(rows[k]), refs[int(k)].as_py()
        if missing[k]:
            message = (
                f"names record {target!r}, which is neither {where}; a ref must name an "
                "existing record"
                if ledger is not None
                else f"names record {target!r}, which is not {where}; a ref must name a "
                "record of the file"
            )
        else:
            message = (
                f"names record {target!r}, which is about another subject; a record can "
                "only resolve or void a record of its own subject"
            )
        problems.append(origin.problem(row, "ref", message))
    return problems


def _unregistered(
    records: pa.Table, origin: Origin, subjects: pa.Table, rows: npt.NDArray[np.int64]
) -> list[Problem]:
    if len(rows) == 0:
        return []
    registered = set(subjects["code"].to_pylist())
    problems = []
    codes = _column(records, "subject").take(pa.array(rows, pa.int64())).to_pylist()
    for row, code in zip(rows.tolist(), codes, strict=True):
        hint = ""
        if code.upper() in registered:
            hint = " (a code with upper-case letters is; codes are matched exactly)"
        problems.append(
            origin.problem(
                row,
                "subject",
                f"subject {shown_code(code)} is not registered{hint}; register the subject first",
            )
        )
    return problems


# -- subjects ----------------------------------------------------------------------------


OpaqueCodes = bool | Literal["invalid"]
"""How subjects' codes are read: ``False``, each must be valid for its kind (a resident
identity number, a USCC) and is normalized; ``True``, any short printable code is taken as
it is; ``"invalid"``, the codes valid for their kind are normalized and the others taken as
they are (so a code's form never depends on the other rows)."""


@dataclass(frozen=True)
class SubjectsCheck:
    """What :func:`check_subjects` found: the normalized table of the rows to register
    (each code once, in first-seen order), their origin, the problems, and how many rows
    repeated an earlier one exactly."""

    table: pa.Table
    origin: Origin
    problems: list[Problem]
    repeats: int


def check_subjects(
    subjects: pa.Table, origin: Origin, *, opaque_codes: OpaqueCodes = False
) -> SubjectsCheck:
    """Check a batch of subjects and return them normalized.

    Every ``code`` is checked with :func:`socialcredit.ids.validate_code` for its ``kind``
    (or accepted as any short printable code, as :data:`OpaqueCodes` says) and replaced
    by its normal form; ``kind`` must be ``person`` or ``organization``. A code listed twice with
    the same kind is kept once; with different kinds it is a problem naming both places.
    Codes of persons are masked in messages.

    Codes already valid and in normal form are recognised in bulk
    (:func:`socialcredit.ids.batch.valid_mask`); only the others are looked at one by one.
    """
    codes = subjects["code"].combine_chunks().cast(pa.string())
    kinds = subjects["kind"].combine_chunks().cast(pa.string())
    n = len(codes)
    fast = _fast_valid(codes, kinds, opaque_codes)
    problems: list[Problem] = []
    bad = np.zeros(n, dtype=np.bool_)
    fixed_rows: list[int] = []
    fixed_codes: list[str] = []
    for i in np.flatnonzero(~fast).tolist():
        code, kind = codes[i].as_py(), kinds[i].as_py()
        row_problems = []
        if not kind:
            row_problems.append(origin.problem(i, "kind", "missing: person or organization"))
        elif kind not in KINDS:
            row_problems.append(
                origin.problem(
                    i, "kind", f"{kind!r} is not a kind of subject; use person or organization"
                )
            )
        if not code:
            row_problems.append(origin.problem(i, "code", "missing: the subject's code"))
        elif kind in KINDS:
            try:
                code = _code_as(code, kind, opaque_codes)
            except InvalidCode as exc:
                row_problems.append(origin.problem(i, "code", str(exc)))
        if row_problems:
            problems += row_problems
            bad[i] = True
        else:
            fixed_rows.append(i)
            fixed_codes.append(code)
    if fixed_rows:
        index = np.arange(n, dtype=np.int64)
        index[fixed_rows] = n + np.arange(len(fixed_rows))
        codes = pa.concat_arrays([codes, pa.array(fixed_codes, pa.string())]).take(pa.array(index))
    good = np.flatnonzero(~bad)
    keep, repeats = _first_of_each(codes, kinds, good, origin, problems)
    table = pa.table(
        {
            "code": codes.take(pa.array(keep, pa.int64())),
            "kind": kinds.take(pa.array(keep, pa.int64())),
        },
        schema=SUBJECTS_SCHEMA,
    )
    return SubjectsCheck(table, origin.take(keep), sort_problems(problems), repeats)


def _code_as(code: str, kind: str, opaque_codes: OpaqueCodes) -> str:
    """A code checked and normalized as ``opaque_codes`` says; what is wrong with it for its
    kind is raised (:class:`InvalidCode`) when it is not taken as it is either."""
    try:
        return validate_code(code, kind, opaque=opaque_codes is True)
    except InvalidCode:
        if opaque_codes != "invalid":
            raise
        try:
            return validate_code(code, kind, opaque=True)
        except InvalidCode:
            pass
        raise


def _fast_valid(
    codes: pa.Array, kinds: pa.Array, opaque_codes: OpaqueCodes
) -> npt.NDArray[np.bool_]:
    """Rows whose code is valid for its kind and already normal, checked in bulk."""
    if opaque_codes is not True:
        return valid_mask(codes, kinds)
    known = as_mask(pc.fill_null(pc.is_in(kinds, value_set=pa.array(list(KINDS))), False))
    plain = pc.fill_null(pc.match_substring_regex(codes, r"^[!-~]{1,64}$"), False)
    return known & as_mask(plain)


def _first_of_each(
    codes: pa.Array,
    kinds: pa.Array,
    rows: npt.NDArray[np.int64],
    origin: Origin,
    problems: list[Problem],
) -> tuple[list[int], int]:
    """Keep the first row of each code; report a code given with two kinds."""
    chosen = codes.take(pa.array(rows))
    if pc.count_distinct(chosen).as_py() == len(chosen):
        return rows.tolist(), 0
    counts = pc.value_counts(chosen)
    twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    repeated = as_mask(pc.is_in(chosen, value_set=twice))
    skip: set[int] = set()
    seen: dict[str, tuple[int, str]] = {}
    repeats = 0
    for i in rows[repeated].tolist():
        code, kind = codes[i].as_py(), kinds[i].as_py()
        if code in seen:
            skip.add(i)
            first, first_kind = seen[code]
            if first_kind == kind:
                repeats += 1
            else:
                problems.append(
                    origin.problem(
                        i,
                        "kind",
                        f"subject {shown_code(code, 'person')} is listed on {origin.place(first)} "
                        f"as {first_kind} and here as {kind}; a subject has one kind",
                    )
                )
            continue
        seen[code] = (i, kind)
    return [i for i in rows.tolist() if i not in skip], repeats

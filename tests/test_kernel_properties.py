"""Properties of the kernel: it agrees with the reference implementation of SCHEME.md, and
its result depends on nothing but the scheme, the subjects, the records and the date."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    UNKNOWN_TYPE,
    Case,
    cases,
    day,
    records_table,
    subjects_table,
)

from socialcredit.days import to_day
from socialcredit.engine import Engine, States, evaluate, forked
from socialcredit.engine.kernel import PARTITION_RECORDS, evaluate_all

SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def engine_rows(
    case: Case, records: list[dict[str, Any]] | None = None, at: dt.date | None = None
) -> list[tuple[Any, ...]]:
    states = evaluate(
        case.scheme,
        subjects_table(case.subjects),
        records_table(case.records if records is None else records),
        case.at if at is None else at,
    )
    return [tuple(row.values()) for row in states.to_table().to_pylist()]


def reference_rows(
    case: Case, records: list[dict[str, Any]] | None = None, at: dt.date | None = None
) -> list[tuple[Any, ...]]:
    return reference.evaluate(
        case.scheme,
        case.subjects,
        case.records if records is None else records,
        case.at if at is None else at,
    )


@SLOW
@given(cases())
def test_engine_matches_reference(case: Case) -> None:
    states = evaluate(
        case.scheme, subjects_table(case.subjects), records_table(case.records), case.at
    )
    got = [tuple(row.values()) for row in states.to_table().to_pylist()]
    want = reference.evaluate(case.scheme, case.subjects, case.records, case.at)
    assert got == want
    # the reference reads the plain mapping the same way as the model
    assert reference.evaluate(case.doc, case.subjects, case.records, case.at) == want
    # section 7 CSV: a header line, then the same rows
    parsed = list(csv.reader(io.StringIO(states.to_csv(), newline="")))
    assert parsed == [list(reference.HEADER)] + [[str(v) for v in row] for row in want]


def chunked(table: pa.Table, sizes: list[int]) -> pa.Table:
    """The same rows, in chunks of the given sizes (then one chunk with the rest)."""
    pieces, start = [], 0
    for size in sizes:
        pieces.append(table.slice(start, size))
        start += size
    pieces.append(table.slice(start))
    return pa.concat_tables(pieces)


def dictionary_encoded(table: pa.Table, columns: set[str]) -> pa.Table:
    """The same table with some string columns dictionary-encoded."""
    for name in sorted(columns):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    return table


@QUICK
@given(
    cases(),
    st.randoms(use_true_random=False),
    st.lists(st.integers(0, 4), max_size=6),
    st.sets(st.sampled_from(["id", "subject", "type", "ref"])),
)
def test_order_chunking_and_encoding_of_the_inputs_do_not_matter(
    case: Case, rnd: Any, sizes: list[int], encoded: set[str]
) -> None:
    want = engine_rows(case)
    records = list(case.records)
    subjects = list(case.subjects)
    rnd.shuffle(records)
    rnd.shuffle(subjects)
    got = evaluate(
        case.scheme,
        chunked(subjects_table(subjects), sizes[::-1]),
        dictionary_encoded(chunked(records_table(records), sizes), encoded),
        case.at,
    )
    assert [tuple(r.values()) for r in got.to_table().to_pylist()] == want


@QUICK
@given(cases())
def test_subject_column_encoded_with_the_sorted_codes(case: Case) -> None:
    """Records sorted by subject, the subject column a dictionary of exactly the sorted scored
    codes (the form a ledger holds): the same states."""
    codes = sorted(s["code"] for s in case.subjects if s["kind"] in case.scheme.subjects)
    records = sorted((r for r in case.records if r["subject"] in codes), key=lambda r: r["subject"])
    table = records_table(records)
    indices = pa.array([codes.index(r["subject"]) for r in records], pa.int32())
    column = pa.DictionaryArray.from_arrays(indices, pa.array(codes, pa.string()))
    table = table.set_column(table.schema.get_field_index("subject"), "subject", column)
    got = evaluate(case.scheme, subjects_table(case.subjects), table, case.at)
    assert [tuple(r.values()) for r in got.to_table().to_pylist()] == reference_rows(case, records)


@contextlib.contextmanager
def forking_any_size() -> Iterator[None]:
    """Fork for inputs of any size (not only past forked.MIN_RECORDS)."""
    saved = forked.MIN_RECORDS
    forked.MIN_RECORDS = 0
    try:
        yield
    finally:
        forked.MIN_RECORDS = saved


@QUICK
@given(cases(max_records=30))
def test_partitions_and_workers_do_not_matter(case: Case) -> None:
    engine = Engine(case.scheme)
    prepared = engine.prepare(subjects_table(case.subjects), records_table(case.records))
    at = to_day(case.at)
    whole = evaluate_all(engine.program, prepared, at, workers=1)
    want = reference_rows(case)
    with forking_any_size():
        in_processes = engine.prepare(
            subjects_table(case.subjects), records_table(case.records), processes=True
        )
    for size in (1, 2, 7, PARTITION_RECORDS):
        for workers, prep, processes in (
            (1, prepared, False),
            (2, prepared, False),
            (2, in_processes, True),
        ):
            with forking_any_size():
                raw = evaluate_all(
                    engine.program,
                    prep,
                    at,
                    workers=workers,
                    records_per_partition=size,
                    processes=processes,
                )
            np.testing.assert_array_equal(raw.score, whole.score)
            np.testing.assert_array_equal(raw.grade, whole.grade)
            np.testing.assert_array_equal(raw.lists, whole.lists)
            np.testing.assert_array_equal(raw.applied, whole.applied)
            rows = States(engine.program, prepared, at, raw).to_table().to_pylist()
            assert [tuple(r.values()) for r in rows] == want
    # one prepared ledger, evaluated at several dates through the Engine API
    forms: tuple[Callable[[dt.date], dt.date | str | int], ...] = (
        lambda d: d,
        dt.date.isoformat,
        to_day,
    )
    for offset, form in zip((-4, 0, 3), forms, strict=True):
        when = case.at + dt.timedelta(days=offset)
        arg = form(when)
        got = engine.evaluate(prepared, arg, workers=2).to_table().to_pylist()
        assert [tuple(r.values()) for r in got] == reference_rows(case, at=when)


@QUICK
@given(cases(), st.data())
def test_a_record_of_an_unknown_type_changes_nothing(case: Case, data: st.DataObject) -> None:
    want = engine_rows(case)
    codes = [s["code"] for s in case.subjects] + ["ghost"]
    occurred = day(-data.draw(st.integers(-3, 12), label="age"), case.at)
    extra = {
        "id": "extra",
        "subject": data.draw(st.sampled_from(codes), label="subject"),
        "type": UNKNOWN_TYPE,
        "occurred_at": occurred,
        "recorded_at": occurred + dt.timedelta(days=data.draw(st.integers(0, 5), label="lag")),
        "amount": data.draw(st.integers(0, 10**12), label="amount"),
        "ref": data.draw(st.sampled_from([None, "nowhere"]), label="ref"),
    }
    position = data.draw(st.integers(0, len(case.records)), label="position")
    records = [*case.records[:position], extra, *case.records[position:]]
    assert engine_rows(case, records) == want
    assert reference_rows(case, records) == want


@QUICK
@given(cases(), st.integers(1, 5))
def test_before_any_recording_everyone_has_the_base_state(case: Case, before: int) -> None:
    first = min((r["recorded_at"] for r in case.records), default=case.at)
    at = first - dt.timedelta(days=before)
    got = engine_rows(case, at=at)
    assert got == engine_rows(case, records=[], at=at)
    assert got == reference_rows(case, records=[], at=at)
    # the base-derived state: no record counts, so every subject has the same one
    assert len({row[1:] for row in got}) <= 1
    scored = [s for s in case.subjects if s["kind"] in case.scheme.subjects]
    assert [row[0] for row in got] == sorted(s["code"] for s in scored)


@SLOW
@given(cases(), st.integers(-60, 60))
def test_a_scheme_in_force_from_a_day_delays_only_the_adverse_records_before_it(
    case: Case, offset: int
) -> None:
    """An engine given ``in_force`` (the service's scheme newly in force over recorded
    records) matches the reference with the same day: an adverse record recorded before
    it takes effect ``notice_days`` after it; other records, and every ``ref``, as before."""
    in_force = case.at + dt.timedelta(days=offset)
    engine = Engine(case.scheme, in_force=to_day(in_force))
    prepared = engine.prepare(subjects_table(case.subjects), records_table(case.records))
    got = [tuple(row.values()) for row in engine.evaluate(prepared, case.at).to_table().to_pylist()]
    want = reference.evaluate(case.scheme, case.subjects, case.records, case.at, in_force)
    assert got == want
    recorded = [r.get("recorded_at") or r["occurred_at"] for r in case.records]
    if not recorded:
        return
    # in force before every recording: nothing changes
    early = min(recorded) - dt.timedelta(days=1)
    engine = Engine(case.scheme, in_force=to_day(early))
    prepared = engine.prepare(subjects_table(case.subjects), records_table(case.records))
    rows = [
        tuple(row.values()) for row in engine.evaluate(prepared, case.at).to_table().to_pylist()
    ]
    assert rows == reference_rows(case)

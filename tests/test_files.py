"""Specification of socialcredit.store.files: reading subjects and records, checked whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from socialcredit.errors import InvalidInput, Problem
from socialcredit.ids import ric, uscc
from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.store import (
    load_records,
    parse_records,
    parse_subjects,
    read_inputs,
    read_records,
    read_subjects,
)

ORG = "91110000802100433B"  # a standard valid USCC
PERSON = "11010519491231002X"  # a standard valid resident identity number
HEADER = "id,subject,type,occurred_at,recorded_at,amount,ref"


def test_the_example_codes_are_valid() -> None:
    assert stdnum_uscc.is_valid(ORG)
    assert stdnum_ric.is_valid(PERSON)


def csv(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def problems_of(data: bytes, **kwargs: object) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        parse_records(data, source="in.csv", **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# -- good files --------------------------------------------------------------------------


def test_defaults_fill_empty_cells() -> None:
    loaded = parse_records(
        csv(
            f"r1,{ORG},traffic.red_light,2024-03-01,,,",
            f"r2,{ORG},court.fulfilled,2024-03-02,2024-03-05,250,r1",
        )
    )
    assert loaded.table.schema == RECORDS_SCHEMA
    assert loaded.table.to_pylist() == [
        {
            "id": "r1",
            "subject": ORG,
            "type": "traffic.red_light",
            "occurred_at": day("2024-03-01"),
            "recorded_at": day("2024-03-01"),
            "amount": 0,
            "ref": None,
        },
        {
            "id": "r2",
            "subject": ORG,
            "type": "court.fulfilled",
            "occurred_at": day("2024-03-02"),
            "recorded_at": day("2024-03-05"),
            "amount": 250,
            "ref": "r1",
        },
    ]
    assert loaded.origin.numbers.tolist() == [2, 3]


def test_columns_in_any_order_and_optional_columns_left_out() -> None:
    table = parse_records(
        csv(f"2024-01-02,x.y,{PERSON},r1", header="occurred_at,type,subject,id")
    ).table
    assert table.schema == RECORDS_SCHEMA
    assert table.to_pylist() == [
        {
            "id": "r1",
            "subject": PERSON,
            "type": "x.y",
            "occurred_at": day("2024-01-02"),
            "recorded_at": day("2024-01-02"),
            "amount": 0,
            "ref": None,
        }
    ]


def test_an_exact_repeat_is_kept_once() -> None:
    row = f"r1,{ORG},a.b,2024-01-01,,5,"
    loaded = parse_records(csv(row, f"r2,{ORG},a.b,2024-01-01,,,", row))
    assert loaded.table.column("id").to_pylist() == ["r1", "r2"]
    assert loaded.repeats == 1
    assert loaded.origin.numbers.tolist() == [2, 3]


def test_a_repeat_is_recognized_after_defaults() -> None:
    loaded = parse_records(
        csv(f"r1,{ORG},a.b,2024-01-01,,,", f"r1,{ORG},a.b,2024-01-01,2024-01-01,0,")
    )
    assert loaded.table.num_rows == 1


def test_header_only_gives_an_empty_table() -> None:
    table = parse_records(csv()).table
    assert table.num_rows == 0
    assert table.schema == RECORDS_SCHEMA


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_are_physical_lines(newline: str) -> None:
    text = (
        newline.join(
            [
                "\ufeff" + HEADER,
                f"r1,{ORG},a.b,2024-01-01,,,",
                "",
                f'"r2",{ORG},"a.b",2024-01-01,,,',
                "",
                "",
                f"r3,{ORG},a.b,2024-02-30,,,",
            ]
        )
        + newline
    )
    with pytest.raises(InvalidInput) as caught:
        parse_records(text.encode(), source="in.csv")
    [problem] = caught.value.problems
    assert (problem.line, problem.where) == (7, "occurred_at")


def test_line_numbers_count_line_breaks_inside_quotes() -> None:
    problems = problems_of(csv(f'"r\n1",{ORG},a.b,2024-01-01,,,', f"r2,{ORG},a.b,2024-01-01,,-1,"))
    assert [(p.line, p.where) for p in problems] == [(2, "id"), (4, "amount")]
    assert "control character" in problems[0].message


def test_clean_csv_lines_without_blank_lines() -> None:
    loaded = parse_records(csv(*(f"r{i},{ORG},a.b,2024-01-01,,," for i in range(5))))
    assert loaded.origin.numbers.tolist() == [2, 3, 4, 5, 6]


# -- bad records -------------------------------------------------------------------------

# (case, rows after the header, [(line, field, fragment of the message)])
BAD_RECORDS = [
    (
        "malformed date",
        [f"r1,{ORG},a.b,2024/01/01,,,"],
        [(2, "occurred_at", "not a date of the form YYYY-MM-DD")],
    ),
    (
        "impossible date",
        [f"r1,{ORG},a.b,2023-02-29,,,"],
        [(2, "occurred_at", "not a valid calendar date")],
    ),
    ("short date", [f"r1,{ORG},a.b,2024-1-01,,,"], [(2, "occurred_at", "YYYY-MM-DD")]),
    ("date with spaces", [f"r1,{ORG},a.b, 2024-01-01,,,"], [(2, "occurred_at", "YYYY-MM-DD")]),
    (
        "year zero",
        [f"r1,{ORG},a.b,0000-01-01,,,"],
        [(2, "occurred_at", "between 0001-01-01 and 9999-12-31")],
    ),
    (
        "bad recorded_at",
        [f"r1,{ORG},a.b,2024-01-01,2024-13-01,,"],
        [(2, "recorded_at", "not a valid calendar date")],
    ),
    (
        "recorded before occurred",
        [f"r1,{ORG},a.b,2024-01-02,2024-01-01,,"],
        [(2, "recorded_at", "2024-01-01 is before occurred_at 2024-01-02")],
    ),
    ("missing id", [f",{ORG},a.b,2024-01-01,,,"], [(2, "id", "missing")]),
    ("missing subject", ["r1,,a.b,2024-01-01,,,"], [(2, "subject", "missing")]),
    ("missing type", [f"r1,{ORG},,2024-01-01,,,"], [(2, "type", "missing")]),
    ("missing occurred_at", [f"r1,{ORG},a.b,,,,"], [(2, "occurred_at", "missing")]),
    (
        "negative amount",
        [f"r1,{ORG},a.b,2024-01-01,,-5,"],
        [(2, "amount", "whole number >= 0; got -5")],
    ),
    (
        "fractional amount",
        [f"r1,{ORG},a.b,2024-01-01,,2.5,"],
        [(2, "amount", "'2.5' is not a whole number")],
    ),
    ("hex amount", [f"r1,{ORG},a.b,2024-01-01,,0x10,"], [(2, "amount", "not a whole number")]),
    (
        "huge amount",
        [f"r1,{ORG},a.b,2024-01-01,,99999999999999999999,"],
        [(2, "amount", "too large")],
    ),
    ("self ref", [f"r1,{ORG},a.b,2024-01-01,,,r1"], [(2, "ref", "names the record itself")]),
    ("spaces around an id", [f" r1,{ORG},a.b,2024-01-01,,,"], [(2, "id", "spaces")]),
    ("ideographic space in a type", [f"r1,{ORG},a.b\u3000,2024-01-01,,,"], [(2, "type", "spaces")]),
    ("tab in a subject", [f"r1,{ORG}\t,a.b,2024-01-01,,,"], [(2, "subject", "control character")]),
    (
        "same id, other content",
        [
            f"r1,{ORG},a.b,2024-01-01,,,",
            f"r2,{ORG},a.b,2024-01-01,,,",
            f"r1,{ORG},a.b,2024-01-01,,7,",
        ],
        [(4, "id", "also used on line 2 for a different record (amount 0 vs 7)")],
    ),
    (
        "wrong number of fields",
        [f"r1,{ORG},a.b,2024-01-01", f"r2,{ORG},a.b,2024-01-32,,,"],
        [(2, "", "has 4 fields, the header names 7"), (3, "occurred_at", "calendar date")],
    ),
    (
        "several problems on one line",
        ["r1,,a.b,2024-01-01,2023-01-01,x,"],
        [
            (2, "subject", "missing"),
            (2, "recorded_at", "before occurred_at"),
            (2, "amount", "not a whole number"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS]
)
def test_bad_records(rows: list[str], expected: list[tuple[int, str, str]]) -> None:
    problems = problems_of(csv(*rows))
    assert [(p.line, p.where) for p in problems] == [(line, field) for line, field, _ in expected]
    for problem, (_, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
        assert problem.source == "in.csv"


def test_every_problem_is_listed_and_the_rendering_is_capped() -> None:
    rows = [f"r{i},{ORG},a.b,2024-02-30,,," for i in range(1030)]
    with pytest.raises(InvalidInput) as caught:
        parse_records(csv(*rows), source="in.csv")
    assert len(caught.value.problems) == 1030
    assert [p.line for p in caught.value.problems] == list(range(2, 1032))
    text = str(caught.value)
    assert text.startswith("in.csv is invalid: 1030 problems")
    assert "in.csv:1001:" in text and "in.csv:1002:" not in text  # the first 1,000
    assert text.endswith("... and 30 more")


def test_invalid_utf8_is_named_by_line() -> None:
    data = csv(f"r1,{ORG},a.b,2024-01-01,,,") + b"r\xff2,S,a.b,2024-01-01,,,\n"
    problems = problems_of(data)
    assert [(p.line, p.message) for p in problems] == [
        (3, "is not UTF-8 text; save the file as UTF-8")
    ]


HEADER_CASES = [
    ("unknown column", "id,subject,type,occurred_at,colour", [("colour", "unknown column")]),
    (
        "misspelt column",
        "id,subjcet,type,occurred_at",
        [("subjcet", "did you mean 'subject'?"), ("subject", "missing column")],
    ),
    ("twice", "id,subject,type,occurred_at,id", [("id", "appears twice")]),
    ("missing required", "id,subject,type", [("occurred_at", "missing column")]),
]


@pytest.mark.parametrize(
    ("header", "expected"), [c[1:] for c in HEADER_CASES], ids=[c[0] for c in HEADER_CASES]
)
def test_bad_headers(header: str, expected: list[tuple[str, str]]) -> None:
    problems = problems_of(csv(header=header))
    assert [p.where for p in problems] == [where for where, _ in expected]
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert problem.line == 1
        assert fragment in problem.message


def test_empty_file() -> None:
    [problem] = problems_of(b"")
    assert "no header" in problem.message


def test_a_carriage_return_alone_is_refused_by_its_line() -> None:
    old_mac = csv(f"r1,{ORG},a.b,2024-01-01,,,", f"r2,{ORG},a.b,2024-01-01,,,").replace(
        b"\n", b"\r"
    )
    for parse in (parse_records, parse_subjects):
        with pytest.raises(InvalidInput) as caught:
            parse(old_mac, source="in.csv")
        [problem] = caught.value.problems
        assert (problem.source, problem.line) == ("in.csv", 1)
        assert "lines must end in LF or CRLF" in problem.message
    mixed = csv(f"r1,{ORG},a.b,2024-01-01,,,\rr2,{ORG},a.b,2024-01-01,,,", f"r3,{ORG},a.b,,,,")
    [problem] = problems_of(mixed)
    assert problem.line == 2 and "carriage return" in problem.message


UNCLOSED = [
    ("first field", [f'"r2,{ORG},a.b,2024-01-01,,,', f"r3,{ORG},a.b,2024-02-30,,,"], 3, "line 4"),
    ("last field, last line", [f'r2,{ORG},a.b,2024-01-01,,,"r1'], 3, None),
    ("over a later line", [f'"r\n2",{ORG},a.b,2024-01-01,,,"r1', "r3,,,,,,"], 4, "line 5"),
    ("past the field size limit", [f'"r2,{ORG},a.b,2024-01-01,,,', *["x"] * 20_000], 3, "20003"),
]


@pytest.mark.parametrize(
    ("rows", "line", "unchecked"), [c[1:] for c in UNCLOSED], ids=[c[0] for c in UNCLOSED]
)
def test_a_quote_never_closed_is_named_by_its_line(
    rows: list[str], line: int, unchecked: str | None
) -> None:
    data = csv(f"r1,{ORG},a.b,2024-13-01,,,", *rows)
    problems = problems_of(data[:-1] if unchecked is None else data)
    assert [(p.line, p.where) for p in problems] == [(2, "occurred_at"), (line, "")]
    assert "a quote opened on this line is never closed" in problems[1].message
    if unchecked is None:
        assert "not checked" not in problems[1].message
    else:
        assert unchecked in problems[1].message and "not checked" in problems[1].message


def test_a_header_that_opens_a_quote_it_does_not_close() -> None:
    [problem] = problems_of(csv(f"r1,{ORG},a.b,2024-01-01,,,", header='id,"subject,type'))
    assert problem.line == 1 and "does not close" in problem.message


def test_what_pythons_csv_cannot_read_is_named_by_its_line() -> None:
    huge = '"' + "x" * 200_000 + '"'
    [problem] = problems_of(csv(header=f"{HEADER},{huge}"))
    assert problem.line == 1 and "the header cannot be read as CSV" in problem.message
    problems = problems_of(csv(f"r1,{ORG},a.b,2024-01-01", f"{huge},{ORG},a.b,2024-01-01,,,"))
    assert [p.line for p in problems] == [2, 3]
    assert "cannot be read as CSV" in problems[1].message


# -- paths and formats -------------------------------------------------------------------


def write_records_csv(path: Path, rows: list[str]) -> Path:
    path.write_bytes(csv(*rows))
    return path


def test_read_records_from_a_path(tmp_path: Path) -> None:
    path = write_records_csv(tmp_path / "records.csv", [f"r1,{ORG},a.b,2024-01-01,,,"])
    assert read_records(path).column("id").to_pylist() == ["r1"]
    assert load_records(str(path)).origin.source == str(path)


@pytest.mark.parametrize("name", ["records.txt", "records", "records.json"])
def test_other_extensions_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(csv())
    with pytest.raises(InvalidInput, match="unsupported file type"):
        read_records(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read_records(tmp_path / "nope.csv")


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "subject": [ORG, ORG],
            "id": ["r1", "r2"],
            "type": ["a.b", "a.b"],
            "occurred_at": pa.array([day("2024-01-01"), day("2024-01-02")], pa.date32()),
            "amount": pa.array([3, None], pa.int32()),
            "ref": [None, "r1"],
        }
    )
    pq.write_table(table, tmp_path / "records.parquet")
    out = read_records(tmp_path / "records.parquet")
    assert out.schema == RECORDS_SCHEMA
    assert out.column("amount").to_pylist() == [3, 0]
    assert out.column("recorded_at").to_pylist() == [day("2024-01-01"), day("2024-01-02")]


def test_parquet_problems_name_the_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["r1", "r2", "r3"],
            "subject": [ORG] * 3,
            "type": ["a.b"] * 3,
            "occurred_at": ["2024-01-01", "2024-02-30", "2024-01-01"],
            "amount": pa.array([1, 2, -3], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "records.parquet")
    with pytest.raises(InvalidInput) as caught:
        read_records(tmp_path / "records.parquet")
    problems = caught.value.problems
    assert [(p.line, p.where) for p in problems] == [(2, "occurred_at"), (3, "amount")]
    assert all(p.message.endswith(f"(row {p.line})") for p in problems)


def test_parquet_column_of_the_wrong_type(tmp_path: Path) -> None:
    table = pa.table({"id": [1], "subject": [ORG], "type": ["a.b"], "occurred_at": pa.array([1.5])})
    pq.write_table(table, tmp_path / "records.parquet")
    with pytest.raises(InvalidInput) as caught:
        read_records(tmp_path / "records.parquet")
    assert [p.where for p in caught.value.problems] == ["id", "occurred_at"]


def test_a_parquet_column_named_twice(tmp_path: Path) -> None:
    columns = [pa.array(["r1"]), pa.array([ORG]), pa.array(["a.b"]), pa.array(["2024-01-01"])]
    names = ["id", "subject", "type", "occurred_at", "id"]
    pq.write_table(
        pa.Table.from_arrays([*columns, columns[0]], names=names), tmp_path / "r.parquet"
    )
    with pytest.raises(InvalidInput) as caught:
        read_records(tmp_path / "r.parquet")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'r.parquet'}: id: column appears twice"
    ]


@pytest.mark.parametrize(
    "amounts",
    [
        pa.array([10**18 - 1, 10**18, 2**63], pa.uint64()),
        pa.array([10**18 - 1, 10**18, 2**63 - 1], pa.int64()),
    ],
    ids=["uint64", "int64"],
)
def test_typed_parquet_amounts_have_at_most_18_digits(tmp_path: Path, amounts: pa.Array) -> None:
    table = pa.table(
        {
            "id": ["r1", "r2", "r3"],
            "subject": [ORG] * 3,
            "type": ["a.b"] * 3,
            "occurred_at": ["2024-01-01"] * 3,
            "amount": amounts,
        }
    )
    pq.write_table(table, tmp_path / "r.parquet")
    with pytest.raises(InvalidInput) as caught:
        read_records(tmp_path / "r.parquet")
    said = [(p.line, p.where, p.message) for p in caught.value.problems]
    as_text = problems_of(csv(f"r2,{ORG},a.b,2024-01-01,,{10**18},"))[0].message
    assert said == [
        (2, "amount", f"{as_text} (row 2)"),
        (3, "amount", f"{amounts[2]} is too large: at most 18 digits (row 3)"),
    ]
    pq.write_table(table.slice(0, 1), tmp_path / "r.parquet")
    assert read_records(tmp_path / "r.parquet")["amount"].to_pylist() == [10**18 - 1]


def test_a_broken_parquet_file(tmp_path: Path) -> None:
    (tmp_path / "records.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        read_records(tmp_path / "records.parquet")


def test_csv_and_parquet_read_the_same(tmp_path: Path) -> None:
    rows = [f"r{i},{ORG},a.b,2024-01-0{i + 1},,{i}," for i in range(5)] + [
        f"r9,{ORG},a.c,2024-02-01,2024-02-03,,r1"
    ]
    from_csv = read_records(write_records_csv(tmp_path / "r.csv", rows))
    pq.write_table(from_csv, tmp_path / "r.parquet")
    assert read_records(tmp_path / "r.parquet").equals(from_csv)


# -- subjects ----------------------------------------------------------------------------


def subjects_csv(*lines: str, header: str = "code,kind") -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def test_subjects_are_checked_and_normalized() -> None:
    lower_x = PERSON.lower()
    loaded = parse_subjects(
        subjects_csv(f"{ORG},organization", f"{lower_x},person", f"{PERSON},person")
    )
    assert loaded.table.schema == SUBJECTS_SCHEMA
    assert loaded.table.to_pylist() == [
        {"code": ORG, "kind": "organization"},
        {"code": PERSON, "kind": "person"},
    ]
    assert loaded.repeats == 1


def test_generated_codes_are_accepted() -> None:
    rng = np.random.default_rng(7)
    orgs = uscc.generate(rng, 20)
    people = ric.generate(rng, 20, born_from=dt.date(1950, 1, 1), born_to=dt.date(2000, 1, 1))
    lines = [f"{c},organization" for c in orgs] + [f"{c},person" for c in people]
    assert parse_subjects(subjects_csv(*lines)).table.num_rows == 40


BAD_SUBJECTS = [
    ("wrong check character", [f"{ORG[:-1]}C,organization"], [(2, "code", "check character")]),
    ("person code as organization", [f"{PERSON},organization"], [(2, "code", "")]),
    ("unknown kind", [f"{ORG},company"], [(2, "kind", "use person or organization")]),
    ("missing code", [",person"], [(2, "code", "missing")]),
    ("missing kind", [f"{ORG},"], [(2, "kind", "missing")]),
    (
        "two kinds",
        [f"{PERSON},person", f"{ORG},organization", f"{PERSON},organization"],
        [(4, "code", "")],
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [c[1:] for c in BAD_SUBJECTS], ids=[c[0] for c in BAD_SUBJECTS]
)
def test_bad_subjects(rows: list[str], expected: list[tuple[int, str, str]]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_subjects(subjects_csv(*rows), source="subjects.csv")
    problems = caught.value.problems
    assert [(p.line, p.where) for p in problems] == [(line, field) for line, field, _ in expected]
    for problem, (_, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message


def test_a_code_listed_with_two_kinds_names_both_lines_and_masks_the_code() -> None:
    # The person's code is valid as a person's; as an organization's it fails its check
    # character, so use an opaque registry to reach the kind conflict.
    with pytest.raises(InvalidInput) as caught:
        parse_subjects(
            subjects_csv("P-0001,person", "X,organization", "P-0001,organization"),
            source="subjects.csv",
            opaque_codes=True,
        )
    [problem] = caught.value.problems
    assert (problem.line, problem.where) == (4, "kind")
    assert "listed on line 2 as person and here as organization" in problem.message
    assert "P-0001" not in problem.message


def test_opaque_codes() -> None:
    table = parse_subjects(
        subjects_csv("ACME-1,organization", "p42,person"), opaque_codes=True
    ).table
    assert table.column("code").to_pylist() == ["ACME-1", "p42"]
    with pytest.raises(InvalidInput):
        parse_subjects(subjects_csv("ACME-1,organization"))


def test_read_subjects_from_parquet(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"kind": ["organization"], "code": [ORG]}), tmp_path / "subjects.parquet"
    )
    assert read_subjects(tmp_path / "subjects.parquet").to_pylist() == [
        {"code": ORG, "kind": "organization"}
    ]


# -- scoring straight from files ---------------------------------------------------------


def test_read_inputs_keeps_and_counts_records_of_unknown_subjects(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_bytes(subjects_csv(f"{ORG},organization"))
    write_records_csv(
        tmp_path / "r.csv",
        [
            f"r1,{ORG},a.b,2024-01-01,,,",
            f"r2,{PERSON},a.b,2024-01-01,,,",
            f"r3,{PERSON},a.b,2024-01-02,,,r2",
        ],
    )
    inputs = read_inputs(tmp_path / "s.csv", tmp_path / "r.csv")
    assert inputs.records.column("id").to_pylist() == ["r1", "r2", "r3"]
    assert inputs.unknown_subjects == 2
    assert inputs.unknown_codes == [PERSON]
    assert inputs.subjects.num_rows == 1


def test_read_inputs_checks_refs_within_the_file(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_bytes(subjects_csv(f"{ORG},organization", f"{PERSON},person"))
    write_records_csv(
        tmp_path / "r.csv",
        [
            f"r1,{ORG},a.b,2024-01-01,,,",
            f"r2,{PERSON},a.b,2024-01-01,,,r1",
            f"r3,{PERSON},a.b,2024-01-02,,,r9",
            f"r4,{ORG},a.b,2024-01-02,,,r1",
        ],
    )
    with pytest.raises(InvalidInput) as caught:
        read_inputs(tmp_path / "s.csv", tmp_path / "r.csv")
    problems = caught.value.problems
    assert [(p.line, p.where) for p in problems] == [(3, "ref"), (4, "ref")]
    assert "about another subject" in problems[0].message
    assert "'r9', which is not in this file" in problems[1].message


# -- round trip --------------------------------------------------------------------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/", min_size=1, max_size=12)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31))


@st.composite
def record_tables(draw: st.DrawFn) -> pa.Table:
    keys = draw(st.lists(ids, min_size=1, max_size=30, unique=True))
    rows = []
    for i, key in enumerate(keys):
        occurred = draw(dates)
        recorded = occurred + dt.timedelta(days=draw(st.integers(0, 400)))
        ref = draw(st.one_of(st.none(), st.sampled_from(keys[:i]))) if i else None
        rows.append(
            {
                "id": key,
                "subject": draw(st.sampled_from([ORG, PERSON, "s,1", 'q"2'])),
                "type": draw(st.sampled_from(["a.b", "traffic.red_light", "x"])),
                "occurred_at": occurred,
                "recorded_at": recorded,
                "amount": draw(st.integers(0, 10**15)),
                "ref": ref,
            }
        )
    return pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA)


@settings(max_examples=40, deadline=None)
@given(record_tables())
def test_what_is_written_is_read_back(table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pcsv.write_csv(table, sink)
    assert parse_records(sink.getvalue().to_pybytes()).table.equals(table)


def test_a_null_text_amount_in_parquet_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    table = {
        "id": ["y1", "y2"],
        "subject": [ORG, ORG],
        "type": ["a.b", "a.b"],
        "occurred_at": ["2025-01-01", "2025-01-01"],
        "amount": pa.array([None, "5"], pa.string()),
    }
    pq.write_table(pa.table(table), path)
    assert read_records(path)["amount"].to_pylist() == [0, 5]


def test_a_type_no_scheme_could_read_is_refused_once() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_records(
            csv(
                f"r1,{ORG},a.\u00e9,2024-03-01,,,",  # not ASCII
                f"r2,{ORG},a b,2024-03-01,,,",
                f"r3,{ORG}, a.b,2024-03-01,,,",  # untidy: said so, and only so
                f"r4,{ORG},a.b-C_9,2024-03-01,,,",
            )
        )
    said = [str(p) for p in raised.value.problems]
    assert [s.split(": ", 2)[1] for s in said] == ["type", "type", "type"], said
    assert "dotted name" in said[0] and "dotted name" in said[1]
    assert "spaces at its start or end" in said[2]


def test_ids_past_256_characters_and_c1_controls_are_refused() -> None:
    long = "x" * 257
    with pytest.raises(InvalidInput) as raised:
        parse_records(
            csv(
                f"{long},{ORG},a.b,2024-03-01,,,",
                f"r2,{ORG},a.b,2024-03-01,,,{long}",
                f"r\u00853,{ORG},a.b,2024-03-01,,,",
                f"{'y' * 256},{ORG},a.b,2024-03-01,,,",
            )
        )
    said = [str(p) for p in raised.value.problems]
    assert len(said) == 3, said
    assert "id: is longer than 256 characters" in said[0]
    assert "ref: is longer than 256 characters" in said[1]
    assert "id: has a control character" in said[2]


def test_a_postgresql_schema_name_it_would_shorten_or_reserves_is_refused() -> None:
    from socialcredit.errors import LedgerError
    from socialcredit.store import open_ledger

    base = "postgresql://nobody@127.0.0.1:1/none?schema="
    for schema, said in (("pg_town", "pg_"), ("t" * 64, "at most 63")):
        with pytest.raises(LedgerError, match=said):
            open_ledger(base + schema)

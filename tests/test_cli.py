"""The command line, end to end on real ledger files and real input files."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.errors import InvalidInput
from socialcredit.ids import ric, uscc
from socialcredit.scheme import preset_names

runner = CliRunner()


def run(*args: str, code: int | None = 0) -> tuple[str, str]:
    """Run the CLI in process; check the exit status; return (stdout, stderr)."""
    result = runner.invoke(command_app(), list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def codes() -> dict[str, str]:
    rng = np.random.default_rng(3)
    persons = ric.generate(
        rng,
        3,
        born_from=__import__("datetime").date(1960, 1, 1),
        born_to=__import__("datetime").date(2000, 1, 1),
    )
    orgs = uscc.generate(rng, 1)
    return {"debtor": persons[0], "driver": persons[1], "clean": persons[2], "firm": orgs[0]}


@pytest.fixture
def files(tmp_path: Path, codes: dict[str, str]) -> dict[str, Path]:
    subjects = tmp_path / "subjects.csv"
    subjects.write_text(
        "code,kind\n"
        f"{codes['debtor']},person\n{codes['driver']},person\n{codes['clean']},person\n"
        f"{codes['firm']},organization\n"
    )
    records = tmp_path / "records.csv"
    records.write_text(
        "id,subject,type,occurred_at,recorded_at,amount,ref\n"
        f"j1,{codes['debtor']},court.judgment_unfulfilled,2025-03-01,2025-03-02,,\n"
        f"j2,{codes['firm']},court.judgment_unfulfilled,2025-04-01,,,\n"
        f"j3,{codes['driver']},court.judgment_unfulfilled,2025-02-01,,,\n"
        f"f3,{codes['driver']},court.judgment_fulfilled,2025-05-01,,,j3\n"
        f"t1,{codes['driver']},traffic.violation,2025-06-01,2025-06-02,,\n"
        f"t2,{codes['driver']},traffic.violation,2025-07-01,2025-07-01,,\n"
        f"d1,{codes['clean']},charity.donation,2025-08-01,,2500,\n"
    )
    return {"subjects": subjects, "records": records}


@pytest.fixture
def ledger(tmp_path: Path, files: dict[str, Path]) -> Path:
    path = tmp_path / "t.ledger"
    run("init", str(path))
    run("subjects", "import", str(files["subjects"]), "--ledger", str(path))
    run("records", "import", str(files["records"]), "--ledger", str(path))
    return path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    report = tmp_path / "demo.html"
    out, err = run("demo", "--persons", "400", "--organizations", "40", "--report", str(report))
    assert report.exists() and "lab report:" in out
    assert "hash chain verified" in out
    assert "rongcheng" in out and "court_dishonest_debtors" in out
    assert "dishonest_judgment_debtors" in out
    assert "decision:" in out and "travel.air: denied by air_travel" in out
    assert "demo finished" in err


def test_score_csv_is_exactly_section_7(ledger: Path, codes: dict[str, str]) -> None:
    out, _ = run(
        "score",
        "--scheme",
        "court_dishonest_debtors",
        "--at",
        "2025-12-31",
        "--ledger",
        str(ledger),
        "--format",
        "csv",
    )
    lines = out.splitlines()
    assert lines[0] == "code,score,grade,lists,denied,granted"
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(rows) == sorted(rows)
    assert rows[codes["debtor"]]["lists"] == "dishonest_judgment_debtors"
    assert "travel.air" in rows[codes["debtor"]]["denied"].split(";")
    assert rows[codes["driver"]]["lists"] == ""  # fulfilled: ended by the ref record
    assert rows[codes["firm"]]["lists"] == "dishonest_judgment_debtors"


def test_score_from_files_equals_score_from_ledger(ledger: Path, files: dict[str, Path]) -> None:
    for scheme in ("rongcheng", "court_dishonest_debtors"):
        from_ledger, _ = run(
            "score", "-s", scheme, "--at", "2025-12-31", "--ledger", str(ledger), "-f", "csv"
        )
        from_files, err = run(
            "score",
            "-s",
            scheme,
            "--at",
            "2025-12-31",
            "--subjects",
            str(files["subjects"]),
            "--records",
            str(files["records"]),
            "-f",
            "csv",
        )
        assert from_ledger == from_files
    assert "count for nothing" in err  # types unknown to the scheme go to stderr


def test_score_parquet(ledger: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "out.parquet"
    run(
        "score",
        "-s",
        "rongcheng",
        "--at",
        "2025-12-31",
        "--ledger",
        str(ledger),
        "-f",
        "parquet",
        "-o",
        str(target),
    )
    table = pq.read_table(target)
    assert table.column_names == ["code", "score", "grade", "lists", "denied", "granted"]
    assert table.num_rows == 3


def test_explain_names_records_and_conditions(ledger: Path, codes: dict[str, str]) -> None:
    out, _ = run(
        "explain", codes["driver"], "-s", "rongcheng", "--at", "2025-12-31", "--ledger", str(ledger)
    )
    assert "t1" in out and "t2" in out and "score 990" in out
    out, _ = run(
        "explain",
        codes["driver"],
        "-s",
        "court_dishonest_debtors",
        "--at",
        "2025-12-31",
        "--ledger",
        str(ledger),
        "--format",
        "json",
    )
    assert '"id": "j3"' in out and "resolves or voids" in out


@pytest.mark.parametrize(
    ("who", "action", "status", "text"),
    [
        ("debtor", "travel.air", 1, "denied by air_travel"),
        ("debtor", "travel.air.domestic", 1, "denied"),
        ("debtor", "travel.bus", 0, "allowed"),
        ("driver", "travel.air", 0, "allowed"),
    ],
)
def test_may_exit_status(
    ledger: Path, codes: dict[str, str], who: str, action: str, status: int, text: str
) -> None:
    out, _ = run(
        "may",
        codes[who],
        action,
        "-s",
        "court_dishonest_debtors",
        "--at",
        "2025-12-31",
        "--ledger",
        str(ledger),
        code=status,
    )
    assert text in out


def test_lookup_masks_persons_and_reveals_nothing_else(ledger: Path, codes: dict[str, str]) -> None:
    out, _ = run("lookup", codes["debtor"], "--ledger", str(ledger), "--at", "2025-12-31")
    assert codes["debtor"] not in out
    assert codes["debtor"][:4] + "**********" + codes["debtor"][-4:] in out
    assert "dishonest_judgment_debtors" in out
    clean, _ = run("lookup", codes["clean"], "--ledger", str(ledger), "--at", "2025-12-31")
    stranger = codes["clean"][:-4] + "0000"
    unknown, _ = run("lookup", stranger, "--ledger", str(ledger), "--at", "2025-12-31")
    assert clean.replace(codes["clean"][-4:], "") == unknown.replace("0000", "")
    firm, _ = run("lookup", codes["firm"], "--ledger", str(ledger), "--at", "2025-12-31")
    assert codes["firm"] in firm  # organizations are public


def test_codes_are_found_as_typed_and_never_shown_whole(
    ledger: Path, codes: dict[str, str], tmp_path: Path
) -> None:
    debtor = codes["debtor"]
    typed = f" {debtor[:6]} {debtor[6:].lower()}"  # spaces and a lower-case x are fine
    out, _ = run("lookup", typed, "--ledger", str(ledger), "--at", "2025-12-31")
    assert "dishonest_judgment_debtors" in out
    run(
        "may",
        typed,
        "travel.air",
        "-s",
        "court_dishonest_debtors",
        "--at",
        "2025-12-31",
        "--ledger",
        str(ledger),
        code=1,
    )
    clash = tmp_path / "clash.csv"  # id j1 again, about another person
    clash.write_text(
        f"id,subject,type,occurred_at\nj1,{codes['clean']},court.judgment_unfulfilled,2025-03-01\n"
    )
    _, err = run("records", "import", str(clash), "--ledger", str(ledger), code=2)
    assert "j1" in err and debtor not in err and codes["clean"] not in err


def _entries(path: Path) -> int:
    with sqlite3.connect(path) as con:
        return int(con.execute("select count(*) from records").fetchone()[0])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("x1,{driver},traffic.violation,2025-13-01,,,", ":2: occurred_at"),
        ("x1,{driver},traffic.violation,2025-06-01,2025-05-01,,", "recorded_at"),
        ("x1,{driver},traffic.violation,2025-06-01,,-5,", ":2: amount"),
        ("x1,{driver},traffic.violation,2025-06-01,,,nope", "ref"),
        ("t1,{driver},traffic.violation,2025-06-09,,,", "t1"),
        ("x1,{clean},court.judgment_fulfilled,2025-06-01,,,j1", "another subject"),
        ("x1,110101199001011231,traffic.violation,2025-06-01,,,", "subject"),
    ],
)
def test_bad_records_are_refused_whole(
    ledger: Path, codes: dict[str, str], tmp_path: Path, row: str, expected: str
) -> None:
    bad = tmp_path / "bad.csv"
    good = f"ok1,{codes['driver']},traffic.violation,2025-09-01,,,"
    bad.write_text(
        "id,subject,type,occurred_at,recorded_at,amount,ref\n"
        + row.format(**codes)
        + "\n"
        + good
        + "\n"
    )
    before = _entries(ledger)
    _, err = run("records", "import", str(bad), "--ledger", str(ledger), code=2)
    assert "bad.csv" in err and expected in err, err
    assert _entries(ledger) == before


def test_import_is_idempotent(ledger: Path, files: dict[str, Path]) -> None:
    out, _ = run("records", "import", str(files["records"]), "--ledger", str(ledger))
    assert "0 records appended, 7 already in the ledger" in out


def test_verify_names_the_first_tampered_entry(ledger: Path) -> None:
    out, _ = run("ledger", "verify", "--ledger", str(ledger))
    assert out.startswith("ok:")
    with sqlite3.connect(ledger) as con:
        triggers = [
            r[0] for r in con.execute("select name from sqlite_master where type='trigger'")
        ]
        for name in triggers:
            con.execute(f"drop trigger {name}")
        con.execute("update records set amount = 999 where id = 't1'")
    _, err = run("ledger", "verify", "--ledger", str(ledger), code=1)
    assert "BROKEN" in err and "t1" in err


def test_subjects_add_validates_codes(ledger: Path) -> None:
    _, err = run(
        "subjects", "add", "110101199001011234", "--kind", "person", "--ledger", str(ledger), code=2
    )
    assert "check character" in err
    run(
        "subjects",
        "add",
        "ACME-001",
        "--kind",
        "organization",
        "--opaque-codes",
        "--ledger",
        str(ledger),
    )


def test_opaque_codes_for_operators_outside_china(tmp_path: Path) -> None:
    path = tmp_path / "o.ledger"
    run("init", str(path))
    subjects = tmp_path / "s.csv"
    subjects.write_text("code,kind\ndriver-17,person\nshop-3,organization\n")
    _, err = run("subjects", "import", str(subjects), "--ledger", str(path), code=2)
    assert "s.csv:2" in err
    run("subjects", "import", str(subjects), "--ledger", str(path), "--opaque-codes")
    out, _ = run("score", "-s", "rongcheng", "--ledger", str(path), "-f", "table")
    assert "driver-17" not in out  # persons' codes are masked in every view but the CSV
    assert "d*******7" in out


def test_missing_ledger_says_how_to_make_one(tmp_path: Path) -> None:
    _, err = run("score", "-s", "rongcheng", "--ledger", str(tmp_path / "none.ledger"), code=2)
    assert "socialcredit init" in err


def test_schemes_with_critical_findings_are_refused_on_real_records(ledger: Path) -> None:
    _, err = run("score", "-s", "civil_aviation", "--ledger", str(ledger), code=2)
    assert "refused" in err and "protected-category" in err
    out, err = run(
        "score", "-s", "civil_aviation", "--ledger", str(ledger), "--synthetic", "-f", "csv"
    )
    assert out.startswith("code,score")
    assert "critical" in err


def test_scheme_commands(tmp_path: Path) -> None:
    out, _ = run("scheme", "list")
    for name in preset_names():
        assert name[:9] in out
    for name in preset_names():
        run("scheme", "check", name)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scheme: x\nsubjects: [person]\nrecords: {}\nscore: {base: 1}\n"
        "grades: [{grade: A, min: 3}]\nrules: [{id: r, types: [t], measure: count}]\n"
    )
    _, err = run("scheme", "check", str(bad), code=2)
    assert "bad.yaml:5: grades[0].min: the last grade takes no min" in err
    assert "bad.yaml:6: rules[0].types[0]: record type 't' is not in the records catalogue" in err
    run("scheme", "audit", "civil_aviation", code=1)
    out, _ = run("scheme", "audit", "rongcheng")
    out, _ = run("scheme", "schema")
    assert '"properties"' in out


def test_files_match_a_records_subject_written_as_the_subjects_file_writes_it(
    tmp_path: Path, codes: dict[str, str]
) -> None:
    """The subjects file's codes are stored in normal form; a record naming the subject
    in another form (lower case, spaces) is that subject's."""
    firm, person = uscc.generate(np.random.default_rng(11), 1)[0], codes["debtor"]
    typed = firm[:-1] + firm[-1].lower() if firm[-1].isalpha() else f"{firm[:4]} {firm[4:]}"
    subjects = tmp_path / "s.csv"
    subjects.write_text(f"code,kind\n{typed},organization\n{person},person\n")
    records = tmp_path / "r.csv"
    records.write_text(
        "id,subject,type,occurred_at\n"
        f"j1,{typed},court.judgment_unfulfilled,2025-03-01\n"
        f"j2,{person[:6]} {person[6:]},court.judgment_unfulfilled,2025-03-01\n"
    )
    common = ("-s", "court_dishonest_debtors", "--at", "2025-12-31")
    given = ("--subjects", str(subjects), "--records", str(records))
    out, err = run("may", typed, "travel.air", *common, *given, code=1)
    assert "denied by air_travel" in out and "count for nothing" not in err
    run("may", person, "travel.air", *common, *given, code=1)


def test_may_refuses_what_is_not_an_action(files: dict[str, Path], codes: dict[str, str]) -> None:
    given = ("--subjects", str(files["subjects"]), "--records", str(files["records"]))
    for action in ("", "not an action", "travel..air"):
        result = runner.invoke(
            command_app(),
            ["may", codes["debtor"], action, "-s", "court_dishonest_debtors", *given],
        )
        assert result.exit_code == 2, (action, result.stdout)
        assert "dotted name" in result.stderr


def test_a_record_type_that_no_scheme_could_read_is_refused(
    ledger: Path, codes: dict[str, str]
) -> None:
    _, err = run(
        "records", "add", "--id", "x9", "--subject", codes["driver"], "--type",
        "traffic violation", "--occurred-at", "2025-07-01", "--ledger", str(ledger), code=2,
    )  # fmt: skip
    assert "type: is not a dotted name" in err
    out, _ = run("ledger", "verify", "--ledger", str(ledger))
    assert "x9" not in out


def test_the_unknown_types_warning_says_how_many_it_does_not_name(
    tmp_path: Path, codes: dict[str, str]
) -> None:
    subjects = tmp_path / "s.csv"
    subjects.write_text(f"code,kind\n{codes['driver']},person\n")
    records = tmp_path / "r.csv"
    rows = [f"u{k},{codes['driver']},unknown.kind{k:02d},2025-03-01" for k in range(13)]
    records.write_text("id,subject,type,occurred_at\n" + "\n".join(rows) + "\n")
    _, err = run(
        "score", "-s", "rongcheng", "--at", "2025-12-31", "--format", "csv",
        "--subjects", str(subjects), "--records", str(records),
    )  # fmt: skip
    assert "13 record(s) of 13 type(s) unknown" in err and "and 3 more" in err
    assert "unknown.kind09 (1) and 3 more" in " ".join(err.split())


def test_piped_tables_are_not_cut_to_80_columns(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    command = Path(sys.executable).parent / "socialcredit"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    listed = subprocess.run(
        [str(command), "scheme", "list"], capture_output=True, text=True, env=env, check=True
    ).stdout
    for name in preset_names():
        assert f" {name} " in listed
    narrow = subprocess.run(
        [str(command), "scheme", "list"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "60"},
        check=True,
    ).stdout
    assert max(map(len, narrow.splitlines())) <= 60


def test_an_organization_code_is_shown_whole_in_messages(
    ledger: Path, codes: dict[str, str]
) -> None:
    stranger = uscc.generate(np.random.default_rng(99), 1)[0]
    _, err = run(
        "explain", stranger, "-s", "court_dishonest_debtors", "--ledger", str(ledger), code=2
    )
    assert f"'{stranger}' is not a subject scored" in " ".join(err.split())
    born = __import__("datetime").date(1980, 1, 1)
    person = ric.generate(np.random.default_rng(98), 1, born_from=born, born_to=born)[0]
    _, err = run(
        "explain", person, "-s", "court_dishonest_debtors", "--ledger", str(ledger), code=2
    )
    assert person not in err and person[-4:] in err


def test_records_add_names_the_command_line_as_the_place(
    ledger: Path, codes: dict[str, str]
) -> None:
    base = ["records", "add", "--id", "x8", "--subject", codes["driver"], "--ledger", str(ledger)]
    _, err = run(*base, "--type", "traffic.violation", "--occurred-at", "2025-07-01",
                 "--amount", "-6", code=2)  # fmt: skip
    assert "<command line>: amount: must be a whole number >= 0; got -6" in err
    _, err = run(*base, "--type", "traffic.violation", "--occurred-at", "2025-7-01", code=2)
    assert "<command line> is invalid" in err and "<command line>: occurred_at:" in err


@pytest.mark.parametrize(
    "amount", ["99999999999999999999", "9223372036854775807", "1_000", " 5", "-5", "5.0"]
)
def test_records_add_checks_its_amount_as_a_file_checks_a_cell(
    ledger: Path, codes: dict[str, str], tmp_path: Path, amount: str
) -> None:
    from socialcredit.store import parse_records

    row = f"x9,{codes['driver']},traffic.violation,2025-07-01,{amount}"
    with pytest.raises(InvalidInput) as caught:
        parse_records(f"id,subject,type,occurred_at,amount\n{row}\n".encode())
    [problem] = caught.value.problems
    before = _entries(ledger)
    _, err = run("records", "add", "--id", "x9", "--subject", codes["driver"], "--type",
                 "traffic.violation", "--occurred-at", "2025-07-01", "--amount", amount,
                 "--ledger", str(ledger), code=2)  # fmt: skip
    assert f"<command line>: amount: {problem.message}" in " ".join(err.split())
    assert _entries(ledger) == before


def test_subjects_add_names_the_command_line_as_records_add_does(
    ledger: Path, codes: dict[str, str]
) -> None:
    _, err = run("subjects", "add", codes["driver"], "--kind", "organization", "--opaque-codes",
                 "--ledger", str(ledger), code=2)  # fmt: skip
    said = " ".join(err.split())
    assert "<command line>: kind: subject" in said and "already registered as person" in said
    assert "<command line>:1" not in said and "(row 1)" not in said


def _subject_count(path: Path) -> int:
    with sqlite3.connect(path) as con:
        return int(con.execute("select count(*) from subjects").fetchone()[0])


def test_unreadable_input_files_are_refused_with_their_place(
    ledger: Path, codes: dict[str, str], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    driver = codes["driver"]
    records, subjects = _entries(ledger), _subject_count(ledger)
    old_mac = tmp_path / "cr.csv"
    old_mac.write_bytes(f"id,subject,type,occurred_at\rx1,{driver},a.b,2025-01-01\r".encode())
    cr_subjects = tmp_path / "cr_subjects.csv"
    cr_subjects.write_bytes(b"code,kind\r" + driver.encode() + b",person\r")
    plain = tmp_path / "subjects.csv"
    plain.write_text(f"code,kind\n{driver},person\n")
    open_quote = tmp_path / "openq.csv"
    open_quote.write_text(
        f"id,subject,type,occurred_at\nx1,{driver},a.b,2025-01-01\n"
        f'"x2,{driver},a.b,2025-01-01\nx3,{driver},a.b,2025-02-30\n'
    )
    typed = {"id": ["p1"], "subject": [driver], "type": ["a.b"], "occurred_at": ["2025-01-01"]}
    huge = tmp_path / "u64.parquet"
    pq.write_table(pa.table({**typed, "amount": pa.array([2**63], pa.uint64())}), huge)
    twice = tmp_path / "dupcol.parquet"
    columns = [pa.array(v) for v in typed.values()]
    pq.write_table(pa.Table.from_arrays([*columns, columns[0]], names=[*typed, "id"]), twice)
    at = ["--ledger", str(ledger)]
    score = ["score", "-s", "rongcheng", "--subjects", str(cr_subjects)]
    cases = [
        (["records", "import", str(old_mac), *at], f"{old_mac}:1: has a carriage return"),
        (["subjects", "import", str(cr_subjects), *at], f"{cr_subjects}:1: has a carriage"),
        ([*score, "--records", str(old_mac)], f"{cr_subjects}:1: has a carriage return"),
        ([*score[:-1], str(plain), "--records", str(old_mac)], f"{old_mac}:1: has a carriage"),
        (
            ["records", "import", str(open_quote), *at],
            f"{open_quote}:3: a quote opened on this line is never closed",
        ),
        (["records", "import", str(huge), *at], f"{huge}:1: amount: 9223372036854775808 is too"),
        (["records", "import", str(twice), *at], f"{twice}: id: column appears twice"),
    ]
    for args, expected in cases:
        result = runner.invoke(command_app(), args)
        said = " ".join(result.stderr.split())
        assert result.exit_code == 2 and expected in said, (args, result.stderr)
    assert "LF or CRLF" in " ".join(run(*cases[0][0], code=2)[1].split())
    assert "line 4 is not checked" in " ".join(run(*cases[4][0], code=2)[1].split())
    assert (_entries(ledger), _subject_count(ledger)) == (records, subjects)


def test_files_with_codes_of_any_form_are_scored_as_the_scheme_language_allows(
    tmp_path: Path,
) -> None:
    """SCHEME.md section 1: a code may be any unique string; scoring files, codes that are
    no valid number of their kind are taken as opaque codes, with a warning."""
    subjects = tmp_path / "s.csv"
    subjects.write_text("code,kind\nalice,person\nBob,person\n")
    records = tmp_path / "r.csv"
    records.write_text(
        "id,subject,type,occurred_at\nj1,alice,court.judgment_unfulfilled,2025-03-01\n"
    )
    out, err = run(
        "score", "-s", "court_dishonest_debtors", "--at", "2025-12-31", "--format", "csv",
        "--subjects", str(subjects), "--records", str(records),
    )  # fmt: skip
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(rows) == ["Bob", "alice"]
    assert rows["alice"]["lists"] == "dishonest_judgment_debtors" and not rows["Bob"]["lists"]
    assert "2 code(s)" in err and "line(s) 2, 3" in err and "opaque" in err
    subjects.write_text("code,kind\nalice,person\nBob,robot\n")  # another problem: refused
    _, err = run(
        "score", "-s", "court_dishonest_debtors", "--at", "2025-12-31", "--format", "csv",
        "--subjects", str(subjects), "--records", str(records), code=2,
    )  # fmt: skip
    assert "robot" in err


def test_output_piped_into_head_ends_with_status_0(tmp_path: Path) -> None:
    import subprocess
    import sys

    subjects = tmp_path / "subjects.csv"
    import datetime as dt

    born = {"born_from": dt.date(1960, 1, 1), "born_to": dt.date(2000, 1, 1)}
    persons = ric.generate(np.random.default_rng(5), 4000, **born)
    subjects.write_text("code,kind\n" + "".join(f"{c},person\n" for c in persons))
    records = tmp_path / "records.csv"
    records.write_text("id,subject,type,occurred_at,recorded_at,amount,ref\n")
    command = Path(sys.executable).parent / "socialcredit"
    args = [str(command), "score", "-s", "rongcheng", "--at", "2026-01-01"]
    args += ["--subjects", str(subjects), "--records", str(records), "--format", "csv"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"code,")  # 4,000 rows: more than a pipe holds
    proc.stdout.close()  # as head does after its lines
    assert proc.wait(timeout=120) == 0
    with proc.stderr:
        assert proc.stderr.read() == b""


def test_a_code_is_read_the_same_whatever_the_other_rows_of_its_file(tmp_path: Path) -> None:
    """A valid number written with a small x is normalized, and matches its records in
    either form, also when another row of the file holds an opaque code."""
    number = "00510119900101105X"
    records = tmp_path / "r.csv"
    records.write_text(
        "id,subject,type,occurred_at\n"
        f"t1,{number},traffic.violation,2025-01-01\nt2,{number.lower()},traffic.violation,2025-01-01\n"
    )
    scored = []
    for extra in ["", "P-1001,person\n"]:
        subjects = tmp_path / "s.csv"
        subjects.write_text(f"code,kind\n{number.lower()},person\n{extra}")
        out, _ = run(
            "score", "-s", "rongcheng", "--at", "2025-12-31", "--format", "csv",
            "--subjects", str(subjects), "--records", str(records),
        )  # fmt: skip
        scored.append(next(csv.DictReader(io.StringIO(out))))
    assert scored[0] == scored[1]
    assert (scored[0]["code"], scored[0]["score"]) == (number, "990")


def test_score_lists_every_problem_of_a_scheme_as_check_does(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    example = (Path(__file__).parent / "schemes" / "example.yaml").read_text()
    scheme = tmp_path / "sixty.yaml"
    scheme.write_text(example + "".join(f"k{i}: 1\n" for i in range(60)))
    _, checked = run("scheme", "check", str(scheme), code=2)
    _, scored = run(
        "score", "-s", str(scheme), "--at", "2025-12-31",
        "--subjects", str(files["subjects"]), "--records", str(files["records"]), code=2,
    )  # fmt: skip
    for err in (checked, scored):
        assert all(f"k{i}:" in err for i in range(60)) and "more" not in err


LOW_GRADES = """\
scheme: lowgrade
subjects: [person, organization]
notice_days: 7
appeal_days: 30
records:
  court.unfulfilled: {category: judicial, adverse: true}
score: {base: 100}
rules:
  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, points: -50}
grades: [{grade: ok, min: 80}, {grade: low}]
lists:
  - {id: low_list, kind: black, publish: true, when: {grade_in: [low]}}
"""


def test_text_from_files_is_printed_as_it_is_never_read_as_markup(tmp_path: Path) -> None:
    """Brackets in conditions, record ids and opaque codes are text: ``[low]`` is shown,
    ``[/x]`` does not break the output."""
    scheme = tmp_path / "low.yaml"
    scheme.write_text(LOW_GRADES)
    subjects = tmp_path / "s.csv"
    subjects.write_text("code,kind\n[/o]ORG2,organization\n")
    records = tmp_path / "r.csv"
    records.write_text(
        "id,subject,type,occurred_at\n"
        "[red]t9,[/o]ORG2,court.unfulfilled,2025-11-02\n[/x],[/o]ORG2,court.unfulfilled,2025-11-03\n"
    )
    given = ["-s", str(scheme), "--at", "2025-12-31", "--opaque-codes"]
    given += ["--subjects", str(subjects), "--records", str(records)]
    out, _ = run("lookup", "[/o]ORG2", *given)
    assert out.splitlines() == [
        "[/o]ORG2 (organization)",
        "  on the published list low_list of lowgrade, because {grade_in: [low]}",
    ]
    out, _ = run("explain", "[/o]ORG2", *given)
    assert "[/o]ORG2 (organization)" in out and "{grade_in: [low]}" in out
    assert "[red]t9, [/x]" in out
    out, _ = run("score", *given, "--format", "table")
    assert "[/o]ORG2" in out

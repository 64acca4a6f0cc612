"""Specification of ``ledger verify`` and of reading a damaged SQLite ledger:
socialcredit.store.verify, .sqlite and .sqlite_scan.

SQLite keeps a value of any type in any column: whoever writes to the file behind the
ledger's back can store text or a real number where an integer belongs, a hash of another
length or type, a day number no date has, or text that is no UTF-8. ``verify`` names the
first entry holding such a value, as it names any other change; reading the records
(``score``, ``explain``) refuses the ledger and says to run ``ledger verify``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import socialcredit.store.sqlite as sqlite_store
import socialcredit.store.sqlite_scan as sqlite_scan
from socialcredit.cli.app import command_app
from socialcredit.errors import LedgerError
from socialcredit.ids import mask
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.store import Loaded, SqliteLedger, parse_records
from socialcredit.store.base import VerifyReport

ORG = "91110000802100433B"  # a standard valid USCC
PERSON = "11010519491231002X"  # a standard valid resident identity number
OTHER = "91110000600037341L"  # another valid USCC
HEADER = "id,subject,type,occurred_at,recorded_at,amount,ref"

runner = CliRunner()


def beyond(day: dt.date) -> int:
    """A day number that is ``day`` in its lowest 32 bits, and no date."""
    return (day - dt.date(1970, 1, 1)).days + 2**32


def records_csv(*lines: str) -> Loaded:
    return parse_records(("\n".join([HEADER, *lines]) + "\n").encode(), source="batch.csv")


def subjects_table(*pairs: tuple[str, str]) -> pa.Table:
    return pa.table({"code": [c for c, _ in pairs], "kind": [k for _, k in pairs]})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A ledger file: subjects ORG and PERSON (entries 1, 2), records r1 of ORG (3), r2
    and r3 of PERSON (4, 5), r3 naming r2 as its ref; two writes logged."""
    made = tmp_path / "ledger.db"
    with SqliteLedger.create(made) as ledger:
        ledger.add_subjects(subjects_table((ORG, "organization"), (PERSON, "person")))
        ledger.append(
            records_csv(
                f"r1,{ORG},court.unfulfilled,2024-01-10,,5000,",
                f"r2,{PERSON},traffic.red_light,2024-02-01,2024-02-03,,",
                f"r3,{PERSON},appeal.upheld,2024-03-01,,,r2",
            )
        )
    return made


def tamper(path: Path, *statements: str) -> None:
    """Change the file as an intruder with write access would: the triggers first."""
    db = sqlite3.connect(path)
    try:
        triggers = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            db.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def verify(path: Path) -> VerifyReport:
    with SqliteLedger.open(path) as ledger:
        return ledger.verify()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(command_app(), list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# -- verify: values of the wrong type -------------------------------------------------------

WRONG_TYPE = "value of the wrong type"

TAMPERED = {
    "amount as text": (
        "UPDATE records SET amount = 'abc' WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "(record 'r2') has amount stored as text 'abc', not as an integer"],
    ),
    "a date as text": (
        "UPDATE records SET occurred_at = '2025-01-01' WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "occurred_at stored as text '2025-01-01', not as an integer"],
    ),
    "a link as text": (
        "UPDATE records SET link = 'x' WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "link stored as text 'x'"],
    ),
    "amount beyond 64 bits, a real": (
        "UPDATE records SET amount = 99999999999999999999 WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "amount stored as the real number 1e+20"],
    ),
    "amount as a real": (
        "UPDATE records SET amount = 1.5 WHERE id = 'r1'",
        3,
        [WRONG_TYPE, "amount stored as the real number 1.5"],
    ),
    "a ref as text": (
        "UPDATE records SET ref = 'r2' WHERE id = 'r3'",
        5,
        [WRONG_TYPE, "(record 'r3') has ref stored as text 'r2'"],
    ),
    "an empty hash": (
        "UPDATE records SET hash = x'' WHERE id = 'r2'",
        4,
        ["hash of the wrong length", "has a stored hash of 0 bytes, not 32"],
    ),
    "a hash one byte longer": (
        "UPDATE records SET hash = CAST(hash || x'00' AS BLOB) WHERE id = 'r1'",
        3,
        ["hash of the wrong length", "has a stored hash of 33 bytes, not 32"],
    ),
    "a hash made text by ||": (
        "UPDATE records SET hash = hash || x'00' WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "hash stored as text of 33 bytes, not as a blob of 32 bytes"],
    ),
    "a hash as hex text": (
        "UPDATE records SET hash = hex(hash) WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "hash stored as text of 64 bytes"],
    ),
    "a day beyond 32 bits": (
        # read as 32 bits, it would be the day it was: the hash would still match
        "UPDATE records SET recorded_at = recorded_at + 4294967296 WHERE id = 'r2'",
        4,
        [
            "value out of range",
            f"recorded_at stored as {beyond(dt.date(2024, 2, 3))}, a day number beyond any date",
        ],
    ),
    "an id that is no UTF-8": (
        "UPDATE records SET id = CAST(x'ff41' AS TEXT) WHERE id = 'r2'",
        4,
        [WRONG_TYPE, "has id stored as text that is no UTF-8"],
    ),
    "a subject's hash as an integer": (
        "UPDATE subjects SET hash = 12345678901234 WHERE seq = 2",
        2,
        [WRONG_TYPE, "has its hash stored as the integer 12345678901234"],
    ),
    "a subject's link as text": (
        "UPDATE subjects SET link = 'x' WHERE seq = 1",
        1,
        [WRONG_TYPE, f"(subject '{mask(ORG, 'person')}') has link stored as text 'x'"],
    ),
    "a subject's code that is no UTF-8": (
        "UPDATE subjects SET code = CAST(x'ff41' AS TEXT) WHERE seq = 2",
        2,
        [WRONG_TYPE, "has code stored as text that is no UTF-8"],
    ),
    "a subject's kind as a blob": (
        "UPDATE subjects SET kind = CAST('person' AS BLOB) WHERE seq = 2",
        2,
        [WRONG_TYPE, "has kind stored as a blob of 6 bytes, not as text"],
    ),
}


@pytest.mark.parametrize(("statement", "entry", "said"), TAMPERED.values(), ids=TAMPERED.keys())
def test_verify_names_the_entry_with_a_value_of_the_wrong_type(
    path: Path, statement: str, entry: int, said: list[str]
) -> None:
    tamper(path, statement)
    report = verify(path)
    assert not report.ok
    assert (report.first_bad, report.entries_checked) == (entry, entry - 1)
    assert f"entry {entry} (" in report.reason
    for words in said:
        assert words in report.reason
    assert report.reason.endswith("it was changed after it was appended")


def test_a_hash_of_another_length_does_not_shift_the_hashes_after_it(path: Path) -> None:
    """The hashes of a range are read together: one of 33 bytes must not move the next
    entry's hash by a byte (which named a later entry, or the first)."""
    tamper(path, "UPDATE records SET hash = CAST(hash || x'00' AS BLOB) WHERE id = 'r2'")
    report = verify(path)
    assert (report.first_bad, report.key) == (4, "r2")
    assert report.reason.startswith("hash of the wrong length")


def test_an_earlier_changed_entry_is_still_named_first(path: Path) -> None:
    tamper(
        path,
        "UPDATE records SET amount = 1 WHERE id = 'r1'",
        "UPDATE records SET amount = 'abc' WHERE id = 'r3'",
    )
    report = verify(path)
    assert (report.first_bad, report.key) == (3, "r1")
    assert report.reason.startswith("content hash mismatch")


def test_a_number_used_twice_is_named_as_such_whichever_holds_a_wrong_value(
    path: Path,
) -> None:
    """The faults of entries go by place: a subject given the number of record r2, its
    hash a single byte, does not lend its fault to r2."""
    tamper(
        path,
        f"INSERT INTO subjects (seq, code, kind, hash, link) VALUES (4, '{OTHER}', "
        "'organization', x'00', 0)",
    )
    report = verify(path)
    assert (report.first_bad, report.entries_checked) == (4, 4)
    assert report.reason == "sequence number 4 is used twice"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE types SET code = -1000 WHERE code = 1",
        "UPDATE types SET code = 1000000000000 WHERE code = 1",
        "UPDATE types SET name = x'ff' WHERE code = 1",
    ],
)
def test_a_changed_type_code_or_name_names_the_first_record_of_it(
    path: Path, statement: str
) -> None:
    tamper(path, statement)
    report = verify(path)
    assert (report.first_bad, report.key) == (3, "r1")
    assert "refers to a subject, type or record that does not exist" in report.reason


def test_a_logged_head_that_is_no_hash_is_named(path: Path) -> None:
    tamper(path, "UPDATE batches SET head = 'x' WHERE batch = 2")
    report = verify(path)
    assert report.first_bad == 5
    assert "does not match the hash the log of batches recorded" in report.reason


def test_a_write_logged_without_a_last_entry_leaves_its_entries_past_the_log(
    path: Path,
) -> None:
    tamper(path, "UPDATE batches SET last_seq = 'x' WHERE batch = 2")
    report = verify(path)
    assert (report.first_bad, report.key) == (3, "r1")
    assert "past the log of batches" in report.reason
    assert "the last entry it records is 2" in report.reason


def test_the_command_reports_a_value_of_the_wrong_type(path: Path) -> None:
    tamper(path, "UPDATE records SET amount = 'abc' WHERE id = 'r2'")
    code, _, err = run("ledger", "verify", "--ledger", str(path))
    assert code == 1
    assert err.startswith(
        "BROKEN at entry 4: value of the wrong type: entry 4 (record 'r2') has amount stored "
        "as text 'abc'"
    )
    assert "Traceback" not in err


def test_well_typed_ledgers_are_read_column_wise(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values are read row by row only when the column-wise reading fails."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("read row by row")

    monkeypatch.setattr(sqlite_scan, "_scan_carefully", refused)
    monkeypatch.setattr(sqlite_scan, "_subjects_carefully", refused)
    monkeypatch.setattr(sqlite_scan, "_careful_rows", refused)
    with SqliteLedger.open(path) as ledger:
        assert ledger.verify().ok
        assert ledger.records().column("id").to_pylist() == ["r1", "r2", "r3"]
        assert ledger.records_of(PERSON).column("id").to_pylist() == ["r2", "r3"]
        assert ledger.subjects().column("code").to_pylist() == [ORG, PERSON]


# -- reading a damaged ledger ---------------------------------------------------------------

DAMAGED = {
    "amount as text": (
        "UPDATE records SET amount = 'abc' WHERE id = 'r2'",
        "entry 4 (record 'r2') has amount stored as text 'abc', not as an integer",
    ),
    "a day beyond 32 bits": (
        "UPDATE records SET occurred_at = occurred_at + 4294967296 WHERE id = 'r2'",
        f"entry 4 (record 'r2') has occurred_at stored as {beyond(dt.date(2024, 2, 1))}",
    ),
    "an id that is no UTF-8": (
        "UPDATE records SET id = CAST(x'ff41' AS TEXT) WHERE id = 'r3'",
        "entry 5 (record '\ufffdA') has id stored as text that is no UTF-8",
    ),
}


@pytest.mark.parametrize(("statement", "said"), DAMAGED.values(), ids=DAMAGED.keys())
@pytest.mark.parametrize("reading", ["records", "records_of"])
def test_reading_records_refuses_a_damaged_ledger(
    path: Path, statement: str, said: str, reading: str
) -> None:
    tamper(path, statement)
    with SqliteLedger.open(path) as ledger, pytest.raises(LedgerError) as refused:
        ledger.records() if reading == "records" else ledger.records_of(PERSON)
    message = str(refused.value)
    assert message.startswith(f"the ledger is damaged: {said}")
    assert "Run 'socialcredit ledger verify'" in message


def test_reading_records_refuses_a_record_of_a_type_that_is_gone(path: Path) -> None:
    tamper(path, "DELETE FROM types WHERE code = 2")  # traffic.red_light
    with SqliteLedger.open(path) as ledger, pytest.raises(LedgerError) as refused:
        ledger.records()
    assert str(refused.value).startswith(
        "the ledger is damaged: entry 4 (record 'r2') refers to a subject or type that does "
        "not exist"
    )


def test_reading_subjects_refuses_a_code_that_is_no_text(path: Path) -> None:
    tamper(path, "UPDATE subjects SET code = CAST(x'ff41' AS TEXT) WHERE seq = 1")
    with SqliteLedger.open(path) as ledger, pytest.raises(LedgerError) as refused:
        ledger.subjects()
    shown = mask("\ufffdA", "person")  # the code as decoded, masked as every code shown
    assert str(refused.value).startswith(
        f"the ledger is damaged: entry 1 (subject '{shown}') has code stored as text that is "
        "no UTF-8"
    )


@pytest.mark.parametrize("command", ["score", "explain"])
def test_score_and_explain_refuse_a_damaged_ledger(path: Path, command: str) -> None:
    tamper(path, "UPDATE records SET amount = 'abc' WHERE id = 'r2'")
    subject = [PERSON] if command == "explain" else []
    code, _, err = run(
        command, *subject, "--scheme", "rongcheng", "--ledger", str(path), "--at", "2024-06-01"
    )
    assert code == 2
    assert err.startswith("error: the ledger is damaged: entry 4 (record 'r2') has amount")
    assert "Run 'socialcredit ledger verify'" in err
    assert "Traceback" not in err


def test_records_read_in_parallel_stop_at_their_snapshot(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks read on connections of their own end at the last entry of the reading's
    snapshot: a write in between adds none of its records (of a subject not yet read)."""
    monkeypatch.setattr(sqlite_store, "_SCAN", 4)  # chunks of entries 1-4 and 5-8
    monkeypatch.setattr(sqlite_store, "_READERS", 2)
    read_names = sqlite_store.read_names

    def names_then_a_write(db: sqlite3.Connection) -> sqlite_scan.Names:
        names = read_names(db)
        with SqliteLedger.open(path) as writer:
            writer.add_subjects(subjects_table((OTHER, "organization")))  # entry 6
            writer.append(records_csv(f"r4,{OTHER},court.unfulfilled,2024-04-01,,100,"))  # 7
        return names

    monkeypatch.setattr(sqlite_store, "read_names", names_then_a_write)
    with SqliteLedger.open(path) as ledger:
        records = ledger.records()
    assert records.schema == RECORDS_SCHEMA
    assert records.column("id").to_pylist() == ["r1", "r2", "r3"]

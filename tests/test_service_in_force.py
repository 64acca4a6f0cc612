"""A scheme newly in force over records already in the ledger: their notices come first,
and they count from ``notice_days`` after it (docs/service.md, "A scheme newly in
force") -- on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import (
    SERVICE_SCHEME,
    FakeClock,
    org_codes,
    person_codes,
    put_in_force,
    while_put_in_force,
)
from fastapi.testclient import TestClient

from socialcredit.api import create_app
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.service import Service, Settings
from socialcredit.service.activation import in_force, retire
from socialcredit.service.appeals import contest, decide_appeal, sweep, sweep_if_due
from socialcredit.service.credentials import Principal
from socialcredit.service.decisions import decide
from socialcredit.service.errors import Conflict, Outdated
from socialcredit.service.ingest import NewRecord, NewSubject, ingest
from socialcredit.service.notices import deliver
from socialcredit.service.portal import own_records, own_states
from socialcredit.service.sinks import MemorySink
from socialcredit.service.states import MARK_SECONDS
from socialcredit.store import open_ledger
from socialcredit.store.service_db import ServiceDB, upgrade

START = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)


def row(
    i: str, subject: str, type_: str, occurred: str, recorded: str, **more: Any
) -> dict[str, Any]:
    return {
        "id": i,
        "subject": subject,
        "type": type_,
        "occurred_at": dt.date.fromisoformat(occurred),
        "recorded_at": dt.date.fromisoformat(recorded),
        "amount": more.get("amount", 0),
        "ref": more.get("ref"),
    }


def imported(database: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """A ledger with records imported before any service ran (as ``records import``
    writes them); the scheme file and the codes of three persons."""
    scheme = tmp_path / "town.yaml"
    scheme.write_text(SERVICE_SCHEME)
    upgrade(database)
    people = person_codes(3)
    org = org_codes(1)[0]
    rows = [
        # adverse, inside its window: noticed, counts 7 days after the scheme came in
        row("j1", people[0], "court.unfulfilled", "2025-01-05", "2025-01-10"),
        # adverse, but ended by a later record: no notice
        row("j2", people[1], "court.unfulfilled", "2025-01-05", "2025-01-10"),
        row("f2", people[1], "court.fulfilled", "2025-02-01", "2025-02-01", ref="j2"),
        # adverse, out of every window by then (730 days): no notice
        row("j3", people[2], "court.unfulfilled", "2022-01-01", "2022-01-02"),
        # not adverse: counts at once, as recorded
        row("d1", people[2], "charity.donation", "2025-02-01", "2025-02-01", amount=3000),
        # an organization's red light: noticed too (the scheme scores organizations)
        row("r1", org, "traffic.red_light", "2025-02-10", "2025-02-11"),
        # adverse, ended only after it takes effect: noticed (it counts until then)
        row("j4", people[1], "court.unfulfilled", "2025-01-05", "2025-01-10"),
        row("f4", people[1], "court.fulfilled", "2025-06-01", "2025-06-01", ref="j4"),
        # recorded after the day in force (a date the ledger takes): noticed, in effect
        # seven days after its own recording, inside its window then
        row("t5", people[0], "traffic.red_light", "2024-03-20", "2025-03-10"),
        # inside its window on the day in force, out of it by the day it would take
        # effect: no notice, and it never counts
        row("k1", people[2], "court.unfulfilled", "2023-03-05", "2023-03-06"),
        # recorded before 1970: its appeal window closed then (a day number below 0)
        row("o1", people[2], "charity.donation", "1969-06-01", "1969-06-01", amount=100),
    ]
    subjects = pa.table({"code": [*people, org], "kind": ["person"] * 3 + ["organization"]})
    with open_ledger(database) as ledger:
        ledger.add_subjects(subjects, source="command line")
        ledger.append(
            pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA),
            source=str(tmp_path / "private" / "records.csv"),
        )
    return scheme, people


def lists_of(svc: Service, code: str, scheme: str = "town") -> list[str]:
    (state,) = [s for s in own_states(svc, code) if s.scheme == scheme]
    return state.lists


def test_records_already_there_get_notice_and_count_from_it(
    service_db: str, tmp_path: Path
) -> None:
    scheme, people = imported(service_db, tmp_path)
    clock, sink = FakeClock(START), MemorySink()
    svc = Service.open(Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=sink)
    try:
        (row_,) = in_force(svc.db).values()
        assert (row_.scheme, row_.since, row_.existing, row_.notices) == (
            "town",
            dt.date(2025, 3, 1),
            "notify",
            4,
        )
        assert svc.schemes["town"].in_force == dt.date(2025, 3, 1)
        # delivered as the service opened, each naming who imported the record
        sent = {n["record"]: n for n in sink.sent}
        assert set(sent) == {"j1", "r1", "j4", "t5"}
        body = sent["j1"]["content"]
        assert sent["j1"]["takes_effect_on"] == "2025-03-08" == body["takes_effect_on"]
        assert body["record"]["recorded_at"] == "2025-01-10"
        assert body["agency"] == "imported from records.csv"  # not the operator's path
        assert "until 2025-03-31" in body["how_to_appeal"]  # 30 days from the notice
        assert sent["t5"]["takes_effect_on"] == "2025-03-17"
        assert "until 2025-04-09" in sent["t5"]["content"]["how_to_appeal"]
        assert deliver(svc) == (0, 0)

        def why(code: str) -> dict[str, str]:
            explained = own_states(svc, code)[0].explanation
            return {r["id"]: r["reason"] for r in explained["not_counted"]}

        # the debt does not count during the notice; the donation counts at once
        assert lists_of(svc, people[0]) == []
        assert (
            why(people[0])["j1"]
            == "not yet in effect: in its notice period; it counts from 2025-03-08"
        )
        assert why(people[2])["k1"] == (
            "it never counts: it would take effect on 2025-03-08, after it leaves the window "
            "of every rule that uses its type on 2025-03-04"
        )
        assert own_states(svc, people[2])[0].score == 1030
        clock.advance(days=6)
        assert lists_of(svc, people[0]) == []
        clock.advance(days=1)
        assert lists_of(svc, people[0]) == ["debtors"]
        # the subject may contest it within appeal_days of the notice, though it was
        # recorded 80 days before; a record given no notice keeps the window of its
        # recording (long past for a record out of every window)
        (own,) = [r for r in own_records(svc, people[0]) if r.id == "j1"]
        assert own.appeal_until == "2025-03-31"
        assert contest(svc, people[0], "j1", "it was paid").record == "j1"
        old = {r.id: r.appeal_until for r in own_records(svc, people[2])}
        assert old == {
            "j3": "2022-02-01",
            "d1": "2025-03-03",
            "k1": "2023-04-05",
            "o1": "1969-07-01",
        }
        for rid, until in (("j3", "2022-02-01"), ("k1", "2023-04-05"), ("o1", "1969-07-01")):
            with pytest.raises(Conflict, match=f"until {until}"):
                contest(svc, people[2], rid, "too old to count")
        # a record ended before it would take effect got no notice: its window stays
        ended = {r.id: r.appeal_until for r in own_records(svc, people[1])}
        assert ended["j2"] == "2025-02-09" and ended["j4"] == "2025-03-31"
        with pytest.raises(Conflict, match="until 2025-02-09"):
            contest(svc, people[1], "j2", "it was paid")
        # the explanation of a record given no notice says why it does not count
        assert why(people[1])["j2"].startswith("ended on 2025-02-01")
        assert "j4" not in why(people[1])  # in effect since 2025-03-08, until f4 ends it
        assert why(people[2])["j3"] == "outside the window of every rule that uses its type"
        assert why(people[2])["k1"] == "outside the window of every rule that uses its type"
    finally:
        svc.close()

    # a later start changes nothing: no notice again, the same day in force
    sink = MemorySink()
    clock.advance(days=40)
    svc = Service.open(Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=sink)
    try:
        assert svc.schemes["town"].in_force == dt.date(2025, 3, 1)
        assert [n["kind"] for n in sink.sent if n["kind"] == "adverse"] == []
        assert len(in_force(svc.db)) == 1
        with pytest.raises(Conflict, match="2025-03-31"):  # its window has passed
            contest(svc, people[0], "j1", "again")
    finally:
        svc.close()


def test_counted_at_once_by_choice_with_no_notice(service_db: str, tmp_path: Path) -> None:
    scheme, people = imported(service_db, tmp_path)
    sink = MemorySink()
    settings = Settings(database=service_db, schemes=[str(scheme)], existing_records="count")
    svc = Service.open(settings, clock=FakeClock(START), sink=sink)
    try:
        (row_,) = in_force(svc.db).values()
        assert (row_.since, row_.existing, row_.notices) == (None, "count", 0)
        assert svc.schemes["town"].in_force is None
        assert sink.sent == []
        assert lists_of(svc, people[0]) == ["debtors"]
    finally:
        svc.close()


def test_the_schemes_page_of_the_api_shows_the_day_in_force(
    service_db: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from socialcredit.api import create_app

    scheme, _ = imported(service_db, tmp_path)
    svc = Service.open(
        Settings(database=service_db, schemes=[str(scheme), "rongcheng"]),
        clock=FakeClock(START),
        sink=MemorySink(),
    )
    try:
        with TestClient(create_app(svc)) as client:
            listed = client.get("/v1/schemes").json()
            shown = {s["scheme"]: s["in_force"] for s in listed}
            assert shown == {"town": "2025-03-01", "rongcheng": "2025-03-01"}
            town = svc.schemes["town"].version
            assert [s["versions"] for s in listed if s["scheme"] == "town"] == [
                [
                    {
                        "version": town,
                        "first_run": "2025-03-01T10:00:00+00:00",
                        "existing_records": "unchecked",
                    }
                ]
            ]
            text = client.get(f"/v1/schemes/town/versions/{town}")
            assert text.status_code == 200 and text.text == SERVICE_SCHEME
            assert text.headers["content-type"].startswith("text/plain")
            path = client.get("/openapi.json").json()["paths"]
            documented = path["/v1/schemes/{scheme}/versions/{version}"]["get"]["responses"]
            assert list(documented["200"]["content"]) == ["text/plain"]
            assert list(documented["404"]["content"]) == ["application/json"]
            for path in ("town/versions/0000", f"nowhere/versions/{town}"):
                assert client.get(f"/v1/schemes/{path}").status_code == 404
    finally:
        svc.close()


def test_records_imported_under_schemes_in_force_are_warned_of(
    service_db: str, tmp_path: Path
) -> None:
    """Before a service ran a scheme, an import is the ledger's history (noticed when the
    scheme comes into force); after, the import says its records got no notice."""
    from typer.testing import CliRunner

    from socialcredit.cli.app import command_app

    scheme, people = imported(service_db, tmp_path)
    more = tmp_path / "more.csv"
    more.write_text(
        "id,subject,type,occurred_at,recorded_at\n"
        f"late1,{people[0]},traffic.red_light,2025-02-01,2025-02-02\n"
    )
    runner = CliRunner()
    before = runner.invoke(command_app(), ["records", "import", str(more), "--ledger", service_db])
    assert before.exit_code == 0, before.output
    assert "warning" not in before.output
    Service.open(
        Settings(database=service_db, schemes=[str(scheme)]),
        clock=FakeClock(START),
        sink=MemorySink(),
    ).close()
    more.write_text(
        "id,subject,type,occurred_at,recorded_at\n"
        f"late2,{people[0]},traffic.red_light,2025-02-01,2025-02-02\n"
    )
    after = runner.invoke(command_app(), ["records", "import", str(more), "--ledger", service_db])
    assert after.exit_code == 0, after.output
    assert "town (since 2025-03-01)" in after.output and "got no notice" in after.output
    again = runner.invoke(command_app(), ["records", "import", str(more), "--ledger", service_db])
    assert "warning" not in again.output  # nothing appended


def test_only_a_service_that_runs_puts_a_scheme_in_force(service_db: str, tmp_path: Path) -> None:
    """The command line's tools that open the service to sign a subject in, deliver or
    sweep decide nothing: the first server does."""
    from typer.testing import CliRunner

    from socialcredit.cli.app import command_app
    from socialcredit.store.service_db import open_service_db

    scheme, people = imported(service_db, tmp_path)
    runner = CliRunner()
    for args in (
        ["subject", "token", people[0]],
        ["notices", "deliver"],
        ["appeals", "sweep"],
    ):
        done = runner.invoke(command_app(), [*args, "-d", service_db, "-s", str(scheme)])
        assert done.exit_code == 0, done.output
    db = open_service_db(service_db)
    try:
        assert in_force(db) == {}
        assert db.query("SELECT count(*) FROM svc_notices")[0][0] == 0
    finally:
        db.close()


def test_an_upgraded_database_keeps_counting_what_its_schemes_counted(
    service_db: str, tmp_path: Path
) -> None:
    """A database that ran a scheme before version 7 (with no adverse notice to show
    for it: its records imported) keeps it counting every record as recorded; a scheme
    added later is put in force as any other."""
    scheme = tmp_path / "town.yaml"
    scheme.write_text(SERVICE_SCHEME)
    assert upgrade(service_db, to=6).applied == [1, 2, 3, 4, 5, 6]
    person = person_codes(1)[0]
    with open_ledger(service_db) as ledger:
        ledger.add_subjects(pa.table({"code": [person], "kind": ["person"]}), source="x")
        ledger.append(
            pa.Table.from_pylist(
                [row("j1", person, "court.unfulfilled", "2025-01-05", "2025-01-10")],
                schema=RECORDS_SCHEMA,
            ),
            source="x",
        )
    assert upgrade(service_db).applied == [7, 8]
    clock, sink = FakeClock(START), MemorySink()
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=sink
    ) as svc:
        assert in_force(svc.db)["town"].existing == "before"
        assert svc.schemes["town"].in_force is None
        assert lists_of(svc, person) == ["debtors"] and sink.sent == []
    clock.advance(days=1)
    added = tmp_path / "county.yaml"
    added.write_text(SERVICE_SCHEME.replace("scheme: town", "scheme: county"))
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme), str(added)]),
        clock=clock,
        sink=sink,
    ) as svc:
        rows = in_force(svc.db)
        assert (rows["town"].existing, rows["county"].existing) == ("before", "notify")
        assert rows["county"].since == dt.date(2025, 3, 2)
        assert lists_of(svc, person) == ["debtors"]  # as before the upgrade
        # the added scheme gave notice of the judgment, and lists from 7 days later
        assert [n["record"] for n in sink.sent] == ["j1"]
        assert lists_of(svc, person, "county") == []
        clock.advance(days=7)
        assert lists_of(svc, person, "county") == ["debtors"]


@pytest.mark.parametrize(
    ("old", "new", "noticed"),
    [
        ("notice_days: 7", "notice_days: 7", True),
        ("notice_days: 7", "notice_days: 10000000", False),  # in effect after the last date
        ("window_days: 730", "window_days: 10000000000", True),  # past 32 bits
    ],
)
def test_a_scheme_whose_days_pass_the_calendar_is_put_in_force(
    service_db: str, tmp_path: Path, old: str, new: str, noticed: bool
) -> None:
    scheme, _ = imported(service_db, tmp_path)
    scheme.write_text(SERVICE_SCHEME.replace(old, new))
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme)]),
        clock=FakeClock(START),
        sink=MemorySink(),
    ) as svc:
        assert (in_force(svc.db)["town"].notices > 0) == noticed


def test_the_table_of_days_in_force_cannot_be_rewritten(service_db: str, tmp_path: Path) -> None:
    scheme, _ = imported(service_db, tmp_path)
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme)]),
        clock=FakeClock(START),
        sink=MemorySink(),
    ) as svc:
        statements = [
            "UPDATE svc_schemes_in_force SET since = NULL",
            "DELETE FROM svc_schemes_in_force",
        ]
        if svc.db.dialect == "sqlite":  # a replace deletes the row it replaces
            statements.append(
                "INSERT OR REPLACE INTO svc_schemes_in_force (scheme, version, since, "
                "existing, notices, at) VALUES ('town', '', NULL, 'count', 0, 'now')"
            )
        for statement in statements:
            with pytest.raises(Exception, match="append-only"):
                svc.db.execute(statement)
        assert in_force(svc.db)["town"].since == dt.date(2025, 3, 1)


def test_a_start_refused_for_its_settings_puts_nothing_in_force(
    service_db: str, tmp_path: Path
) -> None:
    from socialcredit.errors import SocialCreditError
    from socialcredit.store.service_db import open_service_db

    scheme, _ = imported(service_db, tmp_path)
    settings = Settings(
        database=service_db,
        schemes=[str(scheme)],
        notice_sink="file",
        notice_file=tmp_path / "no such folder" / "notices.jsonl",
    )
    with pytest.raises(SocialCreditError, match="does not exist"):
        Service.open(settings, clock=FakeClock(START))
    db = open_service_db(service_db)
    try:
        assert in_force(db) == {}
        assert db.query("SELECT count(*) FROM svc_notices")[0][0] == 0
    finally:
        db.close()


def test_no_connection_replaces_a_day_in_force(tmp_path: Path) -> None:
    """SQLite: a REPLACE, from any connection (the sqlite3 shell's too), is refused."""
    import sqlite3

    database = str(tmp_path / "service.ledger")
    scheme, _ = imported(database, tmp_path)
    Service.open(
        Settings(database=database, schemes=[str(scheme)]),
        clock=FakeClock(START),
        sink=MemorySink(),
    ).close()
    plain = sqlite3.connect(database)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            plain.execute(
                "INSERT OR REPLACE INTO svc_schemes_in_force (scheme, version, since, "
                "existing, notices, at) VALUES ('town', '', '2020-01-01', 'count', 0, 'now')"
            )
    finally:
        plain.close()


def test_a_record_no_write_in_the_log_covers_is_traced_by_its_id(
    service_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The senders of the records come from the log of batches in ledger order; where
    that gives fewer rows than the records (a write missing from the log), each record
    is looked up by id instead, with the same names."""
    from socialcredit.store.base import Ledger

    scheme, _ = imported(service_db, tmp_path)
    monkeypatch.setattr(Ledger, "record_sources", lambda self: pa.array([], pa.string()))
    sink = MemorySink()
    Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=FakeClock(START), sink=sink
    ).close()
    assert {n["content"]["agency"] for n in sink.sent} == {"imported from records.csv"}
    assert len(sink.sent) == 4


@pytest.mark.parametrize("odd", [False, True])  # a file name with a tab: row by row
def test_each_notice_names_the_sender_of_its_own_record(
    service_db: str, tmp_path: Path, odd: bool
) -> None:
    scheme, people = imported(service_db, tmp_path)
    senders = ["traffic-2025-03.csv", 'a "quoted" \\ name.parquet', "交警.csv"]
    if odd:
        senders[1] = "a\ttab.csv"
    with open_ledger(service_db) as ledger:
        for i, source in enumerate(senders):
            ledger.append(
                pa.Table.from_pylist(
                    [row(f"s{i}", people[i], "traffic.red_light", "2025-02-20", "2025-02-21")],
                    schema=RECORDS_SCHEMA,
                ),
                source=str(tmp_path / source),
            )
    sink = MemorySink()
    Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=FakeClock(START), sink=sink
    ).close()
    named = {n["record"]: n["content"]["agency"] for n in sink.sent}
    assert {rid: who for rid, who in named.items() if rid.startswith("s")} == {
        f"s{i}": f"imported from {source}" for i, source in enumerate(senders)
    }
    assert named["j1"] == "imported from records.csv"


SPEEDING = (
    "  traffic.speeding: {category: traffic, adverse: true}\n"
    "  charity.donation:  {category: charity}\n"
)
SPEEDING_RULE = (
    "  - {id: speeding, types: [traffic.speeding], window_days: 365, measure: count, "
    "points: -5}\n  - {id: donations,"
)


def speeding(text: str) -> str:
    """The test scheme with a rule counting an adverse type it did not know."""
    text = text.replace("  charity.donation:  {category: charity}\n", SPEEDING)
    return text.replace("  - {id: donations,", SPEEDING_RULE)


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (lambda t: t.replace("title: A town's", "title: The town's"), None),
        # milder: fewer points, a lower cap, a shorter window, more time to appeal
        (lambda t: t.replace("points: -5, cap: 50", "points: -3, cap: 20"), None),
        (lambda t: t.replace("window_days: 730", "window_days: 365"), None),
        (lambda t: t.replace("appeal_days: 30", "appeal_days: 60"), None),
        # an adverse type newly counted, of which the ledger holds no record
        (speeding, None),
        (
            lambda t: t.replace("points: -5, cap: 50", "points: -10, cap: 50"),
            "traffic.red_light: rule red_lights gives -10 points, -5 under the earlier",
        ),
        (
            lambda t: t.replace("points: -5, cap: 50", "points: -5, cap: 80"),
            "rule red_lights is capped at 80, at 50 under the earlier",
        ),
        (
            lambda t: t.replace(
                "window_days: 365, measure: count", "window_days: 730, measure: count"
            ),
            "rule red_lights counts for 730 days, for 365 days under the earlier",
        ),
        (
            lambda t: t.replace("window_days: 365, measure: count", "measure: count"),
            "rule red_lights counts for no window, for 365 days",
        ),
        (
            lambda t: t.replace("notice_days: 7", "notice_days: 3"),
            "traffic.red_light takes effect 3 days after it is recorded, 7 under the earlier",
        ),
        (  # no longer adverse: in effect at once, before the day its notice named
            lambda t: t.replace(
                "traffic.red_light: {category: traffic, adverse: true}",
                "traffic.red_light: {category: traffic}",
            ),
            "traffic.red_light takes effect 0 days after it is recorded, 7 under the earlier",
        ),
        # less time to contest: the deadlines notices stated are kept all the same
        (lambda t: t.replace("appeal_days: 30", "appeal_days: 10"), None),
        (lambda t: t.replace("points: -5, cap: 50", "points: -5, per: 1, cap: 50"), None),
        (
            lambda t: t.replace(
                "court.fulfilled:   {category: judicial}",
                "court.fulfilled: {category: judicial, adverse: true}",
            ).replace("types: [court.unfulfilled]", "types: [court.unfulfilled, court.fulfilled]"),
            "rule unfulfilled counts court.fulfilled, which the earlier's did not",
        ),
        (
            lambda t: t.replace(
                "when: {list: debtors}", "when: {rule: red_lights, at_least: 1}"
            ).replace(
                "{id: debtors, kind: black, when: {rule: unfulfilled, at_least: 1}",
                "{id: debtors, kind: black, when: {any: [{rule: unfulfilled, at_least: 1}, "
                "{rule: red_lights, at_least: 3}]}",
            ),
            "traffic.red_light may place its subject on debtors, which the earlier did not",
        ),
    ],
)
def test_a_later_version_may_not_count_what_the_notices_did_not_announce(
    service_db: str, tmp_path: Path, change: Any, refused: str | None
) -> None:
    from socialcredit.errors import RefusedScheme
    from socialcredit.service.activation import versions

    scheme, people = imported(service_db, tmp_path)
    clock, sink = FakeClock(START), MemorySink()
    settings = Settings(database=service_db, schemes=[str(scheme)])
    with Service.open(settings, clock=clock, sink=sink) as svc:
        first = svc.schemes["town"].version
    clock.advance(days=20)
    scheme.write_text(change(SERVICE_SCHEME))
    if refused is None:
        with Service.open(settings, clock=clock, sink=sink) as svc:
            run = versions(svc.db, "town")
            assert [v.version for v in run] == [first, svc.schemes["town"].version]
            assert run[1].text == scheme.read_text() and run[1].at.startswith("2025-03-21")
            assert lists_of(svc, people[0]) == ["debtors"]  # what was in force goes on
        return
    with pytest.raises(RefusedScheme, match=refused) as caught:
        Service.open(settings, clock=clock, sink=sink)
    assert "scheme id of its own" in str(caught.value)
    with Service.open(settings, clock=clock, sink=sink, activate=False) as svc:
        assert [v.version for v in versions(svc.db, "town")] == [first]  # nothing written
    # counted with no notice, by the operator's choice, which is kept
    counted = Settings(database=service_db, schemes=[str(scheme)], existing_records="count")
    with Service.open(counted, clock=clock, sink=sink) as svc:
        assert [v.existing for v in versions(svc.db, "town")] == ["unchecked", "count"]
    with Service.open(settings, clock=clock, sink=sink) as svc:  # and is not asked again
        assert len(versions(svc.db, "town")) == 2


def test_a_type_or_kind_newly_counted_is_refused_once_the_ledger_holds_one(
    service_db: str, tmp_path: Path
) -> None:
    from socialcredit.errors import RefusedScheme

    scheme, people = imported(service_db, tmp_path)
    persons = SERVICE_SCHEME.replace("subjects: [person, organization]", "subjects: [person]")
    scheme.write_text(persons)
    clock, sink = FakeClock(START), MemorySink()
    settings = Settings(database=service_db, schemes=[str(scheme)])
    Service.open(settings, clock=clock, sink=sink).close()
    with open_ledger(service_db) as ledger:
        ledger.append(
            pa.Table.from_pylist(
                [row("s1", people[0], "traffic.speeding", "2025-03-01", "2025-03-01")],
                schema=RECORDS_SCHEMA,
            ),
            source="speeding.csv",
        )
    for text, refused in [
        (speeding(persons), "rule speeding counts traffic.speeding, which the earlier"),
        (SERVICE_SCHEME, "it scores organization subjects, which the earlier did not"),
    ]:
        scheme.write_text(text)
        with pytest.raises(RefusedScheme, match=refused):
            Service.open(settings, clock=clock, sink=sink)


def test_a_version_run_before_that_cannot_be_read_is_not_compared(
    service_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from socialcredit.service.activation import versions

    scheme, _ = imported(service_db, tmp_path)
    clock, sink = FakeClock(START), MemorySink()
    settings = Settings(database=service_db, schemes=[str(scheme)])
    with Service.open(settings, clock=clock, sink=sink) as svc, svc.db.transaction() as db:
        db.execute(
            "INSERT INTO svc_scheme_versions (scheme, version, text, existing, at) "
            "VALUES ('town', 'old', 'scheme: [', 'notify', '2025-03-02T00:00:00+00:00')"
        )
    scheme.write_text(SERVICE_SCHEME.replace("notice_days: 7", "notice_days: 3"))
    with Service.open(settings, clock=clock, sink=sink) as svc:
        assert [v.version for v in versions(svc.db, "town")][1:2] == ["old"]
    assert "version old, run before, is not readable here" in caplog.text


TWO_WINDOWS = SERVICE_SCHEME.replace(
    "  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, "
    "points: 0}\n",
    "  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, "
    "points: 0}\n"
    "  - {id: recent, types: [court.unfulfilled], window_days: 30, measure: count, "
    "points: 0}\n",
).replace(
    "lists:\n", "lists:\n  - {id: recent_debtors, kind: black, when: {rule: recent, at_least: 1}}\n"
)
PARKING = SERVICE_SCHEME.replace(
    "  charity.donation:  {category: charity}\n",
    "  charity.donation:  {category: charity}\n  traffic.parking: {category: traffic}\n",
).replace(
    "  - {id: donations,",
    "  - {id: parking, types: [traffic.parking], window_days: 365, measure: count, "
    "points: -2}\n  - {id: donations,",
)
POSITIVE = PARKING.replace(
    "traffic.parking: {category: traffic}", "traffic.parking: {category: traffic, adverse: true}"
).replace("points: -2}", "points: 2}")
COUNTY = SERVICE_SCHEME.replace("scheme: town", "scheme: county").replace(
    "appeal_days: 30", "appeal_days: 90"
)
ALL_TYPES = {"traffic.red_light", "court.unfulfilled", "court.fulfilled", "traffic.parking"}


@pytest.mark.parametrize(
    ("before", "after", "types", "expected"),
    [
        # the window of each rule, not only the longest of a type's
        (
            TWO_WINDOWS,
            TWO_WINDOWS.replace("window_days: 30,", "window_days: 365,"),
            ALL_TYPES,
            [
                "court.unfulfilled: rule recent counts for 365 days, for 30 days under the "
                "earlier: records that left its window would count again"
            ],
        ),
        # a type that counted at once is given a notice period: no worse
        (
            PARKING,
            PARKING.replace("{category: traffic}", "{category: traffic, adverse: true}"),
            ALL_TYPES,
            [],
        ),
        # nothing held of the types changed: nothing was noticed
        (
            SERVICE_SCHEME,
            SERVICE_SCHEME.replace("appeal_days: 30", "appeal_days: 10")
            .replace("notice_days: 7", "notice_days: 3")
            .replace("window_days: 365, measure", "window_days: 730, measure"),
            set(),
            [],
        ),
        # a rule in the subject's favour loses ground: a cap, a shorter window
        (
            POSITIVE,
            POSITIVE.replace("points: 2}", "points: 2, cap: 2}"),
            ALL_TYPES,
            ["traffic.parking: rule parking is capped at 2, at None under the earlier"],
        ),
        (
            POSITIVE,
            POSITIVE.replace(
                "window_days: 365, measure: count, points: 2",
                "window_days: 30, measure: count, points: 2",
            ),
            ALL_TYPES,
            [
                "traffic.parking: rule parking counts for 30 days, for 365 days under the "
                "earlier: records would stop counting in its subject's favour sooner"
            ],
        ),
        # lighter: no worse
        (
            SERVICE_SCHEME,
            SERVICE_SCHEME.replace("points: -5, cap: 50", "points: 0"),
            ALL_TYPES,
            [],
        ),
        (
            SERVICE_SCHEME,
            SERVICE_SCHEME.replace("points: -5, cap: 50", "points: 1, cap: 10"),
            ALL_TYPES,
            [],
        ),
        (POSITIVE, POSITIVE.replace("points: 2}", "points: 3}"), ALL_TYPES, []),
        # lists reached through another list, the score or the grade
        (
            SERVICE_SCHEME,
            SERVICE_SCHEME.replace(
                "publish: true}\n",
                "publish: true}\n  - {id: banned, kind: black, when: {list: debtors}}\n",
            ),
            ALL_TYPES,
            ["court.unfulfilled may place its subject on banned, which the earlier did not"],
        ),
        (
            SERVICE_SCHEME,
            SERVICE_SCHEME.replace(
                "publish: true}\n",
                "publish: true}\n  - {id: low, kind: black, when: {grade_in: [B, C]}}\n",
            ),
            ALL_TYPES,
            ["traffic.red_light may place its subject on low, which the earlier did not"],
        ),
    ],
)
def test_what_a_later_version_may_change(
    before: str, after: str, types: set[str], expected: list[str]
) -> None:
    from socialcredit.scheme import load_scheme_text
    from socialcredit.service.activation import widening

    got = widening(
        load_scheme_text(before),
        load_scheme_text(after),
        types,
        {"person", "organization"},
    )
    assert got == expected


def test_going_back_to_a_version_run_before_is_compared_with_the_one_run_last(
    service_db: str, tmp_path: Path
) -> None:
    from socialcredit.errors import RefusedScheme
    from socialcredit.service.activation import versions

    scheme, _ = imported(service_db, tmp_path)
    clock, sink = FakeClock(START), MemorySink()
    settings = Settings(database=service_db, schemes=[str(scheme)])
    Service.open(settings, clock=clock, sink=sink).close()
    shorter = SERVICE_SCHEME.replace("window_days: 365, measure", "window_days: 100, measure")
    scheme.write_text(shorter)
    clock.advance(days=1)
    Service.open(settings, clock=clock, sink=sink).close()  # milder: taken
    scheme.write_text(SERVICE_SCHEME)
    clock.advance(days=1)
    with pytest.raises(RefusedScheme, match="rule red_lights counts for 365 days, for 100"):
        Service.open(settings, clock=clock, sink=sink)
    scheme.write_text(shorter)
    with Service.open(settings, clock=clock, sink=sink) as svc:  # the one run last: as is
        run = versions(svc.db, "town")
        assert [v.at[:10] for v in run] == ["2025-03-01", "2025-03-02"]
    counted = Settings(database=service_db, schemes=[str(scheme)], existing_records="count")
    scheme.write_text(SERVICE_SCHEME)
    with Service.open(counted, clock=clock, sink=sink) as svc:  # back, by choice: a row
        run = versions(svc.db, "town")
        assert [(v.version == run[0].version, v.existing) for v in run] == [
            (True, "unchecked"),
            (False, "notify"),
            (True, "count"),
        ]
        from fastapi.testclient import TestClient

        from socialcredit.api import create_app

        with TestClient(create_app(svc)) as client:
            page = client.get("/schemes/town").text
        said = [
            "the first version run here",
            "treated no worse than the notices of the version before stated",
            "treated as this version says, with no new notice, by the operator's choice",
        ]
        assert [page.index(s) for s in said] == sorted(page.index(s) for s in said)


@pytest.mark.parametrize("later", ["county no longer run", "county gives 30 days"])
def test_the_deadline_a_notice_stated_is_kept(service_db: str, tmp_path: Path, later: str) -> None:
    from fastapi.testclient import TestClient

    from socialcredit.api import create_app
    from socialcredit.service.credentials import add_agency

    upgrade(service_db)
    town, county = tmp_path / "town.yaml", tmp_path / "county.yaml"
    town.write_text(SERVICE_SCHEME)
    county.write_text(COUNTY)
    clock, sink = FakeClock(START), MemorySink()
    [me] = person_codes(1)
    both = Settings(database=service_db, schemes=[str(town), str(county)])
    with Service.open(both, clock=clock, sink=sink) as svc:
        key = add_agency(svc.db, "Court", ["court.unfulfilled"], svc.stamp())
        with TestClient(create_app(svc)) as client:
            sent = client.post(
                "/v1/records",
                json={
                    "records": [
                        {
                            "id": "j1",
                            "subject": me,
                            "type": "court.unfulfilled",
                            "occurred_at": "2025-02-01",
                        }
                    ],
                    "subjects": [{"code": me, "kind": "person"}],
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert sent.status_code == 200, sent.text
    stated = {n["content"]["how_to_appeal"].split(" until ")[1][:10] for n in sink.sent}
    assert stated == {"2025-05-30"}  # the longer of 30 and 90 days
    if later == "county no longer run":
        from socialcredit.service.activation import retire
        from socialcredit.store.service_db import ServiceDB

        db = ServiceDB.connect(service_db)
        retire(db, "county", "2025-04-15T10:00:00+00:00")
        db.close()
        settings = Settings(database=service_db, schemes=[str(town)])
    else:
        county.write_text(COUNTY.replace("appeal_days: 90", "appeal_days: 30"))
        settings = both
    clock.advance(days=45)
    with Service.open(settings, clock=clock, sink=sink) as svc:
        [record] = own_records(svc, me)
        assert record.appeal_until == "2025-05-30"
        contest(svc, me, "j1", "it was paid")  # within the stated time: taken


# -- a running server whose schemes fall out of force ----------------------------------------

AGENCY = Principal("agency", "police", frozenset({"traffic.red_light", "court.unfulfilled"}))
OPERATOR = Principal("operator", "airline")


def red_light(i: str, code: str) -> NewRecord:
    return NewRecord(i, code, "traffic.red_light", dt.date(2025, 2, 20))


def ledger_ids(database: str) -> list[str]:
    with open_ledger(database) as ledger:
        return sorted(ledger.records()["id"].to_pylist())


def test_a_running_server_whose_schemes_fall_out_of_force_takes_and_answers_nothing(
    service_db: str, tmp_path: Path
) -> None:
    """Another server puts a scheme in force that this one does not run, begins another
    version of one it runs, or one it runs is retired: this one refuses every batch
    (nothing written, 503) and every decision until the database is back to its schemes
    or it is started again."""
    upgrade(service_db)
    town, county = tmp_path / "town.yaml", tmp_path / "county.yaml"
    town.write_text(SERVICE_SCHEME)
    county.write_text(SERVICE_SCHEME.replace("scheme: town", "scheme: county"))
    town2 = tmp_path / "town2.yaml"
    town2.write_text(SERVICE_SCHEME.replace("A town's points", "The town's points"))
    people = person_codes(2)
    clock = FakeClock(START)

    def start(*files: Path) -> Service:
        settings = Settings(database=service_db, schemes=[str(f) for f in files])
        return Service.open(settings, clock=clock, sink=MemorySink())

    def may(svc: Service) -> bool:
        return decide(svc, OPERATOR, people[0], "travel.air", "town", "ticket").allowed

    subjects = [NewSubject(code, "person") for code in people]
    with start(town) as svc, TestClient(create_app(svc)) as client:
        ingest(svc, AGENCY, [red_light("a1", people[0])], subjects)
        assert may(svc)
        health = client.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["schemes"] == {"town": svc.schemes["town"].version}
        with start(town, county):  # another server: county comes into force
            pass
        with pytest.raises(Outdated, match="'county' is in force there and this server"):
            ingest(svc, AGENCY, [red_light("a2", people[1])])
        assert ledger_ids(service_db) == ["a1"]
        time.sleep(MARK_SECONDS)  # the marks are read again
        with pytest.raises(Outdated, match="started again"):
            may(svc)
        health = client.get("/v1/health")  # a load balancer routes elsewhere
        assert health.status_code == 503 and health.json()["error"] == "schemes_outdated"
        # retired: the database is back to what this server runs
        retire_scheme(service_db, "county")
        time.sleep(MARK_SECONDS)
        ingest(svc, AGENCY, [red_light("a2", people[1])])
        assert may(svc)
        assert client.get("/v1/health").status_code == 200
        with start(town2):  # another server begins another version of town
            pass
        with pytest.raises(Outdated, match=r"runs version .* of scheme 'town', and version"):
            ingest(svc, AGENCY, [red_light("a3", people[1])])
        assert ledger_ids(service_db) == ["a1", "a2"]
    with start(town2) as svc:
        ingest(svc, AGENCY, [red_light("a3", people[1])])
        retire_scheme(service_db, "town")
        time.sleep(MARK_SECONDS)
        with pytest.raises(Outdated, match="scheme 'town' was retired there on"):
            ingest(svc, AGENCY, [red_light("a4", people[1])])
    assert ledger_ids(service_db) == ["a1", "a2", "a3"]


def retire_scheme(database: str, scheme: str) -> None:
    db = ServiceDB.connect(database)
    try:
        retire(db, scheme, START.isoformat())
    finally:
        db.close()


def test_a_batch_appended_while_a_scheme_comes_into_force_is_noticed_or_refused(
    service_db: str, tmp_path: Path
) -> None:
    """A server putting a scheme in force holds the ledger's writers back while it reads
    the records already there: a batch another server appends at that moment waits, then
    finds the scheme in force and is refused -- it is neither read unnoticed nor taken."""
    upgrade(service_db)
    town = tmp_path / "town.yaml"
    town.write_text(SERVICE_SCHEME)
    people = person_codes(1)
    clock = FakeClock(START)
    svc = Service.open(Settings(database=service_db, schemes=[str(town)]), clock=clock)
    try:
        exc = while_put_in_force(
            service_db,
            "county",
            lambda: ingest(
                svc, AGENCY, [red_light("w1", people[0])], [NewSubject(people[0], "person")]
            ),
        )
    finally:
        svc.close()
    assert isinstance(exc, Outdated) and "'county' is in force there" in str(exc)
    assert ledger_ids(service_db) == []


def test_an_outdated_server_writes_nothing_by_its_schemes(service_db: str, tmp_path: Path) -> None:
    """Once outdated, a server takes no batch (a batch sent again included: it would write
    the notices missing), takes no appeal, decides none and sweeps none; the daily sweep
    a request would run is left to a server running the schemes in force."""
    upgrade(service_db)
    town, county = tmp_path / "town.yaml", tmp_path / "county.yaml"
    town.write_text(SERVICE_SCHEME)
    county.write_text(SERVICE_SCHEME.replace("scheme: town", "scheme: county"))
    people = person_codes(2)
    clock = FakeClock(START)
    settings = Settings(database=service_db, schemes=[str(town)])
    with Service.open(settings, clock=clock, sink=MemorySink()) as svc:
        sent = [red_light("a1", people[0]), red_light("a2", people[1])]
        ingest(svc, AGENCY, sent, [NewSubject(code, "person") for code in people])
        contest(svc, people[0], "a1", "not me")
        Service.open(
            Settings(database=service_db, schemes=[str(town), str(county)]),
            clock=clock,
            sink=MemorySink(),
        ).close()
        with pytest.raises(Outdated):
            ingest(svc, AGENCY, sent)  # only repeats: no append, and still refused
        time.sleep(MARK_SECONDS)
        with pytest.raises(Outdated):
            contest(svc, people[1], "a2", "not me either")
        reviewer = Principal("reviewer", "clerk")
        with pytest.raises(Outdated):
            decide_appeal(svc, reviewer, 1, "upheld", "", "review")
        clock.advance(days=40)  # the first appeal is overdue
        with pytest.raises(Outdated):
            sweep(svc)
        sweep_if_due(svc)  # a request's daily sweep: left to another server
        assert svc.swept_on != svc.day()
    assert ledger_ids(service_db) == ["a1", "a2"]
    db = ServiceDB.connect(service_db)
    try:
        assert db.query("SELECT count(*) FROM svc_appeals") == [(1,)]
        assert db.query("SELECT count(*) FROM svc_appeal_decisions") == [(0,)]
    finally:
        db.close()


def test_a_worker_waiting_for_published_states_is_told_it_is_outdated(
    service_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of ``serve`` whose marks were read just before another server put a scheme
    in force waits for a publication the publisher, outdated too, cannot make: it is told
    (Outdated) as soon as its marks are read again, not after the wait for publication."""
    from socialcredit.service import published, states
    from socialcredit.service.activation import outdated
    from socialcredit.service.published import PublishedStates, Publisher
    from socialcredit.service.states import Watch

    monkeypatch.setattr(published, "WAIT_SECONDS", 30.0)
    monkeypatch.setattr(states, "MARK_SECONDS", 2.0)  # the marks stay fresh meanwhile
    upgrade(service_db)
    town = tmp_path / "town.yaml"
    town.write_text(SERVICE_SCHEME)
    people = person_codes(2)
    svc = Service.open(Settings(database=service_db, schemes=[str(town)]), clock=FakeClock(START))
    where = tmp_path / "states"
    where.mkdir()
    publisher = Publisher(svc.states, svc.day, where, tmp_path / "publish", database=service_db)
    watch = Watch(service_db, lambda: 0, lambda query: outdated(svc, query))
    worker = PublishedStates(where, tmp_path / "publish", svc.ledger, svc.schemes, watch, svc.day)
    try:
        day = svc.day()
        subjects = [NewSubject(code, "person") for code in people]
        ingest(svc, AGENCY, [red_light("a1", people[0])], subjects)
        worker.current(day)
        ingest(svc, AGENCY, [red_light("a2", people[1])])
        time.sleep(2.0)
        watch.marks()  # read now: the second batch, not yet published
        other = ServiceDB.connect(service_db)
        try:
            with other.transaction() as tx:
                put_in_force(tx, "county")
        finally:
            other.close()
        started = time.monotonic()
        with pytest.raises(Outdated):
            worker.current(day)
        assert time.monotonic() - started < 10
    finally:
        publisher.close()
        worker.close()
        svc.close()


def test_a_background_task_outdated_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """The publisher's and the webhooks' loops retry every second: while the server is
    outdated that is one warning, not a traceback a second; other failures keep theirs."""
    import logging

    from socialcredit.service.errors import FailureLog

    log = logging.getLogger("test.failures")
    failures = FailureLog(log, "publishing the states failed")
    with caplog.at_level(logging.WARNING, logger="test.failures"):
        for _ in range(3):
            failures.failed(Outdated("scheme 'county' is in force there"))
        failures.failed(RuntimeError("disk full"))
        failures.failed(RuntimeError("disk full"))
        failures.succeeded()
        failures.failed(Outdated("scheme 'county' is in force there"))
    levels = [(r.levelname, r.exc_info is not None) for r in caplog.records]
    assert levels == [
        ("WARNING", False),
        ("ERROR", True),
        ("ERROR", True),
        ("WARNING", False),
    ]
    assert "county" in caplog.records[0].getMessage()


def test_writes_racing_a_start_wait_for_it_and_are_refused_whole(
    service_db: str, tmp_path: Path
) -> None:
    """A batch sent again, an appeal filed and an appeal's decision made while another
    server puts a scheme in force wait for its rows, then are refused with nothing
    written; the schemes' listing of the outdated server is refused too."""
    upgrade(service_db)
    town = tmp_path / "town.yaml"
    town.write_text(SERVICE_SCHEME)
    people = person_codes(2)
    svc = Service.open(Settings(database=service_db, schemes=[str(town)]), clock=FakeClock(START))
    try:
        sent = [red_light("a1", people[0]), red_light("a2", people[1])]
        ingest(svc, AGENCY, sent, [NewSubject(code, "person") for code in people])
        contest(svc, people[0], "a1", "not me")
        reviewer = Principal("reviewer", "clerk")
        for other, write in [
            ("county", lambda: ingest(svc, AGENCY, sent)),
            ("county2", lambda: contest(svc, people[1], "a2", "not me either")),
            ("county3", lambda: decide_appeal(svc, reviewer, 1, "upheld", "", "r")),
        ]:
            assert isinstance(while_put_in_force(service_db, other, write), Outdated), other
            retire_scheme(service_db, other)  # back to this server's schemes
            time.sleep(MARK_SECONDS)
        retire_scheme(service_db, "town")
        with TestClient(create_app(svc)) as client:
            listing = client.get("/v1/schemes")
            assert listing.status_code == 503 and listing.json()["error"] == "schemes_outdated"
    finally:
        svc.close()
    assert ledger_ids(service_db) == ["a1", "a2"]
    db = ServiceDB.connect(service_db)
    try:
        assert db.query("SELECT record_id FROM svc_appeals") == [("a1",)]
        assert db.query("SELECT count(*) FROM svc_appeal_decisions") == [(0,)]
        assert db.query("SELECT count(*) FROM svc_notices WHERE kind <> 'adverse'") == [(0,)]
    finally:
        db.close()

"""The lab: worlds, the simulator, its metrics and report, and the equality with the scorer."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.days import from_day
from socialcredit.lab.metrics import series, summary
from socialcredit.lab.simulate import Run, Settings, make_settings, simulate
from socialcredit.lab.world import InvalidWorld, LoadedWorld, load_world, parse_world
from socialcredit.scheme import load

TOWN = load_world("town")


def world_with(**changes: str) -> LoadedWorld:
    """The town with some lines of its YAML replaced (old line -> new line)."""
    text = TOWN.text
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    world, places = parse_world(text, "test.yaml")
    return LoadedWorld(world, places, "test.yaml", text)


def small(world: LoadedWorld = TOWN, persons: int = 2000, seed: int = 7) -> Settings:
    return make_settings(world, population=persons, years=1, seed=seed)


@pytest.fixture(scope="module")
def court_run() -> Run:
    return simulate(small(persons=20000), load("court_dishonest_debtors"))


# -- worlds -------------------------------------------------------------------------------

BAD_WORLDS = [
    ("  urban_share: 0.6", "  urban_share: 1.6", "population.urban_share", "less than or equal"),
    ("  persons: 20000 ", "  persons: -3 ", "population.persons", "greater than 0"),
    ("    rate: 0.5\n", "    rate: 0.5\n    colour: red\n", "behaviour[0].colour", "unknown key"),
    (
        "    by_decile: [2.2, 1.8, 1.5, 1.2, 1.0, 0.9, 0.7, 0.6, 0.5, 0.4]",
        "    by_decile: [2.2, 1.8]",
        "behaviour[2].by_decile",
        "must have 10 values",
    ),
    ("    market: 0.5\n", "", "detection.coverage", "no coverage for category 'market'"),
    ("  upheld: 0.7", "  upheld: yes", "appeals.upheld", "must be a number"),
]


def test_world_problems_are_all_reported_with_places() -> None:
    text = TOWN.text
    for old, new, _, _ in BAD_WORLDS:
        assert old in text, old
        text = text.replace(old, new, 1)
    with pytest.raises(InvalidWorld) as caught:
        parse_world(text, "bad.yaml")
    rendered = [str(p) for p in caught.value.problems]
    for _, new, where, message in BAD_WORLDS:
        lines = text.splitlines()
        line = next((i + 1 for i, t in enumerate(lines) if new and t.startswith(new.rstrip())), 0)
        hits = [r for r in rendered if f": {where}: " in r and message in r]
        assert hits, (where, rendered)
        if line:
            assert hits[0].startswith(f"bad.yaml:{line}: "), (hits, line)
    assert len(rendered) >= len(BAD_WORLDS)


def test_unknown_world_names_the_shipped_ones() -> None:
    with pytest.raises(InvalidWorld, match="worlds: china, city, town"):
        load_world("atlantis")


# -- the simulator ------------------------------------------------------------------------


def test_same_seed_same_run(court_run: Run) -> None:
    again = simulate(small(persons=20000), load("court_dishonest_debtors"))
    assert again.records.equals(court_run.records)
    assert again.metrics.equals(court_run.metrics)
    assert (again.false_record == court_run.false_record).all()
    other = simulate(small(persons=20000, seed=8), load("court_dishonest_debtors"))
    assert not other.records.equals(court_run.records)


def test_false_records_are_marked_outside_the_ledger(court_run: Run) -> None:
    assert court_run.records.column_names == [
        "id",
        "subject",
        "type",
        "occurred_at",
        "recorded_at",
        "amount",
        "ref",
    ]
    assert len(court_run.false_record) == court_run.records.num_rows
    assert court_run.false_record.sum() > 0
    assert summary(court_run.metrics, "wrongful_person_weeks")[""] > 0


def test_zero_false_record_rate_gives_no_wrongful_listings() -> None:
    world = world_with(**{"  false_record_rate: 0.02": "  false_record_rate: 0"})
    run = simulate(small(world), load("court_dishonest_debtors"))
    assert run.false_record.sum() == 0
    assert summary(run.metrics, "wrongful_person_weeks")[""] == 0
    assert set(series(run.metrics, "wrongfully_listed")) == {0.0}
    assert sum(series(run.metrics, "list_size", "dishonest_judgment_debtors")) > 0


def test_full_deterrence_stops_penalized_conduct_after_the_first_period() -> None:
    world = world_with(
        **{
            "    specific: 0.5": "    specific: 1.0",
            "    general: 0.1": "    general: 1.0",
        }
    )
    run = simulate(small(world), load("rongcheng"))
    weekly = series(run.metrics, "penalized_conduct")
    assert sum(weekly[:13]) > 0
    assert sum(weekly[13:]) == 0
    assert summary(run.metrics, "penalized_conduct_per_1000")["last"] == 0


def test_appeals_void_false_records(court_run: Run) -> None:
    ended = set(court_run.records.column("ref").drop_null().to_pylist())
    ids = court_run.records.column("id").to_pylist()
    false_ids = {i for i, f in zip(ids, court_run.false_record, strict=True) if f}
    assert ended & false_ids
    assert summary(court_run.metrics, "false_records_voided")[""] > 0


# -- one engine: the simulator's final states are what `socialcredit score` says ------------


@pytest.mark.parametrize("scheme", ["rongcheng", "court_dishonest_debtors"])
def test_score_of_the_exported_ledger_equals_the_simulator(scheme: str, tmp_path: Path) -> None:
    run = court_run_for(scheme)
    subjects, records = tmp_path / "subjects.csv", tmp_path / "records.csv"
    pacsv.write_csv(run.subjects, subjects)
    pacsv.write_csv(run.records, records)
    end = from_day(run.settings.end).isoformat()
    result = CliRunner().invoke(
        command_app(),
        [
            "score",
            "--scheme",
            scheme,
            "--subjects",
            str(subjects),
            "--records",
            str(records),
            "--at",
            end,
            "--format",
            "csv",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == run.states.to_csv()
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(run.states) > 0


_RUNS: dict[str, Run] = {}


def court_run_for(scheme: str) -> Run:
    if scheme not in _RUNS:
        _RUNS[scheme] = simulate(small(persons=1500), load(scheme))
    return _RUNS[scheme]


# -- the command and its report -------------------------------------------------------------


def test_simulate_writes_a_self_contained_report(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        command_app(),
        [
            "simulate",
            "--scheme",
            "rongcheng",
            "--scheme",
            "court_dishonest_debtors",
            "--world",
            "town",
            "--population",
            "1500",
            "--years",
            "1",
            "--seed",
            "11",
            "--report",
            str(report),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "http://" not in html and "https://" not in html
    assert "Seed <b>11</b>" in html and '"seed": 11' in html
    assert "<svg" in html and "rongcheng" in html and "court_dishonest_debtors" in html
    assert (tmp_path / "out" / "report.metrics.csv").is_file()
    assert (tmp_path / "out" / "report.metrics.parquet").is_file()
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_a_critical_scheme_is_simulated_and_labelled(tmp_path: Path) -> None:
    scheme = tmp_path / "speech.yaml"
    scheme.write_text(
        "scheme: speech\nsubjects: [person]\nnotice_days: 7\nappeal_days: 30\n"
        "records:\n  traffic.violation: {category: speech, adverse: true}\n"
        "score: {base: 100}\n"
        "rules:\n  - {id: said, types: [traffic.violation], window_days: 365, measure: count,"
        " points: -10}\n"
        "grades:\n  - {grade: ok, min: 100}\n  - {grade: low}\n",
        encoding="utf-8",
    )
    report = tmp_path / "r.html"
    result = CliRunner().invoke(
        command_app(),
        ["simulate", "-s", str(scheme), "--population", "500", "--report", str(report)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert "CRITICAL rights-audit findings" in result.stderr
    assert "CRITICAL rights-audit findings" in report.read_text(encoding="utf-8")
    metrics = (tmp_path / "r.metrics.csv").read_text(encoding="utf-8")
    assert '"critical_findings"' in metrics.splitlines()[0]
    assert all(",true," in line for line in metrics.splitlines()[1:])


def test_invalid_world_is_reported_whole(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text(TOWN.text.replace("  urban_share: 0.6", "  urban_share: 2"), encoding="utf-8")
    result = CliRunner().invoke(
        command_app(),
        ["simulate", "-s", "rongcheng", "--world", str(bad), "--report", str(tmp_path / "r.html")],
    )
    assert result.exit_code == 2
    assert "w.yaml:" in result.stderr and "population.urban_share" in result.stderr
    assert not (tmp_path / "r.html").exists()

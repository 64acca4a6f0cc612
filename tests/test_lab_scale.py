"""The lab at scale: states kept current by re-evaluating only the subjects whose records
change, populations simulated in partitions, runs refused when they would not fit, and the
metrics that say what a scheme does to people."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import Case, cases, records_table, subjects_table
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.days import from_day, to_day
from socialcredit.engine import Engine, States
from socialcredit.engine.kernel import change_days
from socialcredit.lab.metrics import gini, series, summary
from socialcredit.lab.networks import households
from socialcredit.lab.resources import (
    GB,
    RATING_BYTES,
    RELATION_PARQUET_BYTES,
    RunTooLarge,
    check,
    estimate,
    network_sizes,
    ratings_per_year,
    records_per_year,
)
from socialcredit.lab.simulate import Run, Settings, make_settings, simulate, simulate_all
from socialcredit.lab.tally import Histogram
from socialcredit.lab.world import LoadedWorld, load_world, parse_world
from socialcredit.scheme import load

TOWN = load_world("town")


def town_with(**changes: str) -> LoadedWorld:
    """The town with some lines of its YAML replaced (old line -> new line)."""
    text = TOWN.text
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    world, places = parse_world(text, "test.yaml")
    return LoadedWorld(world, places, "test.yaml", text)


# -- the kernel says when a subject's state can change ---------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_a_state_changes_only_on_the_change_days_of_its_records(case: Case) -> None:
    engine = Engine(case.scheme)
    prep = engine.prepare(subjects_table(case.subjects), records_table(case.records))
    days = change_days(prep.tables, prep.type_index, prep.occurred, prep.recorded)
    ended = prep.ended()
    daily = prep.tables.days_since[prep.type_index.astype(np.intp)]
    at = to_day(case.at)
    before = engine.evaluate(prep, at - 9).to_table().to_pylist()
    for d in range(at - 8, at + 9):
        now = engine.evaluate(prep, d).to_table().to_pylist()
        moved = (days == d).any(axis=1) | (ended == d) | daily
        may_change = set(prep.subject[moved].tolist())
        for i, (a, b) in enumerate(zip(before, now, strict=True)):
            if i not in may_change:
                assert a == b, (d - at, a, b)
        before = now


# -- the simulator's states are the kernel's, every week -------------------------------------


def full_states(run: Run, week: int) -> States:
    """The kernel's states of the run's whole ledger at the evaluation of ``week``."""
    assert run.records is not None
    engine = Engine(run.scheme.scheme)
    at = run.settings.start + 7 * week + 6
    return engine.evaluate(engine.prepare(run.subjects, run.records), at)


SCHEMES = ["rongcheng", "court_dishonest_debtors", "sesame", "enterprise_credit", "fcra_bureau"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_weekly_metrics_are_those_of_the_kernel_on_the_ledger(scheme: str) -> None:
    run = simulate(make_settings(TOWN, population=1200, years=3, seed=3), load(scheme))
    assert run.records is not None and run.records.num_rows > 0
    weeks = run.settings.weeks
    for week in [0, 1, 2, 12, 51, 52, 104, 105, 130, weeks - 1]:
        states = full_states(run, week)
        for name, size in states.list_sizes().items():
            assert series(run.metrics, "list_size", name)[week] == size, (week, name)
        n = len(states)
        for grade, count in states.grade_counts().items():
            assert series(run.metrics, "grade_share", grade)[week] == pytest.approx(count / n)
        score = states.raw.score
        assert series(run.metrics, "score_mean")[week] == pytest.approx(score.mean())
        assert series(run.metrics, "score_gini")[week] == pytest.approx(gini(score), abs=1e-12)
        for q in (10, 50, 90):
            got = series(run.metrics, "score_percentile", f"p{q}")[week]
            assert got == pytest.approx(np.percentile(score, q))
    # and per agent at the end
    assert run.scores_by_agent is not None and run.population is not None
    codes = run.population.codes.to_pylist()
    final = run.states
    assert isinstance(final, States)
    for agent in range(0, run.population.size, 37):
        row = final.index(codes[agent])
        expected = -1 if row is None else int(final.raw.score[row])
        assert run.scores_by_agent[agent] == expected


def test_histogram_statistics_are_those_of_the_values() -> None:
    rng = np.random.default_rng(5)
    for values in (rng.integers(-50, 900, 1001), np.array([7]), rng.integers(0, 3, 10)):
        hist = Histogram.of(values)
        assert hist.n == len(values)
        assert hist.mean() == pytest.approx(values.mean())
        assert hist.gini() == pytest.approx(gini(values), abs=1e-12)
        for q in (0, 10, 50, 90, 100):
            assert hist.percentile(q) == pytest.approx(np.percentile(values, q))
        half = len(values) // 2
        moved = hist.shifted(values[:half], values[:half] + 5)
        assert moved.mean() == pytest.approx(
            np.concatenate([values[:half] + 5, values[half:]]).mean()
        )


# -- partitions ------------------------------------------------------------------------------


def partitioned(persons: int = 3000, size: int = 1000, seed: int = 7) -> Settings:
    return make_settings(TOWN, population=persons, years=1, seed=seed, partition_size=size)


def test_partitions_add_up_to_the_kernel_on_their_joined_ledgers() -> None:
    settings = partitioned()
    assert settings.n_partitions == 3
    subjects: list[pa.Table] = []
    records: list[pa.Table] = []

    def sink(
        p: int, scheme: str, pop: object, recs: pa.Table, false: object, ratings: object
    ) -> None:
        assert ratings is None  # the scheme reads no peer ratings
        assert scheme == "court_dishonest_debtors"
        subjects.append(pop.subjects)  # type: ignore[attr-defined]
        records.append(recs)

    (run,) = simulate_all(settings, [load("court_dishonest_debtors")], ledger_sink=sink)
    assert len(records) == 3
    all_subjects = pa.concat_tables(subjects)
    all_records = pa.concat_tables(records)
    # codes and record ids are unique across partitions
    assert len(set(all_subjects.column("code").to_pylist())) == all_subjects.num_rows == 3300
    assert len(set(all_records.column("id").to_pylist())) == all_records.num_rows
    assert summary(run.metrics, "records")[""] == all_records.num_rows
    engine = Engine(load("court_dishonest_debtors").scheme)
    final = engine.evaluate(engine.prepare(all_subjects, all_records), settings.end)
    assert len(run.states) == len(final)
    assert run.states.list_sizes() == final.list_sizes()
    last = settings.weeks - 1
    assert series(run.metrics, "score_mean")[last] == pytest.approx(final.raw.score.mean())
    assert series(run.metrics, "score_gini")[last] == pytest.approx(gini(final.raw.score))
    assert run.records is None and run.population is None


def test_partitioned_runs_are_reproducible_and_workers_change_nothing() -> None:
    scheme = load("rongcheng")
    one = simulate_all(partitioned(), [scheme])[0].metrics
    again = simulate_all(partitioned(), [scheme], workers=2)[0].metrics
    assert one.equals(again)
    other = simulate_all(partitioned(seed=8), [scheme])[0].metrics
    assert not one.equals(other)


def test_a_run_of_many_partitions_does_not_keep_its_ledger() -> None:
    with pytest.raises(ValueError, match="one partition"):
        simulate(partitioned(), load("rongcheng"))


def test_too_many_partitions_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 10,000"):
        make_settings(TOWN, population=20001, partition_size=2)


# -- refusing a run that does not fit ----------------------------------------------------------


def test_memory_grows_with_the_partition_not_the_population() -> None:
    china = load_world("china").world
    settings = make_settings(load_world("china"), years=1)
    assert settings.persons == 1_409_670_000
    whole = estimate(china, settings.partition(0), settings.n_partitions, 1, 1)
    assert whole.memory < 4 * GB
    assert whole.disk == 0
    with_ledger = estimate(china, settings.partition(0), settings.n_partitions, 1, 1, ledger=True)
    assert with_ledger.disk > 40 * GB  # about 1.4 records per person and year
    one_piece = estimate(china, (settings.persons, settings.organizations), 1, 1, 1)
    assert one_piece.memory > 100 * GB
    two = estimate(china, settings.partition(0), settings.n_partitions, 1, 1, workers=2)
    assert two.memory > whole.memory
    person, org = records_per_year(china)
    assert 1 < person < 2 and 0 < org < 1


def test_a_run_too_large_is_refused_with_the_figures() -> None:
    china = load_world("china").world
    needs = estimate(china, (100_000_000, 4_000_000), 15, 1, 1)
    with pytest.raises(RunTooLarge, match=r"needs \d+\.\d GB of memory, 2\.0 GB available"):
        check(needs, memory=2 * GB)
    check(needs, memory=needs.memory + 1)
    ledger = estimate(china, (4_000_000, 160_000), 353, 1, 1, ledger=True)
    with pytest.raises(RunTooLarge, match=r"ledger needs \d+\.\d GB of disk in out, 1\.0 GB free"):
        check(ledger, memory=100 * GB, disk=1 * GB, where=Path("out"))


def test_networks_ratings_and_their_files_are_counted() -> None:
    plain = parse_world(TOWN.text[: TOWN.text.index("\nnetworks:")] + "\n", "plain.yaml")[0]
    dense = town_with(**{"  friends_mean_degree: 8": "  friends_mean_degree: 200"}).world
    town = TOWN.world
    part = (4_000_000, 400_000)
    bare, usual, crowded = (estimate(w, part, 1, 1, 1) for w in (plain, town, dense))
    assert bare.memory < usual.memory < crowded.memory
    # 200 friends each, as int32 neighbours and drawn as int64 keys: gigabytes more
    assert crowded.memory - bare.memory > 4_000_000 * 200 * 4
    assert crowded.memory - usual.memory > 4_000_000 * 192 * 4
    # the relations on disk, and the ratings held and written, for a scheme that reads them
    assert (
        estimate(town, part, 2, 1, 1, ledger=True).disk
        > estimate(plain, part, 2, 1, 1, ledger=True).disk
        + 2 * 4_000_000 * 4 * RELATION_PARQUET_BYTES
    )
    rated = estimate(town, part, 2, 1, 2, rating_schemes=1)
    held = 4_000_000 * ratings_per_year(town) * RATING_BYTES  # a year of ratings
    assert rated.memory == pytest.approx(usual.memory + held)
    rated_disk = estimate(town, part, 2, 1, 2, ledger=True, rating_schemes=1).disk
    assert rated_disk > estimate(town, part, 2, 1, 2, ledger=True).disk + 2 * 4_000_000 * 26 * 20


def test_household_sizes_give_the_relations_per_person() -> None:
    homes = households(np.random.default_rng(3), 400_000, mean_size=2.62, max_size=4)
    sizes = homes.sizes
    networks = TOWN.world.networks
    assert networks is not None
    expected = network_sizes(networks.model_copy(update={"household_size_max": 4}))
    assert expected.households == pytest.approx(homes.count / 400_000, rel=0.01)
    assert expected.pairs == pytest.approx((sizes * (sizes - 1) / 2).sum() / 400_000, rel=0.01)


def test_the_command_refuses_before_the_run_starts(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    result = CliRunner().invoke(
        command_app(),
        [
            "simulate",
            "-s",
            "rongcheng",
            "--world",
            "china",
            "--partition-size",
            "1409670000",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 2
    assert "GB of memory" in result.stderr and "available" in result.stderr
    assert "--partition-size" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- the ledger on disk --------------------------------------------------------------------------


def test_the_ledger_is_written_per_partition_and_scores_like_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "ledger"
    report = tmp_path / "r.html"
    args = [
        "simulate",
        "-s",
        "court_dishonest_debtors",
        "--population",
        "2000",
        "--partition-size",
        "1000",
        "--ledger",
        str(folder),
        "--report",
        str(report),
    ]
    result = CliRunner().invoke(command_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))
    assert names == [
        "court_dishonest_debtors/false-p00000.parquet",
        "court_dishonest_debtors/false-p00001.parquet",
        "court_dishonest_debtors/records-p00000.parquet",
        "court_dishonest_debtors/records-p00001.parquet",
        "relations-p00000.parquet",
        "relations-p00001.parquet",
        "subjects-p00000.parquet",
        "subjects-p00001.parquet",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    records = pa.concat_tables(
        pq.read_table(folder / "court_dishonest_debtors" / f"records-p0000{p}.parquet")
        for p in (0, 1)
    )
    metrics = pq.read_table(tmp_path / "r.metrics.parquet")
    assert summary(metrics, "records")[""] == records.num_rows
    again = CliRunner().invoke(command_app(), args)
    assert again.exit_code == 2 and "already exists" in again.stderr


# -- metrics whose answer is known -------------------------------------------------------------


@pytest.fixture(scope="module")
def court() -> Run:
    return simulate(
        make_settings(TOWN, population=20000, years=1, seed=7), load("court_dishonest_debtors")
    )


def test_wrongful_listings_have_lengths_that_add_up(court: Run) -> None:
    m = court.metrics
    person_weeks = summary(m, "wrongful_person_weeks")[""]
    spells = summary(m, "wrongful_spells")
    assert person_weeks > 0 and spells[""] > 0
    assert summary(m, "wrongful_spell_weeks")["mean"] * spells[""] == pytest.approx(person_weeks)
    buckets = sum(v for k, v in spells.items() if k.startswith("weeks_"))
    assert buckets == spells[""]
    assert summary(m, "wrongful_spells_open_at_end")[""] <= spells[""]
    assert spells[""] >= summary(m, "wrongfully_listed_subjects")[""]
    assert summary(m, "wrongful_spell_weeks")["max"] <= court.settings.weeks


def test_no_false_records_no_wrongful_spells() -> None:
    world = town_with(**{"  false_record_rate: 0.02": "  false_record_rate: 0"})
    run = simulate(make_settings(world, population=3000), load("court_dishonest_debtors"))
    assert summary(run.metrics, "wrongful_spells")[""] == 0
    assert summary(run.metrics, "wrongful_person_weeks")[""] == 0


SPEECH = """scheme: heroes
subjects: [person]
notice_days: 0
appeal_days: 0
records:
  civic.heroic_act: {category: civic, adverse: true}
score: {base: 100}
rules:
  - {id: acts, types: [civic.heroic_act], window_days: 365, measure: count, points: -10}
grades:
  - {grade: ok, min: 100}
  - {grade: low}
"""


@pytest.mark.parametrize("chilling", [0.0, 1.0])
def test_chilling_of_legal_conduct_the_scheme_penalizes(chilling: float, tmp_path: Path) -> None:
    world = town_with(**{"  chilling: 0.0": f"  chilling: {chilling}"})
    (tmp_path / "heroes.yaml").write_text(SPEECH, encoding="utf-8")
    scheme = load(str(tmp_path / "heroes.yaml"))
    run = simulate(make_settings(world, population=20000), scheme)
    legal = summary(run.metrics, "penalized_legal_conduct_per_1000")
    # 0.004 acts per person per year of 365 days: 4 per 1,000 in 365 days, a year being 52 weeks
    assert legal["without_scheme"] == pytest.approx(4.0 * 364 / 365)
    if chilling == 1.0:
        assert legal["first"] == legal["last"] == 0
        assert sum(series(run.metrics, "penalized_legal_conduct")) == 0
    else:
        assert legal["first"] > 0 and legal["last"] > 0


def test_points_bought_back_rise_with_income() -> None:
    run = simulate(make_settings(TOWN, population=20000), load("rongcheng"))
    bought = summary(run.metrics, "points_bought_back_per_person")
    assert bought["decile_10"] > bought["decile_05"] > bought["decile_01"] >= 0
    assert series(run.metrics, "points_bought_back")[-1] > 0


def test_no_donation_rule_no_points_bought_back(court: Run) -> None:
    assert set(summary(court.metrics, "points_bought_back_per_person").values()) == {0.0}
    assert summary(court.metrics, "denied_per_1000_per_year")[""] > 0
    borne = summary(court.metrics, "sanctions_borne")
    deciles = sum(borne[f"decile_{d:02d}"] for d in range(1, 11))
    assert deciles + borne["organization"] == pytest.approx(1.0)
    assert borne["urban"] + borne["rural"] == pytest.approx(deciles)


def test_every_day_of_the_run_is_covered() -> None:
    run = simulate(make_settings(TOWN, population=500, years=2), load("rongcheng"))
    dates = run.metrics.column("date").drop_null().unique().to_pylist()
    assert len(dates) == 104
    assert max(dates) == from_day(run.settings.end).isoformat()
    assert min(dates) == (dt.date(2025, 1, 1) + dt.timedelta(days=6)).isoformat()


@pytest.mark.parametrize("name", ["town", "city", "china"])
def test_shipped_worlds_are_valid_and_run(name: str) -> None:
    world = load_world(name)
    run = simulate(make_settings(world, population=3000, years=1, seed=1), load("rongcheng"))
    assert summary(run.metrics, "records")[""] > 1000
    assert run.settings.organizations == round(
        world.world.population.organizations * 3000 / world.world.population.persons
    )
    shares = summary(run.metrics, "sanctioned_share")
    assert set(shares) >= {"urban", "rural", "decile_01", "decile_10"}


_HEAP_PROBE = """
import sys
import numpy as np
from socialcredit.heap import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "keep" else False

def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

before = resident()
a = np.ones(256 * 2**20, dtype=np.uint8)
del a
print(kept, (resident() - before) / 2**20)
"""


@pytest.mark.skipif(
    not Path("/proc/self/statm").exists() or sys.platform != "linux", reason="Linux"
)
def test_the_lab_heap_keeps_freed_memory_for_the_next_partition() -> None:
    """A freed 256 MB array stays resident for reuse once the heap keeps freed memory (so
    the next partition's arrays are not faulted in page by page); without, it goes back."""
    import subprocess

    def probe(mode: str) -> tuple[str, float]:
        out = subprocess.run(
            [sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], float(out[1])

    kept, resident = probe("keep")
    if kept != "True":
        pytest.skip("this C library has no mallopt")
    assert resident > 200
    assert probe("default") == ("False", pytest.approx(0.0, abs=50))

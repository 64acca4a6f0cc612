"""The lab with networks: worlds with households and friends, exposure metrics, schemes with
relation conditions and peer ratings, and their equality with `socialcredit score`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.days import from_day
from socialcredit.engine import Engine, States
from socialcredit.lab.export import LedgerWriter
from socialcredit.lab.metrics import series, summary
from socialcredit.lab.networks import exposure
from socialcredit.lab.report import render
from socialcredit.lab.simulate import Run, Settings, make_settings, simulate, simulate_all
from socialcredit.lab.world import InvalidWorld, LoadedWorld, load_world, parse_world
from socialcredit.scheme import LoadedScheme, load
from socialcredit.scheme.validate import parse_scheme

TOWN = load_world("town")
GROUPS = ("household", "friend", "either")


def world_with(*changes: tuple[str, str]) -> LoadedWorld:
    """The town with some text of its YAML replaced (old -> new)."""
    text = TOWN.text
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    world, places = parse_world(text, "test.yaml")
    return LoadedWorld(world, places, "test.yaml", text)


def without_networks() -> LoadedWorld:
    cut = TOWN.text.index("\nnetworks:")
    text = TOWN.text[:cut] + "\n"
    world, places = parse_world(text, "plain.yaml")
    return LoadedWorld(world, places, "plain.yaml", text)


def scheme_text(text: str) -> LoadedScheme:
    scheme, places = parse_scheme(text, "<test>")
    return LoadedScheme(scheme, places, "<test>", text)


def simulate_to_ledger(settings: Settings, scheme: LoadedScheme, folder: Path) -> Run:
    """One partition simulated, its ledger kept in memory and written by ``--ledger``'s
    writer to ``folder``."""
    writer = LedgerWriter(folder)
    writer.start()
    (run,) = simulate_all(settings, [scheme], keep_ledger=True, ledger_sink=writer)
    writer.commit()
    return run


def score_partition(
    scheme: str,
    folder: Path,
    partition: int,
    at: int,
    *,
    relations: bool = False,
    ratings: bool = False,
) -> str:
    """`socialcredit score --format csv` on the files of one partition of a written ledger:
    its subjects, its records under ``scheme`` (a preset or a file whose stem names its
    folder) and, as asked, its relations and its peer ratings (``score`` refuses either
    for a scheme that does not read it)."""
    name = f"p{partition:05d}.parquet"
    ledger = folder / Path(scheme).stem
    args = ["score", "--scheme", scheme, "--subjects", str(folder / f"subjects-{name}")]
    args += ["--records", str(ledger / f"records-{name}")]
    if relations:
        args += ["--relations", str(folder / f"relations-{name}")]
    if ratings:
        args += ["--ratings", str(ledger / f"ratings-{name}")]
    args += ["--synthetic", "--at", from_day(at).isoformat(), "--format", "csv"]
    result = CliRunner().invoke(command_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout


# -- the world's networks section ------------------------------------------------------------


def test_networks_section_problems_are_reported_with_places() -> None:
    bad = TOWN.text.replace("  household_size_mean: 2.62", "  household_size_mean: 12").replace(
        "  friends_homophily: 0.8", "  friends_homophily: 1.5\n  colour: red"
    )
    with pytest.raises(InvalidWorld) as info:
        parse_world(bad, "bad.yaml")
    text = str(info.value)
    assert re.search(r"bad\.yaml:\d+: networks\.household_size_mean: must not be above", text)
    assert "networks.friends_homophily" in text and "networks.colour" in text
    plain = without_networks().text + "ratings:\n  per_person_per_week: 1\n"
    with pytest.raises(InvalidWorld, match=r"ratings\.among: 'friends' needs a networks"):
        parse_world(plain, "plain.yaml")


def test_the_shipped_worlds_cite_the_census_household_size() -> None:
    for name in ("town", "city", "china"):
        world = load_world(name)
        assert world.world.networks is not None
        assert world.world.networks.household_size_mean == 2.62
        assert "seventh national population census" in world.text


# -- exposure metrics with known answers ---------------------------------------------------


def test_a_world_without_networks_has_no_exposure_and_the_report_says_so() -> None:
    settings = make_settings(without_networks(), population=1000, years=1, seed=3)
    run = simulate(settings, load("court_dishonest_debtors"), keep_ledger=False)
    names = set(run.metrics.column("metric").to_pylist())
    assert not any(n.startswith("network") for n in names)
    html = render(settings, [run], "socialcredit simulate")
    network = re.search(r'<section id="network".*?</section>', html, re.S)
    assert network is not None
    assert "has no networks" in network.group(0) and "data-metric" not in network.group(0)


EVERYONE = """
scheme: everyone
subjects: [person]
records: {traffic.violation: {category: traffic, adverse: true}}
score: {base: 0}
rules: [{id: tickets, types: [traffic.violation], window_days: 30, measure: count, points: 0}]
grades: [{grade: all}]
lists:
  - {id: all, kind: black, when: {score_at_least: 0}}
  - {id: ticketed, kind: black, when: {rule: tickets, at_least: 1}}
"""


def test_a_scheme_that_lists_everyone_exposes_everyone_with_a_household_member() -> None:
    settings = make_settings(TOWN, population=3000, years=1, seed=5)
    run = simulate(settings, scheme_text(EVERYONE))
    pop = run.population
    assert pop is not None and pop.homes is not None and pop.friends is not None
    sizes = pop.homes.sizes
    in_household = np.repeat(sizes, sizes) > 1
    has_friend = pop.friends.degree > 0
    expected = {
        "household": in_household.mean(),
        "friend": has_friend.mean(),
        "either": (in_household | has_friend).mean(),
    }
    assert 0 < expected["household"] < 1
    for group in GROUPS:
        weekly = series(run.metrics, "network_exposure", group)
        assert len(weekly) == settings.weeks
        assert weekly == pytest.approx([expected[group]] * settings.weeks)
        # nobody is left unlisted: no spill-over to measure
        assert series(run.metrics, "network_exposure_unlisted", group) == [0.0] * settings.weeks
    assert summary(run.metrics, "network_households") == {"": pop.homes.count}


def test_households_of_one_give_no_household_exposure() -> None:
    world = world_with(
        ("  household_size_mean: 2.62", "  household_size_mean: 1"),
        ("  household_size_max: 10", "  household_size_max: 1"),
    )
    run = simulate(
        make_settings(world, population=3000, years=1, seed=5),
        load("court_dishonest_debtors"),
        keep_ledger=False,
    )
    assert series(run.metrics, "network_exposure", "household") == [0.0] * 52
    assert series(run.metrics, "network_exposure_unlisted", "household") == [0.0] * 52
    friend = series(run.metrics, "network_exposure", "friend")
    assert friend[-1] > 0  # some friends of the listed are exposed
    assert series(run.metrics, "network_exposure", "either") == friend
    assert summary(run.metrics, "network_household_size_mean") == {"": 1.0}


def test_weekly_exposure_is_that_of_the_listed_at_each_week() -> None:
    """The exposure kept current week by week is exposure() of the kernel's black lists."""
    settings = make_settings(TOWN, population=4000, years=1, seed=9)
    run = simulate(settings, load("court_dishonest_debtors"))
    assert run.population is not None and run.records is not None
    pop = run.population
    engine = Engine(run.scheme.scheme)
    prepared = engine.prepare(run.subjects, run.records)
    codes = pop.person_codes.to_pylist()
    black = [i for i, spec in enumerate(run.scheme.scheme.lists) if spec.kind == "black"]
    assert black
    for week in (20, 35, 51):
        states = engine.evaluate(prepared, run.settings.start + 7 * week + 6)
        listed_codes = {
            code
            for code, *flags in zip(
                states.prepared.codes.to_pylist(),
                *(states.raw.lists[i] for i in black),
                strict=True,
            )
            if any(flags)
        }
        listed = np.array([c in listed_codes for c in codes])
        assert listed.sum() >= 5
        want = exposure(listed, pop.homes, pop.friends)
        assert 0 < want.friend.mean() < 1
        for group, flags in zip(GROUPS, (want.household, want.friend, want.any), strict=True):
            got = series(run.metrics, "network_exposure", group)[week]
            assert got == pytest.approx(flags.mean()), (week, group)
            free = ~listed
            got = series(run.metrics, "network_exposure_unlisted", group)[week]
            assert got == pytest.approx(flags[free].mean()), (week, group)


def test_networks_are_reproducible_and_partition_local() -> None:
    settings = make_settings(TOWN, population=3000, years=1, seed=4, partition_size=1000)
    scheme = load("court_dishonest_debtors")
    first = simulate_all(settings, [scheme])[0].metrics
    again = simulate_all(settings, [scheme], workers=2)[0].metrics
    assert first.equals(again)
    assert summary(first, "network_household_size_mean")[""] == pytest.approx(2.62, abs=0.1)


# -- relation conditions: the simulator's states are the engine's with the relations --------

FAMILY = """
scheme: family_liability
subjects: [person, organization]
notice_days: 0
appeal_days: 30
records:
  court.judgment_unfulfilled: {category: judicial, adverse: true}
  court.judgment_fulfilled: {category: judicial}
  appeal.upheld: {category: process}
  finance.overdue: {category: financial, adverse: true}
score: {base: 100}
rules:
  - {id: unfulfilled, types: [court.judgment_unfulfilled], window_days: 120, measure: count,
     points: 0}
  - {id: overdue, types: [finance.overdue], window_days: 60, measure: count, points: -10}
grades:
  - {grade: ok, min: 100}
  - {grade: low}
lists:
  - {id: debtors, kind: black, when: {rule: unfulfilled, at_least: 1}}
  - id: relatives_of_debtors
    kind: black
    when: {related: {via: [household], where: {list: debtors}}}
  - id: among_the_overdue
    kind: black
    when: {related: {via: [friend, household], where: {grade_in: [low]}, at_least: 2}}
  - id: well_connected
    kind: red
    when: {related: {via: [friend], where: {grade_in: [ok]}, at_least: 6}}
measures:
  - id: no_private_school
    when:
      any:
        - {list: relatives_of_debtors}
        - {related: {via: [friend], where: {not: {score_at_least: 100}}, at_least: 3}}
    deny: [education.private_school]
actions:
  education.private_school: {context: education}
"""


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("family") / "ledger"


@pytest.fixture(scope="module")
def family_run(family_folder: Path) -> Run:
    settings = make_settings(TOWN, population=1500, years=1, seed=13)
    return simulate_to_ledger(settings, scheme_text(FAMILY), family_folder)


def test_relation_lists_each_week_are_the_engines(family_run: Run) -> None:
    run = family_run
    assert run.records is not None and run.relations is not None
    engine = Engine(run.scheme.scheme)
    prepared = engine.prepare(run.subjects, run.records)
    network = engine.prepare_network(prepared, relations=run.relations)
    moved = 0
    for week in (0, 3, 12, 25, 40, 51):
        states = engine.evaluate(prepared, run.settings.start + 7 * week + 6, network=network)
        for name, size in states.list_sizes().items():
            assert series(run.metrics, "list_size", name)[week] == size, (week, name)
            moved += size
        denied = states.raw.applied[0].sum()  # the one measure denies one action
        assert series(run.metrics, "denied_per_1000")[week] == pytest.approx(
            denied / len(states) * 1000
        )
    assert moved > 0
    sizes = family_run.states.list_sizes()
    assert sizes["relatives_of_debtors"] > 0 and sizes["well_connected"] > 0


def test_final_relation_states_equal_score_with_the_written_relations(
    family_run: Run, family_folder: Path, tmp_path: Path
) -> None:
    run = family_run
    assert run.relations is not None and run.lists_by_agent is not None
    assert run.population is not None and isinstance(run.states, States)
    # the ledger folder holds the partition's relations beside its subjects and records
    relations = pq.read_table(family_folder / "relations-p00000.parquet")
    assert relations.equals(run.relations)
    assert set(relations.column("relation").to_pylist()) == {"household", "friend"}
    assert not (family_folder / "family_liability" / "ratings-p00000.parquet").exists()
    scheme = tmp_path / "family_liability.yaml"
    scheme.write_text(FAMILY, encoding="utf-8")
    out = score_partition(str(scheme), family_folder, 0, run.settings.end, relations=True)
    assert out == run.states.to_csv()
    # and the simulator's own per-agent lists are the engine's
    final = run.states
    codes = run.population.codes.to_pylist()
    rows = [final.index(c) for c in codes]
    scored = np.array([r is not None for r in rows])
    index = np.array([r if r is not None else 0 for r in rows])
    engine_lists = final.raw.lists[:, index] & scored
    assert np.array_equal(run.lists_by_agent, engine_lists)
    assert engine_lists[1].sum() > 0  # relatives of debtors were listed


# -- peer ratings: nosedive -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nosedive_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nosedive") / "ledger"


@pytest.fixture(scope="module")
def nosedive_run(nosedive_folder: Path) -> Run:
    settings = make_settings(TOWN, population=2000, years=1, seed=21)
    return simulate_to_ledger(settings, load("nosedive"), nosedive_folder)


def test_nosedive_final_states_equal_score_with_the_written_ratings(
    nosedive_run: Run, nosedive_folder: Path
) -> None:
    run = nosedive_run
    assert run.ratings is not None and run.ratings.num_rows > 0
    assert isinstance(run.states, States) and run.population is not None
    ratings = pq.read_table(nosedive_folder / "nosedive" / "ratings-p00000.parquet")
    assert ratings.equals(run.ratings)
    out = score_partition("nosedive", nosedive_folder, 0, run.settings.end, ratings=True)
    assert out == run.states.to_csv()
    codes = run.population.codes.to_pylist()
    assert run.scores_by_agent is not None
    for agent in range(0, run.population.size, 7):
        row = run.states.index(codes[agent])
        expected = -1 if row is None else int(run.states.raw.score[row])
        assert run.scores_by_agent[agent] == expected
    scores = run.states.raw.score
    assert len(np.unique(scores)) > 20  # ratings spread the scores


def test_nosedive_report_shows_its_rating_measures(nosedive_run: Run) -> None:
    run = nosedive_run
    p50 = series(run.metrics, "network_peer_rating", "p50")
    assert len(p50) == 52 and 3.5 < p50[-1] < 5  # quality 0.8: a mean of 4.2 stars
    assert summary(run.metrics, "network_trust_evaluated_every_weeks") == {"": 4.0}
    rated = series(run.metrics, "network_rated_share")
    assert rated[0] < rated[-1] <= 1
    given = series(run.metrics, "network_ratings_given")
    assert sum(given) == run.ratings.num_rows if run.ratings is not None else False
    html = render(run.settings, [run], "socialcredit simulate --scheme nosedive")
    network = re.search(r'<section id="network".*?</section>', html, re.S)
    assert network is not None
    for metric in ("network_peer_rating", "network_peer_trust", "network_exposure"):
        assert f'data-metric="{metric}"' in network.group(0)


def test_simulate_nosedive_on_the_town(tmp_path: Path) -> None:
    report = tmp_path / "nosedive.html"
    result = CliRunner().invoke(
        command_app(),
        [
            *("simulate", "-s", "nosedive", "--world", "town", "--population", "3000"),
            *("--years", "1", "--report", str(report)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    assert "CRITICAL rights-audit findings" in html
    assert 'data-metric="network_peer_rating"' in html
    metrics = (tmp_path / "nosedive.metrics.csv").read_text(encoding="utf-8")
    assert "network_peer_rating" in metrics and "network_exposure_unlisted" in metrics


def test_a_partitioned_ledger_keeps_every_rating_and_scores_like_the_run(tmp_path: Path) -> None:
    """`simulate --ledger` writes relations and ratings per partition; a rating window
    shorter than the run drops old ratings from the simulator's memory, but not from the
    ledger; each partition's files score to the run's final counts."""
    scheme = tmp_path / "short_memory.yaml"
    text = load("nosedive").text.replace("scheme: nosedive", "scheme: short_memory")
    scheme.write_text(text.replace("window_days: 365", "window_days: 30"), encoding="utf-8")
    folder = tmp_path / "ledger"
    report = tmp_path / "r.html"
    args = ["simulate", "-s", str(scheme), "--population", "2000", "--partition-size", "1000"]
    args += ["--seed", "5", "--ledger", str(folder), "--report", str(report)]
    result = CliRunner().invoke(command_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))
    shared = [f"{kind}-p0000{p}.parquet" for kind in ("relations", "subjects") for p in (0, 1)]
    own = [
        f"short_memory/{k}-p0000{p}.parquet"
        for k in ("false", "ratings", "records")
        for p in (0, 1)
    ]
    assert names == sorted(shared + own)
    metrics = pq.read_table(tmp_path / "r.metrics.parquet")
    settings = make_settings(TOWN, population=2000, years=1, seed=5, partition_size=1000)
    listed = 0
    scores: list[int] = []
    ratings = 0
    for p in (0, 1):
        table = pq.read_table(folder / "short_memory" / f"ratings-p0000{p}.parquet")
        ratings += table.num_rows
        first = min(table.column("date").to_pylist())
        assert first < from_day(settings.end - 30)  # ratings past the window are kept
        out = score_partition(str(scheme), folder, p, settings.end, ratings=True)
        rows = [line.split(",") for line in out.splitlines()[1:]]
        scores += [int(r[1]) for r in rows]
        listed += sum("low_rated" in line for line in out.splitlines()[1:])
    assert ratings == sum(series(metrics, "network_ratings_given"))
    last = settings.weeks - 1
    assert series(metrics, "list_size", "low_rated")[last] == listed > 0
    assert series(metrics, "score_mean")[last] == pytest.approx(np.mean(scores))

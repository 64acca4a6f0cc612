"""Synthetic networks of the lab (socialcredit.lab.networks): households, friends, exposure,
and their export as a relations input that the engine reads the same way."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from strategies import records_table

from socialcredit.engine import evaluate
from socialcredit.lab.networks import (
    ExposureCounts,
    NetworkSettings,
    exposure,
    friends,
    household_graph,
    households,
    relations_table,
    union,
)
from socialcredit.scheme import load_scheme_text


def test_households_cover_the_rows_without_crossing_blocks() -> None:
    rng = np.random.default_rng(7)
    homes = households(rng, 200_000, mean_size=2.62, max_size=8, blocks=[70_001, 150_000])
    offsets = homes.offsets
    assert offsets[0] == 0 and offsets[-1] == 200_000
    assert np.all(np.diff(offsets) >= 1) and homes.sizes.max() <= 8
    assert {70_001, 150_000} <= set(offsets.tolist())  # no household crosses a block bound
    assert abs(homes.sizes.mean() - 2.62) < 0.05
    assert homes.of()[[0, 199_999]].tolist() == [0, homes.count - 1]
    again = households(
        np.random.default_rng(7), 200_000, mean_size=2.62, max_size=8, blocks=[70_001, 150_000]
    )
    assert np.array_equal(again.offsets, offsets)  # reproducible from the seed


def test_friends_form_a_simple_undirected_graph() -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    graph = friends(rng, n, mean_degree=6, homophily=0.9, blocks=[10_000])
    row = np.repeat(np.arange(n), graph.degree)
    col = graph.indices.astype(np.int64)
    assert not np.any(row == col)  # no self-loops
    keys = row * n + col
    assert np.all(np.diff(keys) > 0)  # sorted rows, no repeated edge
    mirror = np.sort(col * n + row)
    assert np.array_equal(mirror, keys)  # undirected: every edge in both directions
    assert abs(graph.degree.mean() - 6) < 0.05 and graph.edges * 2 == len(col)
    # homophily: a pair is drawn within a block with probability 0.9, else uniformly, so it
    # joins two members of one block with probability 0.9 + 0.1 * (0.2**2 + 0.8**2) = 0.968
    same = (row < 10_000) == (col < 10_000)
    assert abs(same.mean() - 0.968) < 0.01


def test_exposure_matches_a_direct_count() -> None:
    rng = np.random.default_rng(1)
    n = 3_000
    homes = households(rng, n, mean_size=3)
    graph = friends(rng, n, mean_degree=4)
    listed = rng.random(n) < 0.05
    got = exposure(listed, homes, graph)
    home_of = homes.of()
    members: dict[int, list[int]] = {}
    for i, h in enumerate(home_of.tolist()):
        members.setdefault(h, []).append(i)
    for i in range(0, n, 7):
        others = [j for j in members[int(home_of[i])] if j != i]
        assert got.household[i] == any(listed[j] for j in others)
        mates = graph.indices[graph.indptr[i] : graph.indptr[i + 1]]
        assert got.friend[i] == bool(listed[mates].any())
    assert np.array_equal(got.any, got.household | got.friend)


EXPOSED = """
scheme: exposed
subjects: [person]
records: {court.unfulfilled: {category: judicial, adverse: true}}
score: {base: 0}
rules: [{id: unfulfilled, types: [court.unfulfilled], measure: count, points: 0}]
grades: [{grade: all}]
lists:
  - {id: listed, kind: black, when: {rule: unfulfilled, at_least: 1}}
  - {id: household, kind: black, when: {related: {via: [household], where: {list: listed}}}}
  - {id: friend, kind: black, when: {related: {via: [friend], where: {list: listed}}}}
"""


def test_exported_networks_give_the_engine_the_same_exposure() -> None:
    rng = np.random.default_rng(9)
    n = 400
    codes = pa.array([f"p{i:04d}" for i in range(n)])
    homes = households(rng, n, mean_size=2.5)
    graph = friends(rng, n, mean_degree=3)
    listed = rng.random(n) < 0.1
    subjects = pa.table({"code": codes, "kind": pa.array(["person"] * n)})
    records = records_table(
        [
            {
                "id": f"r{i}",
                "subject": f"p{i:04d}",
                "type": "court.unfulfilled",
                "occurred_at": __import__("datetime").date(2025, 1, 1),
            }
            for i in np.flatnonzero(listed).tolist()
        ]
    )
    relations = relations_table(codes, homes, graph)
    assert relations.num_rows == int((homes.sizes * (homes.sizes - 1) // 2).sum()) + graph.edges
    states = evaluate(
        load_scheme_text(EXPOSED), subjects, records, "2025-06-30", relations=relations
    )
    got = exposure(listed, homes, graph)
    assert np.array_equal(states.raw.lists[1], got.household)
    assert np.array_equal(states.raw.lists[2], got.friend)


def test_settings_are_checked() -> None:
    assert NetworkSettings().household_size_mean == 2.62
    with pytest.raises(ValueError, match="household_size_mean"):
        NetworkSettings(household_size_mean=0.5)
    with pytest.raises(ValueError, match="friends_homophily"):
        NetworkSettings(friends_homophily=1.5)


def test_exposure_kept_current_equals_exposure_of_the_listed() -> None:
    rng = np.random.default_rng(11)
    n = 4_000
    homes = households(rng, n, mean_size=2.62, max_size=6)
    graph = friends(rng, n, mean_degree=5)
    listed = rng.random(n) < 0.1
    counts = ExposureCounts(listed, homes, graph)
    for _ in range(30):
        rows = np.unique(rng.integers(0, n, rng.integers(1, 200)))
        now = rng.random(len(rows)) < 0.3
        listed[rows] = now
        counts.update(rows, now)
        want = exposure(listed, homes, graph)
        free = ~listed
        flags = (want.household, want.friend, want.any)
        assert counts.exposed.tolist() == [int(f.sum()) for f in flags]
        assert counts.exposed_unlisted.tolist() == [int((f & free).sum()) for f in flags]
        assert counts.n_listed == int(listed.sum())


def test_household_graph_and_union_relate_the_right_agents() -> None:
    rng = np.random.default_rng(2)
    homes = households(rng, 300, mean_size=3)
    graph = friends(rng, 300, mean_degree=3)
    mates = household_graph(homes, 320)  # 20 more agents (organizations) without any
    assert mates.n == 320 and mates.degree[300:].sum() == 0
    home = homes.of()
    for i in range(0, 300, 13):
        got = set(mates.indices[mates.indptr[i] : mates.indptr[i + 1]].tolist())
        assert got == {j for j in range(300) if home[j] == home[i] and j != i}
    both = union([mates, graph], 320)
    for i in range(0, 300, 17):
        friends_of = set(graph.indices[graph.indptr[i] : graph.indptr[i + 1]].tolist())
        home_of = set(mates.indices[mates.indptr[i] : mates.indptr[i + 1]].tolist())
        assert set(both.indices[both.indptr[i] : both.indptr[i + 1]].tolist()) == (
            friends_of | home_of
        )

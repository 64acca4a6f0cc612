"""The network extension (docs/networks.md): relations, peer ratings, their audit, their
files and their command line options.

Hand cases are worked out in the comments; random cases are checked against the reference
(``reference.network_evaluate``), which follows the text of docs/networks.md in loops.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from strategies import (
    NetworkCase,
    network_cases,
    ratings_table,
    records_table,
    relations_table,
    subjects_table,
)
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.days import to_day
from socialcredit.engine import Engine, evaluate
from socialcredit.engine.explain import explain
from socialcredit.engine.network import TOTAL_TRUST, reputation
from socialcredit.errors import InvalidInput, InvalidScheme
from socialcredit.ids import ric
from socialcredit.scheme import audit, load, load_scheme_text, parse_scheme, refuse_critical
from socialcredit.store.network_files import parse_ratings, parse_relations, read_relations

AT = "2025-06-30"

FAMILY = """
scheme: family
subjects: [person, organization]
notice_days: 7
appeal_days: 30
records:
  court.unfulfilled: {category: judicial, adverse: true}
score: {base: 100}
rules:
  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, points: -50}
grades:
  - {grade: A, min: 100}
  - {grade: D}
lists:
  - {id: debtors, kind: black, when: {rule: unfulfilled, at_least: 1}}
  - id: relatives_of_debtors
    kind: black
    when: {related: {via: [household], where: {list: debtors}}}
  - id: staff_of_debtors
    kind: black
    when: {related: {via: [employer], where: {grade_in: [D]}}}
  - id: employs_debtors
    kind: black
    when: {related: {via: [employee], where: {list: debtors}, at_least: 2}}
measures:
  - id: no_private_school
    when:
      any:
        - {list: relatives_of_debtors}
        - {related: {via: [represented], where: {list: debtors}}}
    deny: [education.private_school]
"""


def _people(n: int) -> list[str]:
    rng = np.random.default_rng(11)
    born = (dt.date(1960, 1, 1), dt.date(2000, 1, 1))
    return sorted(ric.generate(rng, n, born_from=born[0], born_to=born[1]))


def _family_inputs() -> tuple[pa.Table, pa.Table, pa.Table, list[str]]:
    p = ["P1", "P2", "P3", "P4", "P5", "P6", "P7"]
    subjects = subjects_table(
        [{"code": c, "kind": "person"} for c in p]
        + [{"code": "ORG", "kind": "organization"}, {"code": "ORG2", "kind": "organization"}]
    )
    records = records_table(
        _dated(
            [
                {
                    "id": "j1",
                    "subject": "P1",
                    "type": "court.unfulfilled",
                    "occurred_at": "2025-01-05",
                },
                {
                    "id": "j2",
                    "subject": "P6",
                    "type": "court.unfulfilled",
                    "occurred_at": "2025-01-05",
                },
                {
                    "id": "j3",
                    "subject": "ORG",
                    "type": "court.unfulfilled",
                    "occurred_at": "2025-02-01",
                },
            ]
        )
    )
    relations = relations_table(
        _dated(
            [
                # P2 lives with the debtor P1: listed as a relative of a debtor
                {"subject": "P1", "relation": "household", "other": "P2"},
                # P3 is a friend of P1: friends are not household
                {"subject": "P3", "relation": "friend", "other": "P1"},
                # P4 lived with P1 until 2025-06-29: expired on the day before AT
                {"subject": "P4", "relation": "household", "other": "P1", "to": "2025-06-29"},
                # P5 moves in with P1 on 2025-07-01: not yet
                {"subject": "P5", "relation": "household", "other": "P1", "from": "2025-07-01"},
                # P7 works for ORG, which is graded D (its own judgment)
                {"subject": "P7", "relation": "employer", "other": "ORG"},
                # ORG2 employs the debtors P1 and P6: two, as employs_debtors asks
                {"subject": "P1", "relation": "employer", "other": "ORG2"},
                {"subject": "P6", "relation": "employer", "other": "ORG2"},
                # P3 is the legal representative of ORG, which is on debtors
                {"subject": "ORG", "relation": "legal_representative", "other": "P3"},
            ]
        )
    )
    return subjects, records, relations, p


def _dated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their dates (``YYYY-MM-DD`` text) as dates."""
    names = ("occurred_at", "from", "to", "date")
    return [
        {
            k: dt.date.fromisoformat(v) if k in names and isinstance(v, str) else v
            for k, v in row.items()
        }
        for row in rows
    ]


def _rows(states: Any) -> dict[str, tuple[str, str]]:
    return {r["code"]: (r["lists"], r["denied"]) for r in states.to_table().to_pylist()}


def test_relation_conditions_by_hand() -> None:
    subjects, records, relations, _ = _family_inputs()
    scheme = load_scheme_text(FAMILY)
    states = evaluate(scheme, subjects, records, AT, relations=relations)
    rows = _rows(states)
    assert rows == {
        "ORG": ("debtors", ""),
        "ORG2": ("employs_debtors", ""),
        "P1": ("debtors", ""),
        "P2": ("relatives_of_debtors", "education.private_school"),
        "P3": ("", "education.private_school"),  # represents ORG, a debtor
        "P4": ("", ""),  # the household ended on 2025-06-29
        "P5": ("", ""),  # the household begins on 2025-07-01
        "P6": ("debtors", ""),
        "P7": ("staff_of_debtors", ""),
    }
    # on the last day of P4's household, and on P5's first, both hold
    rows = _rows(evaluate(scheme, subjects, records, "2025-06-29", relations=relations))
    assert rows["P4"][0] == "relatives_of_debtors" and rows["P5"][0] == ""
    rows = _rows(evaluate(scheme, subjects, records, "2025-07-01", relations=relations))
    assert rows["P4"][0] == "" and rows["P5"][0] == "relatives_of_debtors"


def test_relations_of_unscored_subjects_count_for_nothing() -> None:
    subjects, records, relations, _ = _family_inputs()
    persons_only = load_scheme_text(
        FAMILY.replace("subjects: [person, organization]", "subjects: [person]")
    )
    rows = _rows(evaluate(persons_only, subjects, records, AT, relations=relations))
    # ORG is not scored: it has no state, so it is graded nothing and on no list
    assert rows["P7"][0] == "" and rows["P3"][1] == ""
    assert rows["P2"][0] == "relatives_of_debtors"


def test_explanation_names_the_related_subjects() -> None:
    subjects, records, relations, _ = _family_inputs()
    people = _people(2)
    mapping = {"P1": people[0], "P2": people[1]}
    subjects = subjects_table(
        [
            {"code": mapping.get(c, c), "kind": k}
            for c, k in zip(
                subjects.column("code").to_pylist(),
                subjects.column("kind").to_pylist(),
                strict=True,
            )
        ]
    )
    records = records.set_column(
        1, "subject", pa.array([mapping.get(c, c) for c in records.column("subject").to_pylist()])
    )
    for name in ("subject", "other"):
        i = relations.schema.get_field_index(name)
        column = [mapping.get(c, c) for c in relations.column(name).to_pylist()]
        relations = relations.set_column(i, name, pa.array(column))
    states = evaluate(load_scheme_text(FAMILY), subjects, records, AT, relations=relations)
    e = explain(states, people[1])
    relatives = e.lists[1]
    assert relatives.member and relatives.condition.count == 1
    masked = people[0][:4] + "*" * 10 + people[0][-4:]
    assert relatives.condition.related == (masked,)
    not_on = e.lists[2]  # staff_of_debtors: P2 has no employer
    assert not not_on.member and not_on.condition.count == 0 and not_on.condition.related == ()


# ---- peer ratings ---------------------------------------------------------------------

RATED = """
scheme: rated
subjects: [person]
records: {}
score: {base: 0}
ratings: {stars: 5, damping: 150, max_iterations: 1000}
rules:
  - {id: rating, measure: peer_rating, points: 1, none_points: 300}
  - {id: trust, measure: peer_trust, points: 0}
grades: [{grade: prime, min: 450}, {grade: rest}]
"""


def _rate(
    rows: list[tuple[str, str, int, str]], codes: list[str], text: str = RATED, at: str = AT
) -> tuple[dict[str, int], dict[str, int]]:
    """Scores and trust (per mille) of each subject."""
    scheme = load_scheme_text(text)
    subjects = subjects_table([{"code": c, "kind": "person"} for c in codes])
    ratings = ratings_table(
        [
            {"rater": a, "ratee": b, "stars": s, "date": dt.date.fromisoformat(d)}
            for a, b, s, d in rows
        ]
    )
    states = evaluate(scheme, subjects, records_table([]), at, ratings=ratings)
    scores = dict(zip(codes, states.raw.score.tolist(), strict=True))
    trust = {}
    for c in codes:
        rules = {r.id: r for r in explain(states, c).rules}
        trust[c] = rules["trust"].measure
    return scores, trust


def test_eigentrust_closed_form_two_subjects() -> None:
    # a rates b 5 stars; b rates no one, so b's trust goes to everyone alike (p = 1/2 each).
    # t_a = (1 - a) t_b / 2 + a / 2 and t_a + t_b = 1 give t_a = 1 / (3 - a); a = 0.15:
    # t_a = 0.350877, t_b = 0.649123, i.e. 701.75 and 1298.25 thousandths of the uniform 1/2.
    scores, trust = _rate([("a", "b", 5, "2025-06-01")], ["a", "b"])
    assert abs(trust["a"] - 701.75) <= 1 and abs(trust["b"] - 1298.25) <= 1
    assert scores == {"a": 300, "b": 500}  # a unrated: none_points; b: one rating of 5


def test_rating_is_weighed_by_the_raters_trust() -> None:
    # z rates x and y 5 stars, and both rate z 5 stars: x and y receive the same trust (half
    # of z's each), so t_x = t_y. x rates c 5 stars and y rates c 1: c's rating is
    # (5 t_x + 1 t_y) / (t_x + t_y) = 3.00 exactly.
    rows = [
        ("z", "x", 5, "2025-06-01"),
        ("z", "y", 5, "2025-06-01"),
        ("x", "z", 5, "2025-06-01"),
        ("y", "z", 5, "2025-06-01"),
        ("x", "c", 5, "2025-06-01"),
        ("y", "c", 1, "2025-06-01"),
    ]
    scores, trust = _rate(rows, ["c", "x", "y", "z"])
    assert trust["x"] == trust["y"] and scores["c"] == 300
    # d, whom no one rates, rates c 1 star too: the plain mean would be (5 + 1 + 1) / 3 =
    # 2.33, but d's rating weighs only d's trust, far below x's and y's
    scores, trust = _rate([*rows, ("d", "c", 1, "2025-06-01")], ["c", "d", "x", "y", "z"])
    assert trust["d"] < trust["x"] / 2
    expected = (
        100 * (5 * trust["x"] + trust["y"] + trust["d"]) / (trust["x"] + trust["y"] + trust["d"])
    )
    assert abs(scores["c"] - expected) <= 1.5  # per mille trust rounds the check, not the engine
    assert 233 < scores["c"] < 300


def test_which_ratings_count() -> None:
    window = RATED.replace("max_iterations: 1000", "max_iterations: 1000, window_days: 30")
    rows = [
        ("a", "b", 1, "2025-05-01"),  # replaced by a's later rating of b
        ("a", "b", 4, "2025-06-10"),
        ("c", "b", 2, "2025-05-31"),  # 30 days old on AT: outside a 30-day window
        ("d", "b", 5, "2025-07-01"),  # after AT
        ("b", "b", 5, "2025-06-01"),  # a rating of oneself counts for nothing
        ("ghost", "b", 5, "2025-06-01"),  # a rater who is not a subject
    ]
    scores, _ = _rate(rows, ["a", "b", "c", "d"], window)
    assert scores["b"] == 400
    scores, _ = _rate(rows, ["a", "b", "c", "d"])  # no window: c's 2 counts too
    assert 200 < scores["b"] < 400


def _textbook_eigentrust(n: int, local: np.ndarray, a: float) -> np.ndarray:
    """Kamvar et al. (2003), algorithm 2, in floating point: dense and direct."""
    p = np.full(n, 1 / n)
    c = np.zeros((n, n))
    for i in range(n):
        total = local[i].sum()
        c[i] = local[i] / total if total > 0 else p
    t = p.copy()
    for _ in range(10_000):
        new = (1 - a) * c.T @ t + a * p
        if np.abs(new - t).sum() < 1e-13:
            return new
        t = new
    return t


def test_eigentrust_matches_a_direct_power_iteration() -> None:
    rng = np.random.default_rng(5)
    n = 30
    codes = [f"s{i:02d}" for i in range(n)]
    rows, stars = [], np.zeros((n, n), dtype=int)
    for _ in range(120):
        i, j = rng.integers(0, n, 2)
        if i != j:
            s = int(rng.integers(1, 6))
            stars[i, j] = s  # one rating per pair: the last drawn, on a later day
            rows.append((codes[i], codes[j], s, f"2025-06-{1 + len(rows) // 10:02d}"))
    local = np.maximum(0, 2 * stars - 6).astype(float) * (stars > 0)
    expected = _textbook_eigentrust(n, local, 0.15)
    _, trust = _rate(rows, codes)
    got = np.array([trust[c] for c in codes]) / 1000 / n
    assert np.abs(got - expected).max() < 2e-4
    assert abs(got.sum() - 1) < 1e-3


NETWORK_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@NETWORK_SETTINGS
@given(network_cases())
def test_engine_matches_reference_with_networks(case: NetworkCase) -> None:
    states = evaluate(
        case.scheme,
        subjects_table(case.subjects),
        records_table(case.records),
        case.at,
        relations=relations_table(case.relations),
        ratings=ratings_table(case.ratings),
    )
    got = [tuple(row.values()) for row in states.to_table().to_pylist()]
    want = reference.network_evaluate(
        case.doc, case.subjects, case.records, case.at, case.relations, case.ratings
    )
    assert got == want


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network_cases(max_rows=40, with_ratings=True))
def test_reputation_matches_reference(case: NetworkCase) -> None:
    engine = Engine(case.scheme)
    prepared = engine.prepare(subjects_table(case.subjects), records_table(case.records))
    network = engine.prepare_network(
        prepared, relations=relations_table(case.relations), ratings=ratings_table(case.ratings)
    )
    got = reputation(network, to_day(case.at))
    codes = prepared.codes.to_pylist()
    want = reference.reputation(case.doc, codes, case.ratings, case.at)
    assert got.trust.tolist() == [want.trust[c] for c in codes]
    assert got.iterations == want.iterations
    assert got.trust.sum() <= TOTAL_TRUST
    rating = [want.rating[c] for c in codes]
    assert [int(r) if ok else None for r, ok in zip(got.rating, got.rated, strict=True)] == rating


# ---- the scheme language ----------------------------------------------------------------

BAD = [
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [household], where: "
        "{related: {via: [friend], where: {grade_in: [A]}}}}}}",
        "lists[0].when.related.where.related: related conditions do not nest",
    ),
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [household], where: "
        "{rule: unfulfilled, at_least: 1}}}}",
        "lists[0].when.related.where.rule: a related subject is judged by its score",
    ),
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [household], where: "
        "{grade_in: [A]}}}}\n  - {id: y, kind: black, when: {related: {via: [friend], where: "
        "{list: x}}}}",
        "lists[1].when.related.where.list: list 'x' uses relations",
    ),
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [cousin], where: "
        "{grade_in: [A]}}}}",
        "lists[0].when.related.via[0]: 'cousin' is not one of",
    ),
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [], where: {grade_in: [A]}}}}",
        "lists[0].when.related.via: must not be empty",
    ),
    (
        "lists:\n  - {id: x, kind: black, when: {related: {via: [friend]}}}",
        "lists[0].when.related.where: required",
    ),
    ("ratings: {stars: 5}\nrules2:", "rules2: unknown key"),
]


@pytest.mark.parametrize("extra, message", BAD)
def test_invalid_network_conditions(extra: str, message: str) -> None:
    text = FAMILY.split("lists:")[0] + extra + "\n"
    with pytest.raises(InvalidScheme) as info:
        parse_scheme(text, "s.yaml")
    assert any(message in str(p) for p in info.value.problems), info.value.problems


PEER_BAD = [
    ("{id: r, measure: peer_rating, points: 1}", "rules[0]: a peer_rating rule needs none_points"),
    (
        "{id: r, measure: peer_trust, points: 1, none_points: 3}",
        "rules[0].none_points: none_points goes only with measure days_since or peer_rating",
    ),
    (
        "{id: r, measure: peer_trust, types: [x.y], points: 1}",
        "rules[0].types: a peer_trust rule reads peer ratings, not record types",
    ),
    (
        "{id: r, measure: peer_trust, window_days: 3, points: 1}",
        "rules[0].window_days: a peer_trust rule takes its window from ratings.window_days",
    ),
    ("{id: r, measure: count, points: 1}", "rules[0].types: required"),
]


@pytest.mark.parametrize("rule, message", PEER_BAD)
def test_invalid_peer_rules(rule: str, message: str) -> None:
    text = (
        "scheme: s\nsubjects: [person]\nrecords: {x.y: {category: c}}\nscore: {base: 0}\n"
        f"ratings: {{stars: 5}}\nrules:\n  - {rule}\ngrades: [{{grade: A}}]\n"
    )
    with pytest.raises(InvalidScheme) as info:
        parse_scheme(text, "s.yaml")
    assert message in [f"{p.where}: {p.message}" for p in info.value.problems]


def test_peer_rule_needs_the_ratings_section() -> None:
    text = (
        "scheme: s\nsubjects: [person]\nrecords: {}\nscore: {base: 0}\n"
        "rules:\n  - {id: r, measure: peer_trust, points: 1}\ngrades: [{grade: A}]\n"
    )
    with pytest.raises(InvalidScheme) as info:
        parse_scheme(text, "s.yaml")
    assert [str(p) for p in info.value.problems] == [
        "s.yaml:6: rules[0].measure: a peer_trust rule needs a ratings section in the scheme"
    ]


# ---- the rights audit -------------------------------------------------------------------


def test_audit_flags_every_use_as_collective_liability() -> None:
    scheme, places = parse_scheme(FAMILY, "family.yaml")
    found = [f for f in audit(scheme, places) if f.code == "collective-liability"]
    assert [(f.severity, f.where, f.line) for f in found] == [
        ("critical", "lists[1].when.related", 18),
        ("critical", "lists[2].when.related", 21),
        ("critical", "lists[3].when.related", 24),
        ("critical", "measures[0].when.any[1].related", 30),
    ]
    assert "via household" in found[0].message
    with pytest.raises(Exception, match="critical rights-audit findings"):
        refuse_critical(scheme, audit(scheme, places))


def test_nosedive_preset() -> None:
    loaded = load("nosedive")
    found = audit(loaded.scheme, loaded.places)
    assert sorted(f.code for f in found) == [
        "collective-liability",
        "no-appeal",
        "no-notice",
        "unrelated-sanction",
        "unrelated-sanction",
        "unrelated-sanction",
    ]
    critical = found[0]
    assert (critical.code, critical.where) == ("collective-liability", "rules[0].measure")
    assert loaded.text.splitlines()[critical.line - 1].strip().startswith("measure: peer_rating")
    for source in ("Nosedive", "eBay", "Uber", "EigenTrust", "Kamvar"):
        assert source in loaded.text


# ---- files and the command line ---------------------------------------------------------


def test_relation_file_problems_name_their_lines() -> None:
    data = (
        b"subject,relation,other,from,to\n"
        b"a,household,b,2024-01-01,\n"
        b"a,cousin,c,,\n"
        b"a,friend,a,,\n"
        b"b,employer,x,2024-05-01,2024-01-01\n"
        b"c,friend,,2024-13-01,\n"
    )
    with pytest.raises(InvalidInput) as info:
        parse_relations(data, source="rel.csv")
    assert [str(p) for p in info.value.problems] == [
        "rel.csv:3: relation: 'cousin' is not one of household, friend, employer, "
        "legal_representative",
        "rel.csv:4: other: is the subject itself: a relation links two subjects",
        "rel.csv:5: to: 2024-01-01 is before from 2024-05-01: a relation ends on or after the "
        "day it begins",
        "rel.csv:6: other: missing: the code of the related subject",
        "rel.csv:6: from: '2024-13-01' is not a valid calendar date",
    ]


def test_rating_file_problems_name_their_lines() -> None:
    data = (
        b"rater,ratee,stars,date\n"
        b"a,b,5,2024-01-01\n"
        b"a,b,4,2024-01-01\n"
        b"b,b,3,2024-01-01\n"
        b"c,a,0,2024-02-01\n"
        b"c,a,x,\n"
    )
    with pytest.raises(InvalidInput) as info:
        parse_ratings(data, source="rat.csv")
    assert [str(p) for p in info.value.problems] == [
        "rat.csv:3: stars: 4 stars, but line 2 rates the same subject by the same rater on the "
        "same day with 5: keep one",
        "rat.csv:4: ratee: is the rater: no one rates themselves",
        "rat.csv:5: stars: '0' is not a whole number of stars from 1 to 10",
        "rat.csv:6: stars: 'x' is not a whole number of stars from 1 to 10",
        "rat.csv:6: date: missing: the date of the rating, as YYYY-MM-DD",
    ]


def test_relations_from_parquet(tmp_path: Path) -> None:
    table = pa.table(
        {
            "subject": pa.array(["a", "b"]).dictionary_encode(),
            "relation": ["household", "friend"],
            "other": ["b", "c"],
            "from": pa.array([dt.date(2024, 1, 1), None], pa.date32()),
        }
    )
    pq.write_table(table, tmp_path / "rel.parquet")
    read = read_relations(tmp_path / "rel.parquet")
    assert read.column("from").to_pylist() == [dt.date(2024, 1, 1), None]
    assert read.column("to").null_count == 2
    pq.write_table(table.append_column("to", pa.array([1, 2])), tmp_path / "bad.parquet")
    with pytest.raises(InvalidInput, match="to: column of type int64; expected date or text"):
        read_relations(tmp_path / "bad.parquet")


runner = CliRunner()


def run(*args: str, code: int = 0) -> tuple[str, str]:
    """Run the CLI; check the exit status; return stdout and stderr (stderr with the frame
    of usage errors removed and whitespace collapsed, since it is wrapped to the terminal)."""
    result = runner.invoke(command_app(), list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout, " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())


@pytest.fixture
def town(tmp_path: Path) -> dict[str, Path]:
    p = _people(4)
    files = {
        "subjects": "code,kind\n" + "".join(f"{c},person\n" for c in p),
        "records": f"id,subject,type,occurred_at\nj1,{p[0]},court.unfulfilled,2025-01-05\n",
        "relations": f"subject,relation,other\n{p[0]},household,{p[1]}\n{p[2]},friend,{p[0]}\n",
        "ratings": "rater,ratee,stars,date\n"
        f"{p[0]},{p[1]},5,2025-06-01\n{p[2]},{p[1]},4,2025-06-02\n{p[1]},{p[3]},1,2025-06-03\n",
    }
    out = {}
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
        out[name] = tmp_path / f"{name}.csv"
    (tmp_path / "family.yaml").write_text(FAMILY)
    out["family"] = tmp_path / "family.yaml"
    return out


def test_cli_refuses_collective_liability_on_real_records(town: dict[str, Path]) -> None:
    base = ["--subjects", str(town["subjects"]), "--records", str(town["records"]), "--at", AT]
    _, err = run(
        "score", "-s", str(town["family"]), *base, "--relations", str(town["relations"]), code=2
    )
    assert "refused" in err and "collective-liability" in err
    _, err = run("score", "-s", "nosedive", *base, "--ratings", str(town["ratings"]), code=2)
    assert "refused" in err and "collective-liability" in err
    out, err = run(
        "score",
        "-s",
        str(town["family"]),
        *base,
        "--relations",
        str(town["relations"]),
        "--synthetic",
        "-f",
        "csv",
    )
    assert "synthetic" in err
    lists = [line.split(",")[3] for line in out.splitlines()[1:]]
    assert lists == ["debtors", "relatives_of_debtors", "", ""]


def test_cli_network_options(town: dict[str, Path]) -> None:
    base = [
        "--subjects",
        str(town["subjects"]),
        "--records",
        str(town["records"]),
        "--at",
        AT,
        "--synthetic",
    ]
    _, err = run("score", "-s", str(town["family"]), *base, code=2)
    assert "--relations" in err and "relation conditions" in err
    _, err = run("score", "-s", "nosedive", *base, code=2)
    assert "--ratings" in err
    _, err = run("score", "-s", "rongcheng", *base, "--ratings", str(town["ratings"]), code=2)
    assert "no rules on peer ratings" in err
    _, err = run(
        "score",
        "-s",
        "nosedive",
        *base,
        "--ratings",
        str(town["ratings"]),
        "--relations",
        str(town["relations"]),
        code=2,
    )
    assert "no relation conditions" in err
    out, _ = run("score", "-s", "nosedive", *base, "--ratings", str(town["ratings"]), "-f", "csv")
    assert [line.split(",")[1] for line in out.splitlines()[1:]] == ["300", "450", "300", "100"]


def test_cli_explain_shows_ratings_and_relatives(town: dict[str, Path]) -> None:
    p = _people(4)
    base = [
        "--subjects",
        str(town["subjects"]),
        "--records",
        str(town["records"]),
        "--at",
        AT,
        "--synthetic",
    ]
    out, _ = run("explain", p[1], "-s", "nosedive", *base, "--ratings", str(town["ratings"]))
    assert "peer ratings behind rule peer_rating (2;" in out
    assert f"{p[0][:4]}**********{p[0][-4:]}  5 stars on 2025-06-01" in out
    out, _ = run(
        "explain", p[1], "-s", str(town["family"]), *base, "--relations", str(town["relations"])
    )
    assert "related subjects behind list relatives_of_debtors" in out
    assert f"  {p[0][:4]}**********{p[0][-4:]}" in out
    assert p[0] not in out  # the relative was not named by the reader: masked


def test_cli_checks_the_network_files(town: dict[str, Path], tmp_path: Path) -> None:
    p = _people(4)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"rater,ratee,stars,date\n{p[0]},{p[1]},7,2025-06-01\n")
    base = [
        "--subjects",
        str(town["subjects"]),
        "--records",
        str(town["records"]),
        "--at",
        AT,
        "--synthetic",
    ]
    _, err = run("score", "-s", "nosedive", *base, "--ratings", str(bad), code=2)
    assert "bad.csv:2: stars: 7 stars; the scheme rates from 1 to 5" in err
    bad.write_text(f"subject,relation,other\n{p[0]},employer,{p[1]}\n")
    _, err = run("score", "-s", str(town["family"]), *base, "--relations", str(bad), code=2)
    assert "bad.csv:2: other:" in err
    assert "in an employer relation the other is an organization" in err

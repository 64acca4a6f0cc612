"""The scheme language: loading, every problem with its place, the audit, the presets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.errors import InvalidScheme
from socialcredit.scheme import audit, load, load_scheme_text, parse_scheme, preset_names
from socialcredit.scheme.model import json_schema

EXAMPLE = (Path(__file__).parent / "schemes" / "example.yaml").read_text()


def test_the_example_of_scheme_md_is_valid() -> None:
    scheme = load_scheme_text(EXAMPLE)
    assert scheme.scheme == "rongcheng"
    assert [r.id for r in scheme.rules] == [
        "red_lights",
        "donations",
        "clean_driving",
        "unfulfilled",
    ]


def _problems(text: str) -> list[str]:
    with pytest.raises(InvalidScheme) as info:
        load_scheme_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


# (edit of the example, expected "line: where: message" fragment)
CASES = [
    (("cap: 50", "cap: 0"), "s.yaml:26: rules[0].cap: must be an integer greater than 0"),
    (("cap: 50", "cap: 50\n    colour: red"), "s.yaml:27: rules[0].colour: unknown key"),
    (
        ("    per: 100", "    per: 100\n    bins: [{points: 1}]"),
        "s.yaml:27: rules[1]: a rule needs exactly one of points",
    ),
    (("    points: 0\n", "\n"), "s.yaml:41: rules[3]: a rule needs exactly one of points"),
    (("none_points: 10", ""), "rules[2]: a days_since rule needs bins and none_points"),
    (
        ("types: [court.unfulfilled]", "types: [court.unknown]"),
        "rules[3].types[0]: record type 'court.unknown' is not in the records catalogue",
    ),
    (
        ("{rule: unfulfilled, at_least: 1}", "{rule: nope, at_least: 1}"),
        "lists[0].when.rule: no rule with id 'nope'",
    ),
    (
        ("{rule: unfulfilled, at_least: 1}", "{rule: unfulfilled}"),
        "lists[0].when: a rule condition needs at_least or at_most",
    ),
    (
        ("{grade_in: [AAA]}, {not", "{grade_in: [AAAA]}, {not"),
        "lists[1].when.all[0].grade_in[0]: no grade 'AAAA'",
    ),
    (
        ("{rule: unfulfilled, at_least: 1}", "{list: honour_roll}"),
        "lists[0].when.list: list 'honour_roll' comes later in lists",
    ),
    (
        ("{not: {list: dishonest_debtors}}", "{not: {list: honour_roll}}"),
        "lists[1].when.all[1].not.list: list 'honour_roll' cannot depend on itself",
    ),
    (
        ("{not: {list: dishonest_debtors}}", "{not: {list: dishonest_debtors, extra: 1}}"),
        "lists[1].when.all[1].not.extra: unknown key",
    ),
    (
        ("{not: {list: dishonest_debtors}}", "{not: {not: {list: dishonest_debtors, zz: 1}}}"),
        "lists[1].when.all[1].not.not.zz: unknown key",
    ),
    (
        ("{not: {list: dishonest_debtors}}", "{not: {grade_in: [A], list: dishonest_debtors}}"),
        "lists[1].when.all[1].not: a condition must have exactly one of the forms",
    ),
    (("- {grade: D}", "- {grade: D, min: 0}"), "grades[3].min: the last grade takes no min"),
    (("- {grade: A,   min: 960}", "- {grade: A}"), "grades[1]: every grade but the last needs"),
    (("- {max: 364, points: 0}", "- {points: 0}"), "rules[2].bins[0]: every bin but the last"),
    (("- {points: 10}", "- {max: 9, points: 10}"), "rules[2].bins[1].max: the last bin takes"),
    (("grant: [loan.preferential_rate]", "grant: []"), "measures[1]: a measure needs deny or"),
    (("id: green_channel", "id: flight_ban"), "measures[1].id: duplicate id 'flight_ban'"),
    (("id: donations", "id: red_lights"), "rules[1].id: duplicate id 'red_lights'"),
    (("kind: black", "kind: grey"), "lists[0].kind: 'grey' is not one of 'black' or 'red'"),
    (
        ("when: {grade_in: [AAA]}", "when: {grade: AAA}"),
        "measures[1].when: a condition must have exactly one of the forms",
    ),
    (("scheme: rongcheng", "scheme: Rong-Cheng"), "scheme: 'Rong-Cheng' is not a valid name"),
    (("notice_days: 7", "notice_days: seven"), "notice_days: must be an integer"),
    (("  max: 1200", "  max: -5"), "score.min: min 0 is above max -5"),
    (("subjects: [person]", "subjects: [person, robot]"), "subjects[1]: 'robot' is not one of"),
    (("appeal_days: 30", "appeal_days: 30\nappeal_days: 31"), "s.yaml:6: appeal_days: duplicate"),
]


@pytest.mark.parametrize(("edit", "expected"), CASES, ids=[c[1][:50] for c in CASES])
def test_each_problem_is_reported_with_its_place(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in EXAMPLE
    problems = _problems(EXAMPLE.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    text = EXAMPLE
    for (old, new), _ in CASES[:8]:
        text = text.replace(old, new, 1)
    problems = _problems(text)
    assert len(problems) >= 6, problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("a: [1, 2", "not valid YAML"),
        ("- just\n- a list\n", "a scheme must be a mapping"),
    ],
)
def test_unreadable_files(text: str, expected: str) -> None:
    assert any(expected in p for p in _problems(text))


def test_audit_of_the_example() -> None:
    scheme, places = parse_scheme(EXAMPLE, "example.yaml")
    found = {(f.code, f.where) for f in audit(scheme, places)}
    # clean_driving reads an adverse type with no window; lists publish persons; the flight
    # ban is transport on judicial grounds (the catalogue gives travel.air a context).
    assert ("permanent-record", "rules[2]") in found
    assert ("published-persons", "lists[0].publish") in found
    assert ("unrelated-sanction", "measures[0].deny[0]") in found
    assert not any(code in ("no-notice", "no-appeal") for code, _ in found)


def test_protected_categories_are_critical_wherever_they_reach() -> None:
    text = EXAMPLE.replace("category: charity", "category: religion")
    scheme, places = parse_scheme(text, "s.yaml")
    critical = [(f.code, f.where) for f in audit(scheme, places) if f.severity == "critical"]
    # the rule reading the type; the honour roll (grade depends on every scoring rule) and
    # the measure on grade AAA
    assert ("protected-category", "rules[1].types[0]") in critical
    assert ("protected-category", "lists[1].when") in critical
    assert ("protected-category", "measures[1].when") in critical
    assert ("protected-category", "lists[0].when") not in critical


def test_no_notice_and_no_appeal() -> None:
    text = EXAMPLE.replace("notice_days: 7", "notice_days: 0").replace("appeal_days: 30", "#")
    scheme, places = parse_scheme(text, "s.yaml")
    codes = {f.code: f for f in audit(scheme, places)}
    assert codes["no-notice"].line == 4
    assert "no-appeal" in codes


def test_presets_are_all_there_and_valid() -> None:
    names = preset_names()
    for expected in (
        "rongcheng",
        "court_dishonest_debtors",
        "enterprise_credit",
        "sesame",
        "civil_aviation",
        "fcra_bureau",
    ):
        assert expected in names
    for name in names:
        loaded = load(name)
        assert loaded.scheme.scheme == name


def test_unknown_scheme_names_the_presets() -> None:
    with pytest.raises(InvalidScheme) as info:
        load("no_such_scheme")
    assert "rongcheng" in str(info.value)


# ---- null is never a value -------------------------------------------------------------

_NULL_HEAD = """scheme: nulls
subjects: [person]
notice_days: 7
appeal_days: 30
records:
  traffic.red_light: {category: traffic, adverse: true}
score: {base: 1000}
"""
_NULL_GRADES = "grades:\n  - {grade: A, min: 1000}\n  - {grade: B}\n"
_RED = "  - {id: red, types: [traffic.red_light], window_days: 365, measure: count, points: 1}\n"

# (a scheme with a key set to null, the problems it must give: "line: where: message")
NULL_CASES = [
    (
        _NULL_HEAD
        + "rules:\n  - {id: red, types: [traffic.red_light], measure: count, points: null}\n"
        + _NULL_GRADES,
        [
            "s.yaml:9: rules[0].points: must be an integer, not null",
            "s.yaml:9: rules[0]: a rule needs exactly one of points (linear form) or bins",
        ],
    ),
    (
        _NULL_HEAD
        + "rules:\n"
        + "  - {id: clean, types: [traffic.red_light], measure: days_since, bins: null,"
        + " none_points: 10}\n"
        + _NULL_GRADES,
        [
            "s.yaml:9: rules[0].bins: must be a list, not null",
            "s.yaml:9: rules[0]: a days_since rule needs bins and none_points",
        ],
    ),
    (
        "scheme: nulls\nsubjects: [person]\nrecords: {}\nratings: null\nscore: {base: 0}\n"
        "rules:\n  - {id: rep, measure: peer_rating, points: 1, none_points: 300}\n"
        "grades:\n  - {grade: A}\n",
        [
            "s.yaml:4: ratings: must be a mapping, not null",
            "s.yaml:7: rules[0].measure: a peer_rating rule needs a ratings section",
        ],
    ),
    (
        _NULL_HEAD
        + "rules:\n  - id: clean\n    types: [traffic.red_light]\n    measure: days_since\n"
        + "    bins: [{max: 10, points: 0}, {points: 5}]\n    none_points: null\n"
        + _NULL_GRADES,
        [
            "s.yaml:13: rules[0].none_points: must be an integer, not null",
            "s.yaml:9: rules[0]: a days_since rule needs bins and none_points",
        ],
    ),
    (
        _NULL_HEAD
        + "rules:\n"
        + _RED.replace("points: 1", "points: 1, per: ~, cap: null")
        # the last bin and the last grade take no bound: null is not a way to leave it out
        + "  - {id: c, types: [traffic.red_light], measure: days_since, none_points: 0,"
        + " bins: [{max: 3, points: 1}, {max: null, points: 2}]}\n"
        + "grades:\n  - {grade: A, min: 1000}\n  - {grade: B, min: null}\n",
        [
            "s.yaml:9: rules[0].per: must be an integer, not null",
            "s.yaml:9: rules[0].cap: must be an integer, not null",
            "s.yaml:10: rules[1].bins[1].max: must be an integer, not null",
            "s.yaml:13: grades[1].min: must be an integer, not null",
        ],
    ),
    (
        _NULL_HEAD.replace("notice_days: 7", "notice_days:").replace("adverse: true", "adverse: ~")
        + "rules:\n"
        + _RED
        + "lists:\n  - {id: l, kind: null, when: {rule: red, at_least: null}}\n"
        + "measures:\n  - {id: m, when: {list: l}, deny: [x], agency: null}\n"
        + _NULL_GRADES,
        [
            "s.yaml:3: notice_days: must be an integer, not null",
            "s.yaml:6: records.traffic.red_light.adverse: must be true or false, not null",
            "s.yaml:11: lists[0].kind: null is not one of 'black' or 'red'",
            "s.yaml:11: lists[0].when.at_least: must be an integer, not null",
            "s.yaml:11: lists[0].when: a rule condition needs at_least or at_most",
            "s.yaml:13: measures[0].agency: must be a string, not null",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), NULL_CASES)
def test_a_key_set_to_null_is_a_problem_at_its_place(text: str, expected: list[str]) -> None:
    problems = _problems(text)
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)


@pytest.mark.parametrize("text", [text for text, _ in NULL_CASES[:4]])
@pytest.mark.parametrize("command", ["score", "explain", "may"])
def test_scoring_refuses_a_scheme_with_a_null(tmp_path: Path, text: str, command: str) -> None:
    code = "005118197606274176"
    (tmp_path / "nulls.yaml").write_text(text)
    (tmp_path / "s.csv").write_text(f"code,kind\n{code},person\n")
    (tmp_path / "r.csv").write_text(
        f"id,subject,type,occurred_at\nr1,{code},traffic.red_light,2025-01-01\n"
    )
    args = {"score": [command], "explain": [command, code], "may": [command, code, "travel"]}
    result = CliRunner().invoke(
        command_app(),
        [
            *args[command],
            "--scheme",
            str(tmp_path / "nulls.yaml"),
            "--subjects",
            str(tmp_path / "s.csv"),
            "--records",
            str(tmp_path / "r.csv"),
            "--at",
            "2025-02-01",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "scheme is invalid" in result.stderr
    assert "not null" in result.stderr


# ---- messages in the words of the docs ---------------------------------------------------

MESSAGE_CASES = [
    (
        ("notice_days: 7", "notice_days: -1"),
        "s.yaml:4: notice_days: must be an integer of at least 0",
    ),
    (
        ("{category: traffic,", '{category: "",'),
        "records.traffic.red_light.category: must not be empty",
    ),
    (
        ("{context: transport}", '{context: ""}'),
        "s.yaml:71: actions.travel.air.context: must not be empty",
    ),
    (
        ("{grade: AAA,", "{grade: " + "A" * 33 + ","),
        "grades[0].grade: must be at most 32 characters",
    ),
    (("scheme: rongcheng", "scheme: " + "r" * 65), "scheme: must be at most 64 characters"),
]


@pytest.mark.parametrize(("edit", "expected"), MESSAGE_CASES, ids=[c[1] for c in MESSAGE_CASES])
def test_messages_follow_the_docs(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in EXAMPLE
    problems = _problems(EXAMPLE.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


# ---- the JSON Schema agrees with the check -----------------------------------------------


def _schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schema_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_nodes(value)


def test_the_json_schema_offers_no_null_and_closes_the_maps() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    nodes = list(_schema_nodes(schema))
    assert not [n for n in nodes if n.get("type") == "null"]
    assert not [n for n in nodes if "default" in n and n["default"] is None]
    top, rule = schema["properties"], schema["$defs"]["Rule"]
    for name in ("records", "actions"):
        assert top[name]["additionalProperties"] is False
        assert top[name]["patternProperties"]
    assert top["subjects"]["uniqueItems"] is True
    assert rule["properties"]["types"]["uniqueItems"] is True
    assert rule["properties"]["points"]["type"] == "integer"
    assert top["ratings"] == {"$ref": "#/$defs/RatingsSpec"}


def test_the_json_schema_knows_the_forms_of_a_rule() -> None:
    schema = json_schema()
    rules = schema["$defs"]["Rule"]["allOf"]
    assert {"oneOf": [{"required": ["points"]}, {"required": ["bins"]}]} in rules
    # a rule on records needs types; a rule on peer ratings has none
    (types,) = [r for r in rules if r.get("else") == {"required": ["types"]}]
    assert types["if"]["properties"]["measure"]["enum"] == ["peer_rating", "peer_trust"]
    assert types["then"]["properties"]["types"] is False
    days = [r for r in rules if r.get("then") == {"required": ["bins", "none_points"]}]
    assert days and days[0]["if"]["properties"]["measure"]["enum"] == ["days_since"]
    condition = schema["$defs"]["RuleCondition"]
    assert condition["anyOf"] == [{"required": ["at_least"]}, {"required": ["at_most"]}]
    assert len(schema["$defs"]["MeasureSpec"]["anyOf"]) == 2
    assert schema["then"] == {"required": ["ratings"]}


def test_the_cli_prints_the_json_schema() -> None:
    result = CliRunner().invoke(command_app(), ["scheme", "schema"], catch_exceptions=False)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json_schema()

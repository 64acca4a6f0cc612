"""The scheme language: loading, every problem with its place, the audit, the presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from socialcredit.errors import InvalidScheme
from socialcredit.scheme import audit, load, load_scheme_text, parse_scheme, preset_names

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

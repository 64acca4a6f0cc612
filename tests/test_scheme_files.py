"""Scheme files that are not plain YAML mappings: every one ends in problems with a place
(never an exception), and anchors, aliases and merge keys are read as YAML defines them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from socialcredit.cli.app import command_app
from socialcredit.errors import InvalidScheme, Problem
from socialcredit.lab.world import InvalidWorld, load_world
from socialcredit.scheme import load, load_scheme_text, parse_scheme_file
from socialcredit.scheme.places import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    Places,
    format_path,
    load_yaml,
)

HEAD = "scheme: x\nsubjects: [person]\nrecords: {}\nscore: {base: 1}\ngrades: [{grade: A}]\n"

MERGED = """scheme: merge
subjects: [person]
notice_days: 7
appeal_days: 30
records:
  a.b: {category: traffic, adverse: true}
score: {base: 100}
rules:
  - &base {id: r1, types: [a.b], window_days: 365, measure: count, points: -5}
  - <<: *base
    id: r2
grades: [{grade: A}]
"""


def _problems(text: str) -> list[Problem]:
    with pytest.raises(InvalidScheme) as info:
        load_scheme_text(text, "s.yaml")
    return info.value.problems


def _one(text: str) -> str:
    problems = _problems(text)
    assert len(problems) == 1, problems
    return str(problems[0])


def _alias_bomb(levels: int) -> str:
    """HEAD and then lists of ten aliases of the list before: 10**levels values in all."""
    lines = ["l0: &l0 [" + ", ".join(["a"] * 10) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return HEAD + "\n".join(lines) + "\n"


# ---- reading the file ----------------------------------------------------------------


def test_a_file_that_is_not_utf8_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"scheme: x\ntitle: caf\xe9\n")
    for read in (load, parse_scheme_file):
        with pytest.raises(InvalidScheme) as info:
            read(str(path))
        (problem,) = info.value.problems
        assert (problem.source, problem.line) == (str(path), 2)
        assert problem.message.startswith("not UTF-8 text (byte 0xe9")


def test_a_file_that_cannot_be_read_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidScheme) as info:
        parse_scheme_file(tmp_path)  # a folder
    (problem,) = info.value.problems
    assert problem.message.startswith("cannot be read (")


def test_a_character_yaml_does_not_allow_is_placed_on_its_line() -> None:
    assert _one(HEAD + "title: a\x1bb\n") == (
        "s.yaml:6: not valid YAML: the character U+001B is not allowed"
    )


def test_a_yaml_error_with_a_context_says_both_parts() -> None:
    assert _one(HEAD + "a: &x 1\nb: &x 2\n") == (
        "s.yaml:7: not valid YAML: found duplicate anchor 'x'; first occurrence (line 6), "
        "second occurrence"
    )


# ---- nesting and aliases ------------------------------------------------------------


def test_an_alias_inside_its_own_anchor_is_a_problem_at_the_alias() -> None:
    assert _one(HEAD + "a: &a\n  - 1\n  - *a\n") == (
        "s.yaml:8: a[1]: the alias *a contains itself (it is inside its anchor &a of line 6)"
    )
    assert _one(HEAD + "a: &a {b: {<<: *a}}\n").startswith(
        "s.yaml:6: a.b: the alias *a contains itself"
    )


def test_nesting_deeper_than_the_limit_is_refused_before_it_recurses() -> None:
    deep = HEAD + "description: " + "[" * 3000 + "]" * 3000 + "\n"
    assert _one(deep) == (
        f"s.yaml:6: nested too deeply (more than {MAX_DEPTH} levels of lists and mappings)"
    )
    # the limit itself is allowed; through aliases, the nesting of the values counts
    at_limit = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_yaml(at_limit, "s.yaml")[2] == []
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150))
    (problem,) = load_yaml(chain, "s.yaml")[2]
    assert (problem.line, problem.message) == (
        MAX_DEPTH,
        "nested too deeply (more than 100 levels of lists and mappings)",
    )


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_limit() -> None:
    # 5 levels of 10 expand to 111,110 values; read whole, this takes seconds
    (problem,) = _problems(_alias_bomb(5))
    assert problem.message == f"aliases expand to more than {MAX_ALIAS_VALUES:,} values"
    assert problem.line == 10  # l4, the list whose aliases pass the limit
    # merge keys that merge mappings of merges are counted the same way
    merges = "m0: &m0 {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}\n"
    for i in range(1, 8):
        keys = ", ".join(f"k{j}: {{<<: *m{i - 1}}}" for j in range(10))
        merges += f"m{i}: &m{i} {{{keys}}}\n"
    (problem,) = load_yaml(merges, "s.yaml")[2]
    assert problem.message.startswith("aliases expand to more than")


def test_a_problem_through_an_alias_is_placed_at_the_alias() -> None:
    text = HEAD + (
        "lists:\n  - &l {id: l1, kind: black, when: {rule: ghost, at_least: 1}}\n  - *l\n"
    )
    through = " (written on line 7, used here through an alias)"
    assert [str(p) for p in _problems(text)] == [
        "s.yaml:7: lists[0].when.rule: no rule with id 'ghost'",
        "s.yaml:8: lists[1].id: duplicate id 'l1'" + through,
        "s.yaml:8: lists[1].when.rule: no rule with id 'ghost'" + through,
    ]


def test_a_scheme_with_a_few_anchors_still_loads() -> None:
    text = HEAD.replace("records: {}", "records: {a.b: &cat {category: traffic}, c.d: *cat}") + (
        "rules:\n"
        "  - &r {id: r1, types: &t [a.b, c.d], window_days: 365, measure: count, points: -5}\n"
        "  - {id: r2, types: *t, measure: count, points: 1}\n"
    )
    scheme = load_scheme_text(text)
    assert [r.types for r in scheme.rules] == [["a.b", "c.d"], ["a.b", "c.d"]]
    assert scheme.records["c.d"].category == "traffic"


# ---- merge keys ---------------------------------------------------------------------


def test_merge_keys_are_read() -> None:
    scheme = load_scheme_text(MERGED)
    first, second = scheme.rules
    assert second.id == "r2"
    assert second.model_dump(exclude={"id"}) == first.model_dump(exclude={"id"})


@pytest.mark.parametrize(
    "text",
    [
        "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc: {<<: [*a, *b], w: 3}\n",
        "a: &a {x: 1}\nd: {<<: *a, x: 9}\n",
        "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3, x: 0}\n",
        "f: {<<: {q: 1, r: 1}, r: 2}\n",
    ],
)
def test_merge_keys_mean_what_yaml_says(text: str) -> None:
    value, _, problems = load_yaml(text, "s.yaml")
    assert problems == []
    assert value == yaml.safe_load(text)
    for key, mapping in value.items():
        assert list(mapping) == list(yaml.safe_load(text)[key])


def test_of_merged_mappings_the_first_listed_wins() -> None:
    # YAML 1.1: keys in mappings earlier in the sequence override those in later ones
    text = "a: &a {x: 1, longer_key: 1}\nb: &b {longer_key: 2}\ne: {<<: [*b, *a]}\n"
    value, _, problems = load_yaml(text, "s.yaml")
    assert problems == []
    assert value["e"] == {"longer_key": 2, "x": 1}


def test_a_problem_in_a_merged_value_is_placed_at_the_merge_key() -> None:
    text = MERGED.replace("points: -5}", "points: -5, colour: red}")
    assert [str(p) for p in _problems(text)] == [
        "s.yaml:9: rules[0].colour: unknown key",
        "s.yaml:10: rules[1].colour: unknown key (written on line 9, used here through an alias)",
    ]


def test_a_merge_key_takes_mappings() -> None:
    assert _one(HEAD + "a: &a 1\nb: {<<: *a}\n") == (
        "s.yaml:7: b: a merge key (<<) takes a mapping or a list of mappings"
    )


# ---- tags and values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("score: {base: !custom 1}", "s.yaml:4: score.base: unknown tag '!custom'"),
        ('score: {base: !!int "x1"}', "s.yaml:4: score.base: 'x1' is not a valid integer"),
        ("score: {base: !!bool maybe}", "s.yaml:4: score.base: 'maybe' is not true or false"),
        ("score: !!set {base}", "s.yaml:4: score: the tag '!!set' is not supported"),
        (
            "score: {base: 1, effective: 2024-02-30}",
            "s.yaml:4: score.effective: '2024-02-30' is not a valid date or time",
        ),
    ],
)
def test_tags_and_values_yaml_cannot_read_are_problems(edit: str, expected: str) -> None:
    assert _one(HEAD.replace("score: {base: 1}", edit)) == expected


def test_a_key_must_be_a_single_value() -> None:
    assert _one(HEAD + "? [a, b]\n: 1\n") == (
        "s.yaml:6: a key must be a single value, not a list or mapping"
    )


# ---- control characters ------------------------------------------------------------


def test_control_characters_from_the_file_are_escaped_in_problems() -> None:
    key = "zz\\nx.yaml: ok \\u2014 scheme 'x'\\x1b[31m"
    (problem,) = _problems(HEAD + f'"{key}": 1\n')
    shown = str(problem)
    assert "\n" not in shown and "\x1b" not in shown
    assert shown == "s.yaml:6: [\"zz\\nx.yaml: ok — scheme 'x'\\x1b[31m\"]: unknown key"
    (problem,) = _problems(HEAD + '"a\\tb": 1\n"a\\tb": 2\n')
    assert str(problem) == "s.yaml:7: ['a\\tb']: duplicate key (an earlier line sets it already)"
    assert format_path(("records", "a\u2028b", 0)) == "records['a\\u2028b'][0]"
    assert Places("s.yaml", {("a",): 3}).problem(("a",), "x\x1b[2Jy").message == "x\\x1b[2Jy"


# ---- every way in refuses the same way ------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["scheme", "check"], ["scheme", "audit"], ["scheme", "show"], ["score", "--scheme"]],
)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"scheme: x\ntitle: caf\xe9\n", "bad.yaml:2: not UTF-8 text"),
        (b"a: &a [*a]\n", "bad.yaml:1: a[0]: the alias *a contains itself"),
    ],
)
def test_the_cli_refuses_such_files_with_status_2(
    tmp_path: Path, command: list[str], content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(command_app(), [*command, str(path)], catch_exceptions=False)
    assert result.exit_code == 2, result.stderr
    assert expected in result.stderr.replace(str(tmp_path) + "/", "")


def test_world_files_share_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("a: &a [*a]\n", encoding="utf-8")
    with pytest.raises(InvalidWorld) as info:
        load_world(str(path))
    (problem,) = info.value.problems
    assert (problem.line, problem.where) == (1, "a[0]")

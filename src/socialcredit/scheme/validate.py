"""Load a scheme and check it whole (SCHEME.md section 9).

Two passes over the same document, whose problems are reported together: the pydantic
models check shapes, and :func:`cross_check` checks the references between parts (on the
raw document, so that it still runs when some shape is wrong). An invalid scheme raises
:class:`~socialcredit.errors.InvalidScheme` and is never half-used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from socialcredit.errors import InvalidScheme, Problem
from socialcredit.scheme.model import INT64_MAX, Scheme
from socialcredit.scheme.places import Places, load_yaml

Loc = tuple[str | int, ...]

_TAGS = frozenset(
    {"rule", "score_at_least", "score_below", "grade_in", "list", "all", "any", "not", "related"}
)
_PEER = frozenset({"peer_rating", "peer_trust"})
_NONE_MEASURES = ("days_since", "peer_rating")

_BOUNDS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("of at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("less than or equal to", "le"),
}

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "date_type": "must be a date YYYY-MM-DD",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
}


def load_scheme_text(text: str, source: str = "<string>") -> Scheme:
    """Parse and validate a scheme from YAML text; raise InvalidScheme with every problem."""
    return parse_scheme(text, source)[0]


def parse_scheme(text: str, source: str = "<string>") -> tuple[Scheme, Places]:
    """Like :func:`load_scheme_text`, and also return the places (lines) of the file."""
    scheme, places, problems = parse_document(text, source, Scheme, cross_check, "scheme")
    if problems or scheme is None:
        raise InvalidScheme(problems)
    return scheme, places


M = TypeVar("M", bound=BaseModel)


def parse_document(
    text: str,
    source: str,
    model: type[M],
    cross: Callable[[Any, Places], list[Problem]],
    what: str,
) -> tuple[M | None, Places, list[Problem]]:
    """Parse a YAML document and check it whole: its shape against ``model`` and the
    references between its parts with ``cross``. Return the model (None when any problem
    was found), the places, and every problem, sorted by line."""
    data, places, problems = load_yaml(text, source)
    if data is not None and not isinstance(data, dict):
        problems.append(places.problem((), f"a {what} must be a mapping at the top level"))
    if problems:
        return None, places, problems
    value: M | None = None
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(shape_problems(exc, places))
    problems.extend(cross(data, places))
    problems.sort(key=lambda p: (p.line, p.where))
    return (value if not problems else None), places, _unique(problems)


def load_scheme_file(path: str | Path) -> Scheme:
    """Load and validate a scheme file."""
    return parse_scheme_file(path)[0]


def parse_scheme_file(path: str | Path) -> tuple[Scheme, Places]:
    """Load and validate a scheme file, with the places of its parts."""
    return parse_scheme(read_scheme_text(path), str(Path(path)))


def read_scheme_text(path: str | Path) -> str:
    """The text of a scheme file, line ends made ``\\n``; raise InvalidScheme when the file
    cannot be read or is not UTF-8 text (naming the line of the first bad byte)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InvalidScheme([Problem(str(p), 0, "", "no such file")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidScheme([Problem(str(p), 0, "", f"cannot be read ({reason})")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line = head.count(b"\n") + 1
        reason = f"byte 0x{data[exc.start]:02x}: {exc.reason}"
        raise InvalidScheme([Problem(str(p), line, "", f"not UTF-8 text ({reason})")]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop the union tag pydantic inserts after each condition position (one tag each: in
    ``not: {not: ...}`` the first ``not`` after a position is its tag, the second the key)."""
    out: list[str | int] = []
    tag_next = False
    for part in loc:
        if tag_next and isinstance(part, str) and part in _TAGS:
            tag_next = False
            continue
        out.append(part if isinstance(part, int) else str(part))
        tag_next = _is_condition_position(out)
    return tuple(out)


def _is_condition_position(prefix: list[str | int]) -> bool:
    last = prefix[-1]
    if last in ("when", "not", "where"):
        return True
    return isinstance(last, int) and len(prefix) >= 2 and prefix[-2] in ("all", "any")


def shape_problems(exc: ValidationError, places: Places) -> Iterator[Problem]:
    """The problems of a pydantic validation error, placed and worded for users."""
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        kind = err["type"]
        msg = _MESSAGES.get(kind, err["msg"])
        if kind.endswith("_type") and err["input"] is None:
            msg += ", not null"
        if kind in _BOUNDS:
            word, key = _BOUNDS[kind]
            bound = err["ctx"][key]
            number = "an integer" if isinstance(err["input"], int) else "a number"
            msg = f"must be {number} {word} {bound}"
            if bound == INT64_MAX:
                msg += " (64 bits)"
        elif kind == "string_pattern_mismatch":
            msg = f"{err['input']!r} is not a valid name (pattern {err['ctx']['pattern']})"
        elif kind == "literal_error":
            shown = "null" if err["input"] is None else repr(err["input"])
            msg = f"{shown} is not one of {err['ctx']['expected']}"
        elif kind in ("too_short", "string_too_short"):
            msg = "must not be empty"
        elif kind == "string_too_long":
            msg = f"must be at most {err['ctx']['max_length']} characters"
        yield places.problem(loc, msg)


# ---- cross-references, on the raw document ------------------------------------------


def _items(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]


def cross_check(data: Any, places: Places) -> list[Problem]:
    """Check the references between parts of a scheme; return every problem found."""
    if not isinstance(data, dict):
        return []
    out: list[Problem] = []
    catalogue = data.get("records") if isinstance(data.get("records"), dict) else {}
    assert isinstance(catalogue, dict)

    rules = _items(data, "rules")
    rule_ids = _check_ids("rules", rules, places, out)
    for i, rule in rules:
        _check_rule(i, rule, catalogue, places, out)
        _check_peer_rule(i, rule, _given(data, "ratings"), places, out)

    grades = _items(data, "grades")
    grade_names: set[str] = set()
    for i, g in grades:
        name = g.get("grade")
        if isinstance(name, str):
            if name in grade_names:
                out.append(places.problem(("grades", i, "grade"), f"duplicate grade {name!r}"))
            grade_names.add(name)
        last = i == len(data["grades"]) - 1
        if not last and g.get("min") is None:
            out.append(places.problem(("grades", i), "every grade but the last needs a min"))
        if last and g.get("min") is not None:
            out.append(places.problem(("grades", i, "min"), "the last grade takes no min"))

    score = data.get("score")
    if isinstance(score, dict):
        lo, hi = score.get("min"), score.get("max")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            out.append(places.problem(("score", "min"), f"min {lo} is above max {hi}"))

    subjects = data.get("subjects")
    if isinstance(subjects, list) and len(set(map(str, subjects))) != len(subjects):
        out.append(places.problem(("subjects",), "a kind is listed twice"))

    lists = _items(data, "lists")
    list_ids = _check_ids("lists", lists, places, out)
    known = Known(rule_ids, grade_names, set())
    for i, spec in lists:
        if "when" in spec:
            _check_condition(
                spec["when"],
                ("lists", i, "when"),
                known,
                places,
                out,
                this_list=spec.get("id"),
                all_lists=list_ids,
            )
        if isinstance(spec.get("id"), str):
            known.lists.add(spec["id"])
            if _uses_relations(spec.get("when"), known.collective):
                known.collective.add(spec["id"])

    measures = _items(data, "measures")
    _check_ids("measures", measures, places, out)
    for i, m in measures:
        if "when" in m:
            _check_condition(m["when"], ("measures", i, "when"), known, places, out)
        if not m.get("deny") and not m.get("grant"):
            out.append(places.problem(("measures", i), "a measure needs deny or grant"))
    return out


class Known:
    """The names a condition may refer to at a point of the file."""

    def __init__(self, rules: set[str], grades: set[str], lists: set[str]) -> None:
        self.rules = rules
        self.grades = grades
        self.lists = lists
        self.collective: set[str] = set()  # lists whose condition uses relations


def _uses_relations(cond: Any, collective: set[str]) -> bool:
    """Whether a raw condition has a ``related`` part or names a list that has one."""
    if not isinstance(cond, dict):
        return False
    if "related" in cond or cond.get("list") in collective:
        return True
    parts = [c for key in ("all", "any") if isinstance(cond.get(key), list) for c in cond[key]]
    if "not" in cond:
        parts.append(cond["not"])
    return any(_uses_relations(c, collective) for c in parts)


def _check_ids(
    section: str, items: list[tuple[int, dict[str, Any]]], places: Places, out: list[Problem]
) -> set[str]:
    seen: set[str] = set()
    for i, item in items:
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in seen:
                out.append(places.problem((section, i, "id"), f"duplicate id {ident!r}"))
            seen.add(ident)
    return seen


def _check_rule(
    i: int, rule: dict[str, Any], catalogue: dict[str, Any], places: Places, out: list[Problem]
) -> None:
    types = rule.get("types")
    if "types" not in rule and rule.get("measure") not in _PEER:
        out.append(places.problem(("rules", i, "types"), "required"))
    if isinstance(types, list):
        for j, t in enumerate(types):
            if isinstance(t, str) and t not in catalogue:
                out.append(
                    places.problem(
                        ("rules", i, "types", j),
                        f"record type {t!r} is not in the records catalogue",
                    )
                )
        if len(set(map(str, types))) != len(types):
            out.append(places.problem(("rules", i, "types"), "a type is listed twice"))
    # on values, not keys: a key set to null (refused by the models) gives no form
    has_points, has_bins = _given(rule, "points"), _given(rule, "bins")
    if has_points == has_bins:
        out.append(
            places.problem(
                ("rules", i),
                "a rule needs exactly one of points (linear form) or bins (table form)",
            )
        )
    if has_bins:
        for key in ("per", "cap"):
            if _given(rule, key):
                out.append(places.problem(("rules", i, key), f"{key} goes with points, not bins"))
        bins = rule.get("bins")
        if isinstance(bins, list):
            for j, row in enumerate(bins):
                if not isinstance(row, dict):
                    continue
                last = j == len(bins) - 1
                if not last and row.get("max") is None:
                    out.append(
                        places.problem(
                            ("rules", i, "bins", j), "every bin but the last needs a max"
                        )
                    )
                if last and row.get("max") is not None:
                    out.append(
                        places.problem(("rules", i, "bins", j, "max"), "the last bin takes no max")
                    )
    if rule.get("measure") == "days_since":
        if not has_bins or not _given(rule, "none_points"):
            out.append(places.problem(("rules", i), "a days_since rule needs bins and none_points"))
    elif rule.get("measure") == "peer_rating":
        if not _given(rule, "none_points"):
            out.append(places.problem(("rules", i), "a peer_rating rule needs none_points"))
    elif _given(rule, "none_points"):
        out.append(
            places.problem(
                ("rules", i, "none_points"),
                "none_points goes only with measure days_since or peer_rating",
            )
        )


def _given(mapping: dict[str, Any], key: str) -> bool:
    """Whether a key has a value (null is no value: the models report it at its place)."""
    return mapping.get(key) is not None


def _check_peer_rule(
    i: int, rule: dict[str, Any], has_ratings: bool, places: Places, out: list[Problem]
) -> None:
    """A rule on peer ratings reads the ratings input, configured by ``ratings:``."""
    measure = rule.get("measure")
    if measure not in _PEER:
        return
    if _given(rule, "types"):
        out.append(
            places.problem(
                ("rules", i, "types"), f"a {measure} rule reads peer ratings, not record types"
            )
        )
    if _given(rule, "window_days"):
        out.append(
            places.problem(
                ("rules", i, "window_days"),
                f"a {measure} rule takes its window from ratings.window_days",
            )
        )
    if not has_ratings:
        out.append(
            places.problem(
                ("rules", i, "measure"), f"a {measure} rule needs a ratings section in the scheme"
            )
        )


def _check_condition(
    cond: Any,
    loc: Loc,
    known: Known,
    places: Places,
    out: list[Problem],
    *,
    this_list: Any = None,
    all_lists: set[str] | None = None,
    inside: bool = False,
) -> None:
    if not isinstance(cond, dict):
        return
    if inside:
        _check_where(cond, loc, known, places, out)
    if "rule" in cond:
        rule = cond["rule"]
        if isinstance(rule, str) and rule not in known.rules:
            out.append(places.problem((*loc, "rule"), f"no rule with id {rule!r}"))
        if not _given(cond, "at_least") and not _given(cond, "at_most"):
            out.append(places.problem(loc, "a rule condition needs at_least or at_most"))
    if "grade_in" in cond and isinstance(cond["grade_in"], list):
        for j, g in enumerate(cond["grade_in"]):
            if isinstance(g, str) and g not in known.grades:
                out.append(places.problem((*loc, "grade_in", j), f"no grade {g!r}"))
    if "list" in cond:
        name = cond["list"]
        if isinstance(name, str) and name not in known.lists:
            if name == this_list:
                msg = f"list {name!r} cannot depend on itself"
            elif all_lists is not None and name in all_lists:
                msg = f"list {name!r} comes later in lists; a list may only use earlier lists"
            else:
                msg = f"no list with id {name!r}"
            out.append(places.problem((*loc, "list"), msg))
    for key in ("all", "any"):
        if isinstance(cond.get(key), list):
            for j, sub in enumerate(cond[key]):
                _check_condition(
                    sub,
                    (*loc, key, j),
                    known,
                    places,
                    out,
                    this_list=this_list,
                    all_lists=all_lists,
                    inside=inside,
                )
    if "not" in cond:
        _check_condition(
            cond["not"],
            (*loc, "not"),
            known,
            places,
            out,
            this_list=this_list,
            all_lists=all_lists,
            inside=inside,
        )
    body = cond.get("related")
    if isinstance(body, dict):
        if inside:
            out.append(places.problem((*loc, "related"), "related conditions do not nest"))
        elif "where" in body:
            _check_condition(
                body["where"],
                (*loc, "related", "where"),
                known,
                places,
                out,
                this_list=this_list,
                all_lists=all_lists,
                inside=True,
            )


def _check_where(
    cond: dict[str, Any], loc: Loc, known: Known, places: Places, out: list[Problem]
) -> None:
    """What the ``where`` of a related condition may read: the related subject's score,
    grade and lists that do not themselves use relations (docs/networks.md section 3)."""
    if "rule" in cond:
        out.append(
            places.problem(
                (*loc, "rule"),
                "a related subject is judged by its score, grade and lists, not by a rule; "
                "name a list that uses the rule",
            )
        )
    name = cond.get("list")
    if isinstance(name, str) and name in known.collective:
        out.append(
            places.problem(
                (*loc, "list"),
                f"list {name!r} uses relations; a related condition may only read lists "
                "that do not",
            )
        )

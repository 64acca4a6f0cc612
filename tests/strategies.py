"""Hypothesis strategies: valid schemes, subjects and ledgers around a date of evaluation.

Schemes are drawn as plain mappings, written out as YAML and loaded with
``load_scheme_text``, so only schemes the validator accepts are ever used (a drawn scheme
that fails validation is a bug of this module and raises). Record dates are drawn in a few
days around ``at`` and windows are short, so that window boundaries, notice boundaries,
ties and refs ended exactly at ``at`` happen often.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import yaml
from hypothesis import strategies as st

from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.scheme.model import Scheme
from socialcredit.scheme.validate import load_scheme_text

AT = dt.date(2024, 3, 1)

TYPE_NAMES = ("traffic.red_light", "court.unfulfilled", "court.fulfilled", "charity", "appeal.up")
CATEGORIES = ("traffic", "judicial", "charity", "process")
UNKNOWN_TYPE = "no.such.type"
ACTIONS = (
    "travel",
    "travel.air",
    "travel.rail",
    "travel.rail.high_speed",
    "travel.airport",
    "loan",
    "loan.rate",
)
WINDOWS = (1, 2, 3, 5, 8, 30)
# Codes whose code-point order differs from case-insensitive, locale or UTF-16 order.
CODES = ("a", "B", "b1", "b", "é", "Z", "A1", "\uff5a", "\U0001f600", "0", "x,y", 'q"', "n\nl")
STRAY_CODES = ("ghost", "b2")  # records of subjects that are not in the subjects table


# ---- schemes ---------------------------------------------------------------------------


def _condition(
    rule_ids: list[str], grade_names: list[str], list_ids: list[str], base: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Conditions over the given rules, grades and (earlier) lists."""
    leaves: list[st.SearchStrategy[dict[str, Any]]] = [
        st.integers(base - 40, base + 40).map(lambda n: {"score_at_least": n}),
        st.integers(base - 40, base + 40).map(lambda n: {"score_below": n}),
        st.lists(st.sampled_from(grade_names), min_size=1, max_size=3, unique=True).map(
            lambda gs: {"grade_in": gs}
        ),
    ]
    if rule_ids:
        bound = st.integers(0, 3) | st.integers(0, 12) | st.sampled_from([10**6, 10**12])
        leaves.append(
            st.builds(
                lambda r, lo, hi, which: {
                    "rule": r,
                    **({"at_least": lo} if which != "hi" else {}),
                    **({"at_most": hi} if which != "lo" else {}),
                },
                st.sampled_from(rule_ids),
                bound,
                bound,
                st.sampled_from(["lo", "hi", "both"]),
            )
        )
    if list_ids:
        leaves.append(st.sampled_from(list_ids).map(lambda i: {"list": i}))
    return st.recursive(
        st.one_of(leaves),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"all": cs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"any": cs}),
            inner.map(lambda c: {"not": c}),
        ),
        max_leaves=5,
    )


@st.composite
def _bins(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1 to 4 rows; the maxima in any order (the first row whose max >= measure wins)."""
    bound = st.integers(0, 12) | st.sampled_from([0, 10**6, 10**12])
    n = draw(st.integers(1, 4))
    rows: list[dict[str, Any]] = [
        {"max": draw(bound), "points": draw(st.integers(-20, 20))} for _ in range(n - 1)
    ]
    rows.append({"points": draw(st.integers(-20, 20))})
    return rows


@st.composite
def _rule(draw: st.DrawFn, i: int, types: list[str]) -> dict[str, Any]:
    measure = draw(st.sampled_from(["count", "amount", "days_since"]))
    rule: dict[str, Any] = {
        "id": f"r{i}",
        "types": draw(st.lists(st.sampled_from(types), min_size=1, max_size=3, unique=True)),
        "measure": measure,
    }
    if draw(st.booleans()):
        rule["window_days"] = draw(st.sampled_from(WINDOWS))
    if measure == "days_since" or draw(st.integers(0, 3)) == 0:
        rule["bins"] = draw(_bins())
        if measure == "days_since":
            rule["none_points"] = draw(st.integers(-20, 20))
    else:
        rule["points"] = draw(st.integers(-20, 20))
        if draw(st.booleans()):
            per = (
                st.sampled_from([1, 2, 3, 7])
                if measure == "count"
                else st.sampled_from([1, 3, 100, 10**6, 10**12])
            )
            rule["per"] = draw(per)
        if draw(st.booleans()):
            rule["cap"] = draw(st.integers(1, 30))
    return rule


@st.composite
def scheme_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A plain mapping of a valid scheme."""
    types = draw(st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=4, unique=True))
    catalogue = {
        t: {"category": draw(st.sampled_from(CATEGORIES)), "adverse": draw(st.booleans())}
        for t in types
    }
    base = draw(st.integers(-50, 1000))
    score: dict[str, Any] = {"base": base}
    if draw(st.booleans()):
        score["min"] = draw(st.integers(base - 40, base + 10))
    if draw(st.booleans()):
        score["max"] = draw(st.integers(max(score.get("min", base - 10), base - 10), base + 40))
    rules = [draw(_rule(i, types)) for i in range(draw(st.integers(0, 5)))]
    rule_ids = [r["id"] for r in rules]

    n_grades = draw(st.integers(1, 4))
    names = ["AAA", "AA", "A", "B", "C", "D"]
    grade_names = draw(st.permutations(names))[:n_grades]
    grades: list[dict[str, Any]] = [
        {"grade": g, "min": draw(st.integers(base - 40, base + 40))} for g in grade_names[:-1]
    ]
    grades.append({"grade": grade_names[-1]})

    lists: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        earlier = [spec["id"] for spec in lists]
        lists.append(
            {
                "id": f"l{i}",
                "kind": draw(st.sampled_from(["black", "red"])),
                "when": draw(_condition(rule_ids, grade_names, earlier, base)),
            }
        )
    list_ids = [spec["id"] for spec in lists]
    measures: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        m: dict[str, Any] = {
            "id": f"m{i}",
            "when": draw(_condition(rule_ids, grade_names, list_ids, base)),
        }
        deny = draw(st.lists(st.sampled_from(ACTIONS), max_size=3, unique=True))
        grant = draw(st.lists(st.sampled_from(ACTIONS), max_size=3, unique=True))
        if not deny and not grant:
            deny = [draw(st.sampled_from(ACTIONS))]
        if deny:
            m["deny"] = deny
        if grant:
            m["grant"] = grant
        measures.append(m)

    doc: dict[str, Any] = {
        "scheme": "drawn",
        "subjects": draw(
            st.sampled_from([["person"], ["organization"], ["person", "organization"]])
        ),
    }
    notice = draw(st.none() | st.integers(0, 10))
    if notice is not None:
        doc["notice_days"] = notice
    doc["records"] = catalogue
    doc["score"] = score
    if rules or draw(st.booleans()):
        doc["rules"] = rules
    doc["grades"] = grades
    if lists:
        doc["lists"] = lists
    if measures:
        doc["measures"] = measures
    return doc


def scheme_yaml(doc: dict[str, Any]) -> str:
    """A scheme mapping as YAML text."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load(doc: dict[str, Any]) -> Scheme:
    """Validate a drawn scheme through the YAML loader (raises if the strategy is wrong)."""
    return load_scheme_text(scheme_yaml(doc), "<drawn>")


schemes = scheme_dicts().map(load)
"""Validated ``Scheme`` models."""


# ---- subjects and records --------------------------------------------------------------


def day(offset: int, at: dt.date = AT) -> dt.date:
    return at + dt.timedelta(days=offset)


@st.composite
def subject_lists(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("person", "organization")
) -> list[dict[str, str]]:
    """0 to 5 subjects with distinct short codes; most of the kinds ``kinds`` (scored)."""
    codes = draw(
        st.lists(
            st.sampled_from(CODES),
            min_size=draw(st.sampled_from([0, 1, 1, 2])),
            max_size=5,
            unique=True,
        )
    )
    kind = st.sampled_from([*kinds, *kinds, *kinds, "person", "organization"])
    return [{"code": c, "kind": draw(kind)} for c in codes]


@st.composite
def record_lists(
    draw: st.DrawFn,
    subjects: list[dict[str, str]],
    doc: dict[str, Any],
    at: dt.date = AT,
    max_size: int = 20,
) -> list[dict[str, Any]]:
    """Records of the types of scheme ``doc`` around ``at``.

    Ages are drawn from -3..12 or next to a window of the scheme (window - 1, window,
    window + 1); recording dates from 0..12 days after occurrence or next to the notice
    boundary (``recorded_at + notice_days`` at ``at`` - 1, ``at``, ``at`` + 1). Some refs
    name an earlier record of the same subject, some another subject's record, some a later
    record, some no record. A few records are of unknown types or of subjects not in the
    subjects table; amounts run from 0 to 10**12.
    """
    types = list(doc["records"])
    codes = [s["code"] for s in subjects]
    subject = st.sampled_from(STRAY_CODES)
    if codes:
        subject = st.sampled_from(codes) | st.sampled_from(codes) | subject
    if draw(st.booleans()):
        type_ = st.sampled_from(types) | st.sampled_from(types) | st.just(UNKNOWN_TYPE)
    else:
        type_ = st.sampled_from(types)
    windows = sorted({r["window_days"] for r in doc.get("rules", []) if "window_days" in r})
    near_window = [a for w in windows for a in (w - 1, w, w + 1)]
    age = st.integers(-3, 12)
    if near_window:
        age = age | st.sampled_from(near_window)
    notice = doc.get("notice_days") or 0
    amount = st.one_of(
        st.just(0),
        st.integers(0, 1000),
        st.integers(0, 10**12),
        st.sampled_from([1, 99, 100, 101, 10**6 - 1, 10**6, 10**12]),
    )
    n = draw(st.integers(0, max_size))
    out: list[dict[str, Any]] = []
    for i in range(n):
        who = draw(subject)
        if draw(st.integers(0, 3)) == 0:
            # at the notice boundary: recorded_at + notice_days is at - 1, at or at + 1
            recorded = day(draw(st.integers(-1, 1)) - notice, at)
            occurred = recorded - dt.timedelta(days=draw(st.integers(0, 3)))
        else:
            occurred = day(-draw(age), at)
            recorded = occurred + dt.timedelta(days=draw(st.integers(0, 12) | st.integers(0, 2)))
        own = [r["id"] for r in out if r["subject"] == who]
        ref = None
        choice = draw(st.integers(0, 6))
        if choice <= 1 and own:
            ref = draw(st.sampled_from(own))  # resolving or voiding one's own record
        elif choice == 2 and len(own) < len(out):
            # another subject's record (perhaps of an unscored or unknown subject)
            ref = draw(st.sampled_from([r["id"] for r in out if r["subject"] != who]))
        elif choice == 3:
            # a later record of the list, itself, or no record at all
            ref = draw(st.sampled_from([f"r{i}", f"r{i + 1}", f"r{i + 2}", "nowhere"]))
        out.append(
            {
                "id": f"r{i}",
                "subject": who,
                "type": draw(type_),
                "occurred_at": occurred,
                "recorded_at": recorded,
                "amount": draw(amount),
                "ref": ref,
            }
        )
    return out


@dataclass
class Case:
    """A scheme, subjects, records and the date of evaluation."""

    doc: dict[str, Any]
    scheme: Scheme
    subjects: list[dict[str, str]]
    records: list[dict[str, Any]]
    at: dt.date


@st.composite
def cases(draw: st.DrawFn, max_records: int = 20) -> Case:
    """A whole evaluation problem."""
    doc = draw(scheme_dicts())
    scheme = load(doc)
    subjects = draw(subject_lists(tuple(doc["subjects"])))
    at = day(draw(st.integers(-400, 400)))
    records = draw(record_lists(subjects, doc, at, max_records))
    return Case(doc, scheme, subjects, records, at)


# ---- Arrow tables ----------------------------------------------------------------------


def subjects_table(subjects: list[dict[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"code": s["code"], "kind": s["kind"]} for s in subjects], schema=SUBJECTS_SCHEMA
    )


def records_table(records: list[dict[str, Any]]) -> pa.Table:
    rows = [
        {
            "id": r["id"],
            "subject": r["subject"],
            "type": r["type"],
            "occurred_at": r["occurred_at"],
            "recorded_at": r.get("recorded_at") or r["occurred_at"],
            "amount": r.get("amount") or 0,
            "ref": r.get("ref"),
        }
        for r in records
    ]
    return pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA)


# ---- the network extension (docs/networks.md) -----------------------------------------

VIAS = ("household", "friend", "employer", "employee", "legal_representative", "represented")
RELATION_ROW_KINDS = ("household", "friend", "employer", "legal_representative")


def _where(grade_names: list[str], own_lists: list[str], base: int) -> st.SearchStrategy[Any]:
    """A ``where``: scores, grades and lists that use no relations."""
    leaves: list[st.SearchStrategy[dict[str, Any]]] = [
        st.integers(base - 40, base + 40).map(lambda n: {"score_at_least": n}),
        st.integers(base - 40, base + 40).map(lambda n: {"score_below": n}),
        st.lists(st.sampled_from(grade_names), min_size=1, max_size=2, unique=True).map(
            lambda gs: {"grade_in": gs}
        ),
    ]
    if own_lists:
        leaves.append(st.sampled_from(own_lists).map(lambda i: {"list": i}))
    return st.recursive(
        st.one_of(leaves),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=2).map(lambda cs: {"any": cs}),
            inner.map(lambda c: {"not": c}),
        ),
        max_leaves=3,
    )


@dataclass
class NetworkCase:
    """A case of the kernel, with relations and ratings and a scheme that uses them."""

    doc: dict[str, Any]
    scheme: Scheme
    subjects: list[dict[str, str]]
    records: list[dict[str, Any]]
    relations: list[dict[str, Any]]
    ratings: list[dict[str, Any]]
    at: dt.date


@st.composite
def network_cases(
    draw: st.DrawFn, max_rows: int = 24, with_ratings: bool | None = None
) -> NetworkCase:
    """A scheme with a peer rule and relation conditions (each maybe, or ratings surely when
    ``with_ratings``), and inputs for it."""
    base = draw(cases(max_records=10))
    doc = dict(base.doc)
    doc["rules"] = list(doc.get("rules") or [])
    doc["lists"] = list(doc.get("lists") or [])
    doc["measures"] = list(doc.get("measures") or [])
    at = base.at
    codes = [s["code"] for s in base.subjects] + list(STRAY_CODES)
    grade_names = [g["grade"] for g in doc["grades"]]
    score_base = doc["score"]["base"]
    top = draw(st.integers(2, 6))
    if with_ratings if with_ratings is not None else draw(st.booleans()):
        doc["ratings"] = {
            "stars": top,
            "damping": draw(st.sampled_from([1, 150, 500, 999])),
            "max_iterations": draw(st.integers(1, 30)),
        }
        if draw(st.booleans()):
            doc["ratings"]["window_days"] = draw(st.sampled_from(WINDOWS))
        measure = draw(st.sampled_from(["peer_rating", "peer_trust"]))
        rule: dict[str, Any] = {"id": "peer", "measure": measure}
        if draw(st.booleans()):
            rule["points"] = draw(st.integers(-3, 3))
            if draw(st.booleans()):
                rule["per"] = draw(st.sampled_from([1, 7, 100]))
            if draw(st.booleans()):
                rule["cap"] = draw(st.integers(1, 60))
        else:
            rule["bins"] = [
                {"max": draw(st.integers(0, 600)), "points": draw(st.integers(-20, 20))},
                {"points": draw(st.integers(-20, 20))},
            ]
        if measure == "peer_rating":
            rule["none_points"] = draw(st.integers(-10, 10))
        doc["rules"].append(rule)
    own = [spec["id"] for spec in doc["lists"]]
    for i in range(draw(st.integers(0 if "ratings" in doc else 1, 2))):
        body: dict[str, Any] = {
            "via": draw(st.lists(st.sampled_from(VIAS), min_size=1, max_size=3, unique=True)),
            "where": draw(_where(grade_names, own, score_base)),
        }
        if draw(st.booleans()):
            body["at_least"] = draw(st.integers(1, 3))
        cond: dict[str, Any] = {"related": body}
        if draw(st.booleans()):
            cond = {"any": [cond, {"score_below": score_base}]}
        if draw(st.booleans()):
            doc["lists"].append({"id": f"near{i}", "kind": "black", "when": cond})
            doc["lists"].append({"id": f"after{i}", "kind": "red", "when": {"list": f"near{i}"}})
        else:
            doc["measures"].append({"id": f"m_near{i}", "when": cond, "deny": ["travel.air"]})
    scheme = load(doc)
    relations = []
    for _ in range(draw(st.integers(0, max_rows))):
        row: dict[str, Any] = {
            "subject": draw(st.sampled_from(codes)),
            "relation": draw(st.sampled_from(RELATION_ROW_KINDS)),
            "other": draw(st.sampled_from(codes)),
        }
        if draw(st.booleans()):
            row["from"] = day(draw(st.integers(-3, 3)), at)
        if draw(st.booleans()):
            row["to"] = day(draw(st.integers(-3, 3)), at)
        relations.append(row)
    scored = [s["code"] for s in base.subjects if s["kind"] in doc["subjects"]]
    who = st.sampled_from(codes) if not scored else st.sampled_from(scored) | st.sampled_from(codes)
    least = max_rows // 2 if with_ratings else 0
    ratings = [
        {
            "rater": draw(who),
            "ratee": draw(who),
            "stars": draw(st.integers(1, top)),
            "date": day(draw(st.integers(-10, 2)), at),
        }
        for _ in range(draw(st.integers(least, max_rows)))
    ]
    return NetworkCase(doc, scheme, base.subjects, base.records, relations, ratings, at)


def relations_table(rows: list[dict[str, Any]]) -> pa.Table:
    from socialcredit.relations import RELATIONS_SCHEMA

    full = [{**{"from": None, "to": None}, **row} for row in rows]
    return pa.Table.from_pylist(full, schema=RELATIONS_SCHEMA)


def ratings_table(rows: list[dict[str, Any]]) -> pa.Table:
    from socialcredit.relations import RATINGS_SCHEMA

    return pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA)

"""Hand-computed cases, one or more per clause of SCHEME.md sections 3 to 7.

Every case is checked twice: against the engine and against the reference implementation
(tests/reference.py), so a mistake in either shows. The arithmetic of each case is worked
out in its comment. Unless a case says otherwise: ``at`` is 2024-03-01, the subject is the
person ``p``, ``notice_days`` is 7, ``bad`` is an adverse type, ``good`` and ``fix`` are
not, the base is 100 and grades are ``A`` (min 100) then ``B``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
import reference
from strategies import records_table, scheme_yaml, subjects_table

from socialcredit.engine import evaluate
from socialcredit.engine.explain import explain
from socialcredit.errors import ScoreOverflow
from socialcredit.scheme.validate import load_scheme_text

AT = "2024-03-01"
INT64_MAX = 2**63 - 1
P = [{"code": "p", "kind": "person"}]
OLD = "2024-01-01"  # long before at: in effect, notice long past

BASE: dict[str, Any] = {
    "scheme": "case",
    "subjects": ["person"],
    "notice_days": 7,
    "records": {
        "bad": {"category": "traffic", "adverse": True},
        "good": {"category": "charity"},
        "fix": {"category": "process"},
    },
    "score": {"base": 100},
    "rules": [],
    "grades": [{"grade": "A", "min": 100}, {"grade": "B"}],
}


def scheme(**parts: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(parts)
    return doc


def rec(
    id: str,
    type: str,
    occurred: str = OLD,
    recorded: str | None = None,
    amount: int = 0,
    ref: str | None = None,
    subject: str = "p",
) -> dict[str, Any]:
    return {
        "id": id,
        "subject": subject,
        "type": type,
        "occurred_at": reference.as_date(occurred),
        "recorded_at": reference.as_date(recorded or occurred),
        "amount": amount,
        "ref": ref,
    }


def persons(*codes: str) -> list[dict[str, str]]:
    return [{"code": c, "kind": "person"} for c in codes]


def many(n: int, type: str, subject: str = "p", prefix: str = "", **kw: Any) -> list[dict]:
    return [rec(f"{prefix or subject}{i}", type, subject=subject, **kw) for i in range(n)]


def row(
    code: str, score: int, grade: str, lists: str = "", denied: str = "", granted: str = ""
) -> tuple[str, int, str, str, str, str]:
    return (code, score, grade, lists, denied, granted)


@dataclass
class Case:
    name: str
    scheme: dict[str, Any]
    records: list[dict[str, Any]]
    expected: list[tuple[str, int, str, str, str, str]]
    subjects: list[dict[str, str]] = field(default_factory=lambda: list(P))
    at: str = AT


COUNT_BAD = {"id": "n", "types": ["bad"], "measure": "count", "points": -10}
COUNT_GOOD = {"id": "g", "types": ["good"], "measure": "count", "points": 5}

CASES = [
    # No record: every count is 0, 100 + 0 = 100 -> A.
    Case("no-records", scheme(rules=[COUNT_BAD]), [], [row("p", 100, "A")]),
    # §1/§3(1): only persons are scored (o has no row); the records of o, of ghost (not in the
    # subjects table) and of the unknown type "nope" count for nothing: p 100 -> A.
    Case(
        "clause1-unscored-kind-stray-subject-unknown-type",
        scheme(rules=[COUNT_BAD]),
        [rec("o1", "bad", subject="o"), rec("x1", "bad", subject="ghost"), rec("p1", "nope")],
        [row("p", 100, "A")],
        subjects=[{"code": "p", "kind": "person"}, {"code": "o", "kind": "organization"}],
    ),
    # §1: a scheme may score organizations only: p has no row, o gets 100 - 10 = 90 -> B.
    Case(
        "clause1-organizations-only",
        scheme(subjects=["organization"], rules=[COUNT_BAD]),
        [rec("o1", "bad", subject="o"), rec("p1", "bad")],
        [row("o", 90, "B")],
        subjects=[{"code": "p", "kind": "person"}, {"code": "o", "kind": "organization"}],
    ),
    # §3(2): occurred at 03-01 (= at) counts, at 03-02 does not: 100 + 5 = 105.
    Case(
        "clause2-occurred-on-at-counts-after-at-does-not",
        scheme(rules=[COUNT_GOOD]),
        [rec("a", "good", "2024-03-01"), rec("b", "good", "2024-03-02")],
        [row("p", 105, "A")],
    ),
    # §3(3): adverse, notice 7. Recorded 02-23: 02-23 + 7 = 03-01 <= at, counts. Recorded
    # 02-24: 03-02 > at, not yet. 100 - 10 = 90 -> B.
    Case(
        "clause3-notice-boundary",
        scheme(rules=[COUNT_BAD]),
        [rec("a", "bad", "2024-02-20", "2024-02-23"), rec("b", "bad", "2024-02-20", "2024-02-24")],
        [row("p", 90, "B")],
    ),
    # §3(3): the delay runs from recording, not occurrence: occurred 01-01 but recorded 02-25,
    # 02-25 + 7 = 03-03 > at. Nothing counts: 100 -> A.
    Case(
        "clause3-delay-runs-from-recorded-at",
        scheme(rules=[COUNT_BAD]),
        [rec("a", "bad", "2024-01-01", "2024-02-25")],
        [row("p", 100, "A")],
    ),
    # §3(3): no delay for a type that is not adverse: recorded on at, counts at once: 105.
    Case(
        "clause3-no-delay-when-not-adverse",
        scheme(rules=[COUNT_GOOD]),
        [rec("a", "good", "2024-02-28", "2024-03-01")],
        [row("p", 105, "A")],
    ),
    # §3(3): notice_days missing means delay 0, even for an adverse type: 100 - 10 = 90.
    Case(
        "clause3-no-notice-days",
        {k: v for k, v in scheme(rules=[COUNT_BAD]).items() if k != "notice_days"},
        [rec("a", "bad", "2024-03-01")],
        [row("p", 90, "B")],
    ),
    # §3(4): window 8 days. Occurred 02-23 is 7 days old (7 < 8, counts); 02-22 is 8 days old
    # (not < 8). Occurred 02-20 and recorded 02-29: the age is from occurrence, 10, out.
    # 100 + 5 = 105.
    Case(
        "clause4-window-boundary",
        scheme(rules=[{**COUNT_GOOD, "window_days": 8}]),
        [
            rec("a", "good", "2024-02-23"),
            rec("b", "good", "2024-02-22"),
            rec("c", "good", "2024-02-20", "2024-02-29"),
        ],
        [row("p", 105, "A")],
    ),
    # §3(4): rules sharing a type with different windows. Ages 0, 2, 3, 7, 8, 30.
    # w3 (< 3): ages 0, 2 -> 2 * 1 = 2. w8 (< 8): 0, 2, 3, 7 -> 4 * 10 = 40.
    # all (no window): 6 * 100 = 600. 100 + 642 = 742.
    Case(
        "clause4-shared-type-different-windows",
        scheme(
            rules=[
                {"id": "w8", "types": ["good"], "window_days": 8, "measure": "count", "points": 10},
                {"id": "all", "types": ["good"], "measure": "count", "points": 100},
                {"id": "w3", "types": ["good"], "window_days": 3, "measure": "count", "points": 1},
            ]
        ),
        [
            rec("a0", "good", "2024-03-01"),
            rec("a2", "good", "2024-02-28"),
            rec("a3", "good", "2024-02-27"),
            rec("a7", "good", "2024-02-23"),
            rec("a8", "good", "2024-02-22"),
            rec("a30", "good", "2024-01-31"),
        ],
        [row("p", 742, "A")],
    ),
    # §3(5): r1 is ended by e1 recorded on at (<= at). r2's ender e2 is recorded on 03-02,
    # after at: r2 still counts. 100 - 10 = 90 -> B.
    Case(
        "clause5-ref-recorded-on-at-ends",
        scheme(rules=[COUNT_BAD]),
        [
            rec("r1", "bad"),
            rec("e1", "fix", "2024-02-10", "2024-03-01", ref="r1"),
            rec("r2", "bad"),
            rec("e2", "fix", "2024-02-10", "2024-03-02", ref="r2"),
        ],
        [row("p", 90, "B")],
    ),
    # §3(5): whatever the ender's own subject or type: e1 is of the unscored organization o,
    # e2 of an unknown type, e3 of a subject not in the table. All three end their records;
    # a ref to no record ends nothing, and r4 counts. 100 - 10 = 90.
    Case(
        "clause5-any-record-ends",
        scheme(rules=[COUNT_BAD]),
        [
            rec("r1", "bad"),
            rec("r2", "bad"),
            rec("r3", "bad"),
            rec("r4", "bad"),
            rec("e1", "fix", "2024-02-15", ref="r1", subject="o"),
            rec("e2", "nope", "2024-02-15", ref="r2"),
            rec("e3", "fix", "2024-02-15", ref="r3", subject="ghost"),
            rec("e4", "fix", "2024-02-15", ref="nowhere"),
        ],
        [row("p", 90, "B")],
        subjects=[{"code": "p", "kind": "person"}, {"code": "o", "kind": "organization"}],
    ),
    # §3(5): an ender takes no notice delay: e1 (adverse, recorded on at, not in effect before
    # 03-08) ends r1 today. e1 itself does not count yet. 100 + 0 + 0 = 100.
    Case(
        "clause5-adverse-ender-ends-without-delay",
        scheme(rules=[COUNT_BAD, COUNT_GOOD]),
        [rec("r1", "good"), rec("e1", "bad", "2024-03-01", ref="r1")],
        [row("p", 100, "A")],
    ),
    # §3(5): the ender is an ordinary record of its own type: r1 (bad) ended by e1 (fix);
    # e1 counts for the fix rule: 100 + 0 + 1 = 101.
    Case(
        "clause5-ender-counts-for-its-own-type",
        scheme(rules=[COUNT_BAD, {"id": "f", "types": ["fix"], "measure": "count", "points": 1}]),
        [rec("r1", "bad"), rec("e1", "fix", "2024-02-10", ref="r1")],
        [row("p", 101, "A")],
    ),
    # §3(5): of two enders the earlier-recorded one decides: e2 recorded 02-10 ends r1 even
    # though e1 (03-05) has not been recorded yet at at. 100 + 0 = 100.
    Case(
        "clause5-two-enders",
        scheme(rules=[COUNT_BAD]),
        [
            rec("r1", "bad"),
            rec("e1", "fix", "2024-03-05", ref="r1"),
            rec("e2", "fix", "2024-02-10", ref="r1"),
        ],
        [row("p", 100, "A")],
    ),
    # §4 linear form, per: 5 records, points -3 per 2: 5 // 2 = 2, -3 * 2 = -6 -> 94, B.
    Case(
        "linear-per-floor-count",
        scheme(rules=[{"id": "n", "types": ["bad"], "measure": "count", "points": -3, "per": 2}]),
        many(5, "bad"),
        [row("p", 94, "B")],
    ),
    # §4 amount: 250 + 99 + 0 = 349; 349 // 100 = 3; 2 * 3 = 6 -> 106.
    Case(
        "linear-per-floor-amount",
        scheme(
            rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 2, "per": 100}]
        ),
        [rec("a", "good", amount=250), rec("b", "good", amount=99), rec("c", "good")],
        [row("p", 106, "A")],
    ),
    # §4 cap: 3 bad * -5 = -15, clipped to -12; 3 good * 10 = 30, clipped to 25.
    # 100 - 12 + 25 = 113.
    Case(
        "cap-both-signs",
        scheme(
            rules=[
                {"id": "n", "types": ["bad"], "measure": "count", "points": -5, "cap": 12},
                {"id": "g", "types": ["good"], "measure": "count", "points": 10, "cap": 25},
            ]
        ),
        many(3, "bad", prefix="n") + many(3, "good", prefix="g"),
        [row("p", 113, "A")],
    ),
    # §4 cap exactly reached is not clipped further: 3 * 4 = 12 = cap -> 112.
    Case(
        "cap-reached-exactly",
        scheme(rules=[{"id": "g", "types": ["good"], "measure": "count", "points": 4, "cap": 12}]),
        many(3, "good"),
        [row("p", 112, "A")],
    ),
    # §4 large amounts, exact: (10**12 - 1) + 10**12 + 999 = 2 * 10**12 + 998;
    # // 1000 = 2_000_000_000 (the 998 is floored away); 100 + 2_000_000_000.
    Case(
        "amount-large-exact",
        scheme(
            rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 1, "per": 1000}]
        ),
        [
            rec("a", "good", amount=10**12 - 1),
            rec("b", "good", amount=10**12),
            rec("c", "good", amount=999),
        ],
        [row("p", 2_000_000_100, "A")],
    ),
    # §4 large amounts with a cap: 3 * 10**12 clipped to 30 -> 130.
    Case(
        "amount-large-capped",
        scheme(rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 1, "cap": 30}]),
        many(3, "good", amount=10**12),
        [row("p", 130, "A")],
    ),
    # §4 amount sums are exact beyond float precision: (2**53 - 1) + 2 = 2**53 + 1, which a
    # float64 cannot hold. Base 0: 9_007_199_254_740_993 -> A.
    Case(
        "amount-beyond-float-precision",
        scheme(
            score={"base": 0},
            rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 1}],
        ),
        [rec("a", "good", amount=2**53 - 1), rec("b", "good", amount=2)],
        [row("p", 2**53 + 1, "A")],
    ),
    # §4 bins: the first row whose max >= measure, rows not sorted by max.
    # p: 0 records, 0 <= 5 -> first row, 1 -> 101. q: 5 records, 5 <= 5 -> 1 -> 101.
    # r: 6 records, 6 > 5 and 6 > 2 -> last row, 3 -> 103 (the row max 2 is never reached).
    Case(
        "bins-first-row-whose-max-covers",
        scheme(
            rules=[
                {
                    "id": "g",
                    "types": ["good"],
                    "measure": "count",
                    "bins": [{"max": 5, "points": 1}, {"max": 2, "points": 2}, {"points": 3}],
                }
            ]
        ),
        many(5, "good", subject="q") + many(6, "good", subject="r"),
        [row("p", 101, "A"), row("q", 101, "A"), row("r", 103, "A")],
        subjects=persons("p", "q", "r"),
    ),
    # §4 bins on an amount: p 99 -> row 1 (0 points); q 100 -> row 2 (+7); r 1000 -> last (+9).
    Case(
        "bins-amount",
        scheme(
            rules=[
                {
                    "id": "d",
                    "types": ["good"],
                    "measure": "amount",
                    "bins": [{"max": 99, "points": 0}, {"max": 999, "points": 7}, {"points": 9}],
                }
            ]
        ),
        [
            rec("a", "good", amount=99),
            rec("b", "good", amount=100, subject="q"),
            rec("c", "good", amount=1000, subject="r"),
        ],
        [row("p", 100, "A"), row("q", 107, "A"), row("r", 109, "A")],
        subjects=persons("p", "q", "r"),
    ),
    # §4 days_since, notice 0. Bins: <= 0: -30, <= 6: -10, else +5; none: +20.
    # p: ages 9 and 2 -> at - max(occurred) = 2 -> -10 -> 90 B.
    # q: age 0 -> 0 -> -30 -> 70 B.  s: no record -> none -> +20 -> 120 A.
    # t: age 7 -> 7 > 6 -> +5 -> 105 A.
    Case(
        "days-since-bins-and-none",
        scheme(
            notice_days=0,
            rules=[
                {
                    "id": "ds",
                    "types": ["bad"],
                    "measure": "days_since",
                    "bins": [{"max": 0, "points": -30}, {"max": 6, "points": -10}, {"points": 5}],
                    "none_points": 20,
                }
            ],
        ),
        [
            rec("p9", "bad", "2024-02-21"),
            rec("p2", "bad", "2024-02-28"),
            rec("q0", "bad", "2024-03-01", subject="q"),
            rec("t7", "bad", "2024-02-23", subject="t"),
        ],
        [row("p", 90, "B"), row("q", 70, "B"), row("s", 120, "A"), row("t", 105, "A")],
        subjects=persons("t", "s", "q", "p"),
    ),
    # §4/§5 days_since with a window 5: the only record is 5 days old, outside, so the measure
    # is none: none_points 20 -> 120. None satisfies neither {at_most: 1000} nor {at_least: 0},
    # so only the list "never" (not at_least 0) holds.
    Case(
        "days-since-none-in-conditions",
        scheme(
            notice_days=0,
            rules=[
                {
                    "id": "ds",
                    "types": ["bad"],
                    "window_days": 5,
                    "measure": "days_since",
                    "bins": [{"points": 0}],
                    "none_points": 20,
                }
            ],
            lists=[
                {"id": "recent", "kind": "black", "when": {"rule": "ds", "at_most": 1000}},
                {"id": "never", "kind": "red", "when": {"not": {"rule": "ds", "at_least": 0}}},
                {
                    "id": "both",
                    "kind": "black",
                    "when": {"rule": "ds", "at_least": 0, "at_most": 10},
                },
            ],
        ),
        [rec("a", "bad", "2024-02-25")],
        [row("p", 120, "A", "never")],
    ),
    # §4 score bounds, min 60 and max 110. p: 5 * -10 = -50 -> 50, raised to 60 -> B;
    # q: 3 * 10 = 30 -> 130, lowered to 110 -> A. Conditions see the bounded score:
    # "low" {score_below: 61}: p (60 < 61); "high" {score_at_least: 110}: q.
    Case(
        "score-bounds",
        scheme(
            score={"base": 100, "min": 60, "max": 110},
            rules=[COUNT_BAD, {"id": "g", "types": ["good"], "measure": "count", "points": 10}],
            lists=[
                {"id": "low", "kind": "black", "when": {"score_below": 61}},
                {"id": "high", "kind": "red", "when": {"score_at_least": 110}},
            ],
        ),
        many(5, "bad", subject="p") + many(3, "good", subject="q"),
        [row("p", 60, "B", "low"), row("q", 110, "A", "high")],
        subjects=persons("p", "q"),
    ),
    # §4 grade: the FIRST grade whose min <= score, in the order written (not the highest).
    # Grades B (min 50), A (min 100), C. Base 120, -35 per bad record.
    # p: 120 -> B (50 <= 120 comes first). q: 85 -> B. r: 50 -> B (equal). s: 15 -> C.
    Case(
        "grade-first-in-written-order",
        scheme(
            score={"base": 120},
            rules=[{"id": "n", "types": ["bad"], "measure": "count", "points": -35}],
            grades=[{"grade": "B", "min": 50}, {"grade": "A", "min": 100}, {"grade": "C"}],
        ),
        many(1, "bad", subject="q") + many(2, "bad", subject="r") + many(3, "bad", subject="s"),
        [row("p", 120, "B"), row("q", 85, "B"), row("r", 50, "B"), row("s", 15, "C")],
        subjects=persons("p", "q", "r", "s"),
    ),
    # §4 grade with a single entry: everyone gets it. 100 - 10 = 90 -> "only".
    Case(
        "grade-single",
        scheme(rules=[COUNT_BAD], grades=[{"grade": "only"}]),
        [rec("a", "bad")],
        [row("p", 90, "only")],
    ),
    # §5 lists in order, each seeing the earlier ones; output names sorted.
    # p: 90 -> zeta (90 < 100), alpha (on zeta), not mid -> "alpha;zeta".
    # q: 100 -> not zeta, not alpha; mid = not zeta and grade A -> "mid".
    Case(
        "lists-in-order-output-sorted",
        scheme(
            rules=[COUNT_BAD],
            lists=[
                {"id": "zeta", "kind": "black", "when": {"score_below": 100}},
                {"id": "alpha", "kind": "black", "when": {"list": "zeta"}},
                {
                    "id": "mid",
                    "kind": "red",
                    "when": {"all": [{"not": {"list": "zeta"}}, {"grade_in": ["A"]}]},
                },
            ],
        ),
        [rec("a", "bad")],
        [row("p", 90, "B", "alpha;zeta"), row("q", 100, "A", "mid")],
        subjects=persons("p", "q"),
    ),
    # §5 {rule, at_least: 2, at_most: 3} on a count of 1, 2, 3, 4: only q and r.
    # "some" = any of (count >= 4, score_below 0): s only.
    Case(
        "rule-condition-both-bounds-and-any",
        scheme(
            rules=[{"id": "n", "types": ["good"], "measure": "count", "points": 0}],
            lists=[
                {
                    "id": "between",
                    "kind": "black",
                    "when": {"rule": "n", "at_least": 2, "at_most": 3},
                },
                {
                    "id": "some",
                    "kind": "black",
                    "when": {"any": [{"rule": "n", "at_least": 4}, {"score_below": 0}]},
                },
            ],
        ),
        many(1, "good", subject="p")
        + many(2, "good", subject="q")
        + many(3, "good", subject="r")
        + many(4, "good", subject="s"),
        [
            row("p", 100, "A"),
            row("q", 100, "A", "between"),
            row("r", 100, "A", "between"),
            row("s", 100, "A", "some"),
        ],
        subjects=persons("p", "q", "r", "s"),
    ),
    # §6/§7 denied and granted sets: the union of the entries of the applying measures, sorted,
    # each name once; overlapping prefixes are all listed as written.
    # p: 100 - 10 = 90, B, on black (90 < 95): m1, m2, m4 apply.
    #    denied {travel, travel.air} | {travel.rail.high_speed, travel.air};
    #    granted {loan} | {school}.
    # q: 100, A: m3 -> granted {loan.rate, loan}.
    # r: 95, B, not on black (95 is not < 95): m1, m4 -> denied {travel, travel.air}, {school}.
    Case(
        "measures-denied-and-granted-sets",
        scheme(
            rules=[{"id": "n", "types": ["bad"], "measure": "count", "points": -5}],
            lists=[{"id": "black", "kind": "black", "when": {"score_below": 95}}],
            measures=[
                {"id": "m1", "when": {"grade_in": ["B"]}, "deny": ["travel.air", "travel"]},
                {
                    "id": "m2",
                    "when": {"list": "black"},
                    "deny": ["travel.rail.high_speed", "travel.air"],
                    "grant": ["loan"],
                },
                {"id": "m3", "when": {"grade_in": ["A"]}, "grant": ["loan.rate", "loan"]},
                {
                    "id": "m4",
                    "when": {"any": [{"grade_in": ["B"]}, {"score_at_least": 1000}]},
                    "grant": ["school"],
                },
            ],
        ),
        many(2, "bad", subject="p") + many(1, "bad", subject="r"),
        [
            row("p", 90, "B", "black", "travel;travel.air;travel.rail.high_speed", "loan;school"),
            row("q", 100, "A", "", "", "loan;loan.rate"),
            row("r", 95, "B", "", "travel;travel.air", "school"),
        ],
        subjects=persons("p", "q", "r"),
    ),
    # §7 rows sorted by code in code-point order: "A1" (U+41) < "B" < "Z" < "a" < "b" < "é"
    # (U+E9) < U+FF5A (fullwidth z) < U+1F600 (an emoji; UTF-16 order would put it before
    # U+FF5A).
    # The organization "C" is not scored.
    Case(
        "rows-in-code-point-order",
        scheme(),
        [],
        [row(c, 100, "A") for c in ["A1", "B", "Z", "a", "b", "é", "\uff5a", "\U0001f600"]],
        subjects=[
            *persons("b", "\U0001f600", "B", "é", "a", "\uff5a", "Z", "A1"),
            {"code": "C", "kind": "organization"},
        ],
    ),
    # §4 cap: a cap bounds a contribution of any size. One amount of 10**12 at 10**7 points
    # per unit is 10**19 points, clipped to the cap 50: base 0 + 50 = 50. 10**19 does not fit
    # in a signed 64-bit integer, but the capped contribution does.
    Case(
        "cap-bounds-a-contribution-beyond-int64",
        scheme(
            score={"base": 0},
            rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 10**7, "cap": 50}],
            grades=[{"grade": "A"}],
        ),
        [rec("a", "good", amount=10**12)],
        [row("p", 50, "A")],
    ),
    # §4: the amount measure is the sum of the amounts, whatever its size. Two amounts of
    # 5 * 10**18 (each fits the int64 amount column) sum to 10**19, beyond 64 bits.
    # Rule "d" (1 point per unit, cap 10): 10**19 points clipped to 10. Rule "t" (bins,
    # max 100 then the rest): 10**19 > 100 -> last row, 2. Base 0 + 10 + 2 = 12.
    Case(
        "amount-sum-beyond-int64",
        scheme(
            score={"base": 0},
            rules=[
                {"id": "d", "types": ["good"], "measure": "amount", "points": 1, "cap": 10},
                {
                    "id": "t",
                    "types": ["good"],
                    "measure": "amount",
                    "bins": [{"max": 100, "points": 1}, {"points": 2}],
                },
            ],
            grades=[{"grade": "A"}],
        ),
        [rec("a", "good", amount=5 * 10**18), rec("b", "good", amount=5 * 10**18)],
        [row("p", 12, "A")],
    ),
    # §4: the score is base + contributions, then lowered to max. 9 * 10**18 + 10**18 =
    # 10**19 (beyond 64 bits) lowered to max 5: 5, which fits.
    Case(
        "score-beyond-int64-then-bounded",
        scheme(
            score={"base": 9 * 10**18, "max": 5},
            rules=[{"id": "g", "types": ["good"], "measure": "count", "points": 10**18}],
            grades=[{"grade": "A"}],
        ),
        [rec("a", "good")],
        [row("p", 5, "A")],
    ),
    # §4: an uncapped contribution beyond 64 bits, then the score lowered to max. Two
    # amounts of 5 * 10**18 at 1 point per unit: 10**19; base 0 + 10**19 lowered to 1000.
    Case(
        "uncapped-contribution-beyond-int64-then-bounded",
        scheme(
            score={"base": 0, "max": 1000},
            rules=[{"id": "d", "types": ["good"], "measure": "amount", "points": 1}],
            grades=[{"grade": "A"}],
        ),
        [rec("a", "good", amount=5 * 10**18), rec("b", "good", amount=5 * 10**18)],
        [row("p", 1000, "A")],
    ),
    # §4: the same with counts, both ways. Two "good" records at M = 2**63 - 1 points: 2M;
    # three "bad" at -M: -3M; base 0 + 2M - 3M = -M, raised to min -5: -5.
    Case(
        "uncapped-count-contributions-beyond-int64-then-bounded",
        scheme(
            score={"base": 0, "min": -5, "max": 5},
            rules=[
                {"id": "g", "types": ["good"], "measure": "count", "points": INT64_MAX},
                {"id": "b", "types": ["bad"], "measure": "count", "points": -INT64_MAX},
            ],
            grades=[{"grade": "A"}],
        ),
        [*many(2, "good", prefix="g"), *many(3, "bad", prefix="b")],
        [row("p", -5, "A")],
    ),
    # §2/§4: per, cap and points at the largest integer the scheme language accepts,
    # M = 2**63 - 1. per M: 5 // M = 0 -> 0. cap M on 1 * 1 = 1 -> 1. points M with cap 5 on a
    # count of 1 -> M clipped to 5. points -M with cap 7 on a count of 2 -> -2M clipped to -7.
    # Base 0 + 0 + 1 + 5 - 7 = -1.
    Case(
        "scheme-constants-at-the-int64-limit",
        scheme(
            score={"base": 0},
            rules=[
                {"id": "a", "types": ["good"], "measure": "amount", "points": 1, "per": INT64_MAX},
                {"id": "b", "types": ["good"], "measure": "count", "points": 1, "cap": INT64_MAX},
                {"id": "c", "types": ["good"], "measure": "count", "points": INT64_MAX, "cap": 5},
                {"id": "d", "types": ["fix"], "measure": "count", "points": -INT64_MAX, "cap": 7},
            ],
            grades=[{"grade": "A"}],
        ),
        [rec("a", "good", amount=5), rec("f1", "fix"), rec("f2", "fix")],
        [row("p", -1, "A")],
    ),
    # §3(4): window_days is any positive integer. With 3_000_000_000 (more than 2**31 - 1) the
    # record, 60 days old, is well inside: 100 + 5 = 105.
    Case(
        "window-beyond-int32",
        scheme(rules=[{**COUNT_GOOD, "window_days": 3_000_000_000}]),
        [rec("a", "good")],
        [row("p", 105, "A")],
    ),
    # §2: notice_days is any non-negative integer. With 3_000_000_000 an adverse record never
    # takes effect (100); a record that is not adverse has no notice (100 + 5 = 105).
    Case(
        "notice-beyond-int32",
        scheme(notice_days=3_000_000_000, rules=[COUNT_BAD, COUNT_GOOD]),
        [rec("a", "bad"), rec("b", "good")],
        [row("p", 105, "A")],
    ),
]


def _engine_rows(case: Case) -> list[tuple[Any, ...]]:
    model = load_scheme_text(scheme_yaml(case.scheme), case.name)
    states = evaluate(model, subjects_table(case.subjects), records_table(case.records), case.at)
    return [tuple(r.values()) for r in states.to_table().to_pylist()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine(case: Case) -> None:
    assert _engine_rows(case) == case.expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reference(case: Case) -> None:
    model = load_scheme_text(scheme_yaml(case.scheme), case.name)
    assert reference.evaluate(model, case.subjects, case.records, case.at) == case.expected
    assert reference.evaluate(case.scheme, case.subjects, case.records, case.at) == case.expected


# ---- §6 decisions, on the reference (the engine's decisions are compared with it) ----------

DECISION_SCHEME = scheme(
    rules=[COUNT_BAD],
    lists=[{"id": "black", "kind": "black", "when": {"score_below": 100}}],
    measures=[
        {"id": "ban", "when": {"list": "black"}, "deny": ["travel.air"]},
        {"id": "wide", "when": {"score_below": 50}, "deny": ["travel"]},
        {"id": "perk", "when": {"score_below": 100}, "grant": ["travel", "loan.rate"]},
        {"id": "perk2", "when": {"grade_in": ["B"]}, "grant": ["loan"]},
    ],
)

# (bad records of p, action, outcome, reasons). One bad record: 90, B, black; ban, perk and
# perk2 apply. Six: 40, also wide.
DECISIONS = [
    (1, "travel.air", "denied", ("ban",)),  # X covers X itself
    (1, "travel.air.domestic", "denied", ("ban",)),  # ... and X.anything
    (1, "travel.airport", "granted", ("perk",)),  # not "travel.air" + "port"; travel grants it
    (1, "travel", "granted", ("perk",)),  # the deny travel.air does not cover its parent
    (1, "loan.rate", "granted", ("perk", "perk2")),  # every covering grant is a reason
    (1, "loan.rates", "granted", ("perk2",)),
    (1, "school", "allowed", ()),
    (6, "travel.air", "denied", ("ban", "wide")),  # every covering deny is a reason
    (6, "travel.rail", "denied", ("wide",)),  # denial beats the grant of perk
    (0, "travel.air", "allowed", ()),  # 100: no measure applies
]


@pytest.mark.parametrize(("n_bad", "action", "outcome", "reasons"), DECISIONS)
def test_reference_decisions(n_bad: int, action: str, outcome: str, reasons: tuple) -> None:
    model = load_scheme_text(scheme_yaml(DECISION_SCHEME))
    (state,) = reference.states(model, P, many(n_bad, "bad"), AT)
    decision = reference.decide(model, state, action)
    assert (decision.outcome, decision.reasons) == (outcome, reasons)
    assert decision.allowed == (outcome != "denied")


def test_a_notice_past_the_calendar_is_explained() -> None:
    case = next(c for c in CASES if c.name == "notice-beyond-int32")
    model = load_scheme_text(scheme_yaml(case.scheme), case.name)
    states = evaluate(model, subjects_table(case.subjects), records_table(case.records), case.at)
    (waiting,) = explain(states, "p").not_counted
    assert (waiting.id, waiting.reason) == (
        "a",
        "not yet in effect: in its notice period; it counts after 9999-12-31",
    )


def test_contributions_beyond_64_bits_are_explained_exactly() -> None:
    case = next(
        c for c in CASES if c.name == "uncapped-count-contributions-beyond-int64-then-bounded"
    )
    model = load_scheme_text(scheme_yaml(case.scheme), case.name)
    states = evaluate(model, subjects_table(case.subjects), records_table(case.records), case.at)
    shown = explain(states, "p")
    assert {r.id: r.contribution for r in shown.rules} == {"g": 2 * INT64_MAX, "b": -3 * INT64_MAX}
    assert shown.score == -5


def test_a_score_beyond_64_bits_after_its_bounds_is_refused() -> None:
    case = next(c for c in CASES if c.name == "uncapped-contribution-beyond-int64-then-bounded")
    unbounded = scheme(**{**case.scheme, "score": {"base": 0}})
    model = load_scheme_text(scheme_yaml(unbounded), case.name)
    with pytest.raises(ScoreOverflow, match="64-bit range"):
        evaluate(model, subjects_table(case.subjects), records_table(case.records), case.at)

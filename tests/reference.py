"""A reference implementation of SCHEME.md sections 3 to 7, for testing the engine.

It is written to be read against the text, clause by clause, not to be fast: plain loops
over subjects and records, Python integers, ``datetime.date`` for days. It shares no code
with the engine. Use it on small inputs only (it is quadratic in the number of records).

Inputs are the validated ``Scheme`` model (or the plain mapping of a scheme file), a list
of subject mappings (``code``, ``kind``) and a list of record mappings (``id``, ``subject``,
``type``, ``occurred_at``, and optionally ``recorded_at``, ``amount``, ``ref``); dates are
``datetime.date``, ``YYYY-MM-DD`` strings or day numbers since 1970-01-01.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

EPOCH = dt.date(1970, 1, 1)

Row = tuple[str, int, str, str, str, str]
"""A row of the section 7 output: code, score, grade, lists, denied, granted."""

HEADER = ("code", "score", "grade", "lists", "denied", "granted")


def as_date(value: dt.date | str | int) -> dt.date:
    """A date from a date, a ``YYYY-MM-DD`` string or a day number since 1970-01-01."""
    if isinstance(value, dt.datetime):
        raise TypeError("dates only, not datetimes")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    return EPOCH + dt.timedelta(days=value)


def as_plain(scheme: Any) -> dict[str, Any]:
    """The scheme as a plain mapping, as written in a scheme file (absent keys left out)."""
    if isinstance(scheme, dict):
        return scheme
    return scheme.model_dump(by_alias=True, exclude_none=True)


# ---- section 1: records, with their defaults -----------------------------------------


@dataclass(frozen=True)
class Record:
    id: str
    subject: str
    type: str
    occurred_at: dt.date
    recorded_at: dt.date
    amount: int
    ref: str | None


def make_record(raw: dict[str, Any]) -> Record:
    """A record from a mapping: ``recorded_at`` defaults to ``occurred_at``, amount to 0."""
    occurred = as_date(raw["occurred_at"])
    recorded = raw.get("recorded_at")
    amount = raw.get("amount")
    return Record(
        id=raw["id"],
        subject=raw["subject"],
        type=raw["type"],
        occurred_at=occurred,
        recorded_at=occurred if recorded is None else as_date(recorded),
        amount=0 if amount is None else int(amount),
        ref=raw.get("ref"),
    )


# ---- section 3: which records count ---------------------------------------------------


def is_adverse(scheme: dict[str, Any], record_type: str) -> bool:
    """Whether the type is adverse under the scheme."""
    spec = scheme["records"].get(record_type)
    return spec is not None and bool(spec.get("adverse", False))


def delay_of(scheme: dict[str, Any], record_type: str) -> int:
    """``notice_days`` when the type is adverse, else 0."""
    return (scheme.get("notice_days") or 0) if is_adverse(scheme, record_type) else 0


def is_ended(r: Record, records: list[Record], at: dt.date) -> bool:
    """Clause 5: some record e with ``e.ref == r.id`` has ``e.recorded_at <= at``.

    Any record of the ledger may end r, whatever e's own subject or type.
    """
    return any(e.ref == r.id and e.recorded_at <= at for e in records)


def counts(
    scheme: dict[str, Any],
    rule: dict[str, Any],
    r: Record,
    scored_codes: set[str],
    records: list[Record],
    at: dt.date,
    in_force: dt.date | None = None,
) -> bool:
    """Whether record ``r`` counts for ``rule`` at ``at`` (clauses 1 to 5). ``in_force``
    is the service's option, not SCHEME.md's: the notice period of an adverse record
    starts on that day at the earliest (docs/service.md, "A scheme newly in force")."""
    # 1. its subject is scored by the scheme, and its type is in the rule's types
    if r.subject not in scored_codes or r.type not in rule["types"]:
        return False
    # 2. r.occurred_at <= at
    if not r.occurred_at <= at:
        return False
    # 3. in effect: r.recorded_at + delay <= at (delay only for adverse types), in day
    # numbers: a delay may pass the last date a date object can hold
    start = r.recorded_at
    if in_force is not None and is_adverse(scheme, r.type):
        start = max(start, in_force)
    if not start.toordinal() + delay_of(scheme, r.type) <= at.toordinal():
        return False
    # 4. inside the window: at - r.occurred_at < window_days
    window = rule.get("window_days")
    if window is not None and not (at - r.occurred_at).days < window:
        return False
    # 5. not ended by a ref recorded on or before at
    return not is_ended(r, records, at)


# ---- section 4: the score -------------------------------------------------------------


def measure_of(rule: dict[str, Any], counting: list[Record], at: dt.date) -> int | None:
    """count, amount or days_since over the records that count (None: no record)."""
    kind = rule["measure"]
    if kind == "count":
        return len(counting)
    if kind == "amount":
        total = 0
        for r in counting:
            total += r.amount
        return total
    if kind == "days_since":
        if not counting:
            return None
        latest = counting[0].occurred_at
        for r in counting:
            if r.occurred_at > latest:
                latest = r.occurred_at
        return (at - latest).days
    raise ValueError(f"unknown measure {kind!r}")


def contribution_of(rule: dict[str, Any], measure: int | None) -> int:
    """The points a rule adds for its measure (linear or table form)."""
    if rule.get("points") is not None:
        assert measure is not None, "a days_since rule must use the table form"
        per = rule.get("per") or 1
        value = rule["points"] * (measure // per)
        cap = rule.get("cap")
        if cap is not None:
            if value > cap:
                value = cap
            if value < -cap:
                value = -cap
        return value
    bins = rule["bins"]
    if measure is None:
        return rule["none_points"]
    for row in bins[:-1]:
        if row["max"] >= measure:
            return row["points"]
    return bins[-1]["points"]


def bounded(score: int, spec: dict[str, Any]) -> int:
    """Raise to ``min`` and lower to ``max`` where given."""
    if spec.get("min") is not None and score < spec["min"]:
        score = spec["min"]
    if spec.get("max") is not None and score > spec["max"]:
        score = spec["max"]
    return score


def grade_of(grades: list[dict[str, Any]], score: int) -> str:
    """The first grade whose ``min <= score``; the last grade has no min."""
    for g in grades[:-1]:
        if g["min"] <= score:
            return str(g["grade"])
    return str(grades[-1]["grade"])


# ---- section 5: conditions ------------------------------------------------------------


@dataclass
class State:
    """One scored subject's state, and what it came from."""

    code: str
    kind: str
    counted: dict[str, list[str]]  # rule id -> ids of the records that counted
    measures: dict[str, int | None]  # rule id -> measure (None: days_since, no record)
    contributions: dict[str, int]
    score: int
    grade: str
    lists: list[str]  # in scheme order
    applied: list[str]  # ids of the measures that apply, in scheme order
    denied: set[str]
    granted: set[str]

    def row(self) -> Row:
        return (
            self.code,
            self.score,
            self.grade,
            ";".join(sorted(self.lists)),
            ";".join(sorted(self.denied)),
            ";".join(sorted(self.granted)),
        )


def holds(cond: dict[str, Any], st: State) -> bool:
    """Whether condition ``cond`` holds for the (partially built) state ``st``."""
    forms = [
        k
        for k in ("rule", "score_at_least", "score_below", "grade_in", "list", "all", "any", "not")
        if k in cond
    ]
    assert len(forms) == 1, f"not a condition: {cond!r}"
    form = forms[0]
    if form == "rule":
        m = st.measures[cond["rule"]]
        if m is None:
            return False  # none is never >= N nor <= N
        ok = True
        if cond.get("at_least") is not None:
            ok = ok and m >= cond["at_least"]
        if cond.get("at_most") is not None:
            ok = ok and m <= cond["at_most"]
        return ok
    if form == "score_at_least":
        return st.score >= cond["score_at_least"]
    if form == "score_below":
        return st.score < cond["score_below"]
    if form == "grade_in":
        return st.grade in cond["grade_in"]
    if form == "list":
        return cond["list"] in st.lists
    if form == "all":
        return all(holds(c, st) for c in cond["all"])
    if form == "any":
        return any(holds(c, st) for c in cond["any"])
    return not holds(cond["not"], st)


# ---- the whole evaluation -------------------------------------------------------------


def states(
    scheme: Any,
    subjects: list[dict[str, Any]],
    records: list[dict[str, Any]],
    at: dt.date | str | int,
    in_force: dt.date | None = None,
) -> list[State]:
    """The state of every scored subject at ``at``, sorted by code in code-point order."""
    s = as_plain(scheme)
    day = as_date(at)
    ledger = [make_record(r) for r in records]
    scored = [x for x in subjects if x["kind"] in s["subjects"]]
    scored_codes = {x["code"] for x in scored}
    out = []
    for subject in sorted(scored, key=lambda x: x["code"]):
        code = subject["code"]
        mine = [r for r in ledger if r.subject == code]
        counted: dict[str, list[str]] = {}
        measures: dict[str, int | None] = {}
        contributions: dict[str, int] = {}
        for rule in s.get("rules") or []:
            counting = [r for r in mine if counts(s, rule, r, scored_codes, ledger, day, in_force)]
            counted[rule["id"]] = [r.id for r in counting]
            measures[rule["id"]] = measure_of(rule, counting, day)
            contributions[rule["id"]] = contribution_of(rule, measures[rule["id"]])
        score = s["score"]["base"]
        for value in contributions.values():
            score += value
        score = bounded(score, s["score"])
        st = State(
            code=code,
            kind=subject["kind"],
            counted=counted,
            measures=measures,
            contributions=contributions,
            score=score,
            grade=grade_of(s["grades"], score),
            lists=[],
            applied=[],
            denied=set(),
            granted=set(),
        )
        for spec in s.get("lists") or []:  # in order: a list sees only earlier lists
            if holds(spec["when"], st):
                st.lists.append(spec["id"])
        for m in s.get("measures") or []:
            if holds(m["when"], st):
                st.applied.append(m["id"])
                st.denied.update(m.get("deny") or [])
                st.granted.update(m.get("grant") or [])
        out.append(st)
    return out


def evaluate(
    scheme: Any,
    subjects: list[dict[str, Any]],
    records: list[dict[str, Any]],
    at: dt.date | str | int,
    in_force: dt.date | None = None,
) -> list[Row]:
    """The section 7 rows: one per scored subject, sorted by code in code-point order."""
    return [st.row() for st in states(scheme, subjects, records, at, in_force)]


# ---- section 6: decisions -------------------------------------------------------------


def covers(entry: str, action: str) -> bool:
    """A deny or grant entry X covers X itself and every action that starts with ``X.``."""
    return action == entry or action.startswith(entry + ".")


@dataclass(frozen=True)
class Decision:
    """``denied``, ``granted`` or ``allowed``, with the measures that are its reasons."""

    outcome: str
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.outcome != "denied"


def decide(scheme: Any, state: State, action: str) -> Decision:
    """The decision on ``action`` for a subject in ``state`` (section 6)."""
    s = as_plain(scheme)
    applying = [m for m in s.get("measures") or [] if m["id"] in state.applied]
    deny = tuple(m["id"] for m in applying if any(covers(x, action) for x in m.get("deny") or []))
    if deny:
        return Decision("denied", deny)
    grant = tuple(m["id"] for m in applying if any(covers(x, action) for x in m.get("grant") or []))
    if grant:
        return Decision("granted", grant)
    return Decision("allowed", ())


# ---- the network extension (docs/networks.md) -----------------------------------------
#
# Read against docs/networks.md, section by section: relations (section 3) and peer ratings
# (section 4), in plain loops over Python integers. ``network_states`` evaluates a scheme
# that may use them; for a scheme that does not, it gives what ``states`` gives.

TOTAL_TRUST = 1 << 44
FIXED_ONE = 1 << 16
TOLERANCE = 1 << 24

# via -> (relation kind of the row, whether the related subject is the row's ``other``)
VIA = {
    "household": ("household", "both"),
    "friend": ("friend", "both"),
    "employer": ("employer", "other"),
    "employee": ("employer", "subject"),
    "legal_representative": ("legal_representative", "other"),
    "represented": ("legal_representative", "subject"),
}


@dataclass(frozen=True)
class Reputation:
    trust: dict[str, int]  # code -> trust units
    trust_per_mille: dict[str, int]
    rating: dict[str, int | None]  # hundredths of a star; None: no counting rating
    iterations: int
    counting: dict[tuple[str, str], tuple[dt.date, int]]  # (rater, ratee) -> (date, stars)


def reputation(
    scheme: Any, scored: list[str], ratings: list[dict[str, Any]], at: dt.date | str | int
) -> Reputation:
    """Section 4: EigenTrust in integers, over the scored subjects (sorted codes)."""
    s = as_plain(scheme)
    spec = s.get("ratings") or {}
    top = spec.get("stars", 5)
    window = spec.get("window_days")
    damping = spec.get("damping", 150)
    cap = spec.get("max_iterations", 100)
    day = as_date(at)
    n = len(scored)
    members = set(scored)
    # 4.1 which ratings count: the latest of each pair (of two on one day, more stars)
    counting: dict[tuple[str, str], tuple[dt.date, int]] = {}
    for r in ratings:
        rater, ratee, when = r["rater"], r["ratee"], as_date(r["date"])
        if rater not in members or ratee not in members or rater == ratee:
            continue
        if when > day or (window is not None and (day - when).days >= window):
            continue
        key = (rater, ratee)
        if key not in counting or (when, r["stars"]) > counting[key]:
            counting[key] = (when, r["stars"])
    # 4.2 local trust, normalized
    local = {key: max(0, 2 * stars - (top + 1)) for key, (_, stars) in counting.items()}
    out_sum = {code: 0 for code in scored}
    for (rater, _), value in local.items():
        out_sum[rater] += value
    uniform = TOTAL_TRUST // n if n else 0
    trust = {code: uniform for code in scored}
    iterations = 0
    for _ in range(cap):
        flow = {code: 0 for code in scored}
        for (rater, ratee), value in local.items():
            if value > 0:
                share = value * FIXED_ONE // out_sum[rater]
                flow[ratee] += share * trust[rater] // FIXED_ONE
        dangling = sum(trust[c] for c in scored if out_sum[c] == 0)
        for code in scored:
            flow[code] += dangling // n
        new = {c: (1000 - damping) * flow[c] // 1000 + damping * uniform // 1000 for c in scored}
        change = sum(abs(new[c] - trust[c]) for c in scored)
        trust = new
        iterations += 1
        if change <= TOLERANCE:
            break
    rating: dict[str, int | None] = {}
    for code in scored:
        raters = [(r, stars) for (r, ratee), (_, stars) in counting.items() if ratee == code]
        if not raters:
            rating[code] = None
        else:
            weight = sum(trust[r] for r, _ in raters)
            rating[code] = 100 * sum(trust[r] * stars for r, stars in raters) // weight
    per_mille = {c: 1000 * trust[c] // uniform for c in scored}
    return Reputation(trust, per_mille, rating, iterations, counting)


def related_subjects(
    code: str, via: list[str], relations: list[dict[str, Any]], scored: set[str], at: dt.date
) -> set[str]:
    """Section 3: the scored subjects related to ``code`` in one of the ways ``via`` at
    ``at`` (from <= at <= to, where given)."""
    found = set()
    for row in relations:
        start, end = row.get("from"), row.get("to")
        if start is not None and as_date(start) > at:
            continue
        if end is not None and as_date(end) < at:
            continue
        for way in via:
            kind, side = VIA[way]
            if row["relation"] != kind:
                continue
            if side in ("both", "other") and row["subject"] == code:
                found.add(row["other"])
            if side in ("both", "subject") and row["other"] == code:
                found.add(row["subject"])
    return {o for o in found if o in scored and o != code}


def holds_with(cond: dict[str, Any], st: State, related: dict[int, bool]) -> bool:
    """Like ``holds``, where ``related`` gives the value of each related condition (keyed
    by ``id`` of its mapping)."""
    if "related" in cond:
        return related.get(id(cond), False)
    if "all" in cond:
        return all(holds_with(c, st, related) for c in cond["all"])
    if "any" in cond:
        return any(holds_with(c, st, related) for c in cond["any"])
    if "not" in cond:
        return not holds_with(cond["not"], st, related)
    return holds(cond, st)


def _related_conditions(cond: dict[str, Any]) -> list[dict[str, Any]]:
    if "related" in cond:
        return [cond]
    parts = list(cond.get("all") or []) + list(cond.get("any") or [])
    if "not" in cond:
        parts.append(cond["not"])
    return [c for part in parts for c in _related_conditions(part)]


def network_states(
    scheme: Any,
    subjects: list[dict[str, Any]],
    records: list[dict[str, Any]],
    at: dt.date | str | int,
    relations: list[dict[str, Any]] | None = None,
    ratings: list[dict[str, Any]] | None = None,
) -> list[State]:
    """Every scored subject's state under a scheme that may use the network extension:
    reputation first, then a first evaluation with every related condition false, then
    the final one with them decided on the first (section 5)."""
    s = as_plain(scheme)
    day = as_date(at)
    ledger = [make_record(r) for r in records]
    scored = sorted((x for x in subjects if x["kind"] in s["subjects"]), key=lambda x: x["code"])
    codes = [x["code"] for x in scored]
    code_set = set(codes)
    rep = reputation(s, codes, ratings or [], day) if s.get("ratings") else None

    def evaluate_once(related: dict[int, bool], decided: dict[str, dict[int, bool]]) -> list[State]:
        out = []
        for subject in scored:
            code = subject["code"]
            mine = [r for r in ledger if r.subject == code]
            counted: dict[str, list[str]] = {}
            measures: dict[str, int | None] = {}
            contributions: dict[str, int] = {}
            for rule in s.get("rules") or []:
                kind = rule["measure"]
                if kind in ("peer_rating", "peer_trust"):
                    assert rep is not None
                    counted[rule["id"]] = []
                    m = rep.rating[code] if kind == "peer_rating" else rep.trust_per_mille[code]
                    measures[rule["id"]] = m
                    contributions[rule["id"]] = (
                        rule["none_points"] if m is None else contribution_of(rule, m)
                    )
                    continue
                counting = [r for r in mine if counts(s, rule, r, code_set, ledger, day)]
                counted[rule["id"]] = [r.id for r in counting]
                measures[rule["id"]] = measure_of(rule, counting, day)
                contributions[rule["id"]] = contribution_of(rule, measures[rule["id"]])
            score = s["score"]["base"] + sum(contributions.values())
            score = bounded(score, s["score"])
            st = State(
                code,
                subject["kind"],
                counted,
                measures,
                contributions,
                score,
                grade_of(s["grades"], score),
                [],
                [],
                set(),
                set(),
            )
            values = decided.get(code, related)
            for spec in s.get("lists") or []:
                if holds_with(spec["when"], st, values):
                    st.lists.append(spec["id"])
            for m in s.get("measures") or []:
                if holds_with(m["when"], st, values):
                    st.applied.append(m["id"])
                    st.denied.update(m.get("deny") or [])
                    st.granted.update(m.get("grant") or [])
            out.append(st)
        return out

    first = evaluate_once({}, {})
    conditions = [
        c
        for spec in (s.get("lists") or []) + (s.get("measures") or [])
        for c in _related_conditions(spec["when"])
    ]
    if not conditions:
        return first
    by_code = {st.code: st for st in first}
    decided: dict[str, dict[int, bool]] = {}
    for code in codes:
        values = {}
        for cond in conditions:
            body = cond["related"]
            others = related_subjects(code, body["via"], relations or [], code_set, day)
            matching = [o for o in others if holds(body["where"], by_code[o])]
            values[id(cond)] = len(matching) >= body.get("at_least", 1)
        decided[code] = values
    return evaluate_once({}, decided)


def network_evaluate(
    scheme: Any,
    subjects: list[dict[str, Any]],
    records: list[dict[str, Any]],
    at: dt.date | str | int,
    relations: list[dict[str, Any]] | None = None,
    ratings: list[dict[str, Any]] | None = None,
) -> list[Row]:
    """The section 7 rows of :func:`network_states`."""
    return [st.row() for st in network_states(scheme, subjects, records, at, relations, ratings)]

"""The rights audit of a scheme (SCHEME.md section 10).

Each finding has a severity, a code, its place in the file and a sentence a reader can act
on. A system that operates on real records refuses a scheme with a critical finding
(:func:`refuse_critical`); the simulator may run one and labels its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from socialcredit.errors import RefusedScheme
from socialcredit.scheme.model import (
    PEER_MEASURES,
    PROTECTED_CATEGORIES,
    AllOf,
    AnyOf,
    Condition,
    GradeIn,
    Not,
    OnList,
    Related,
    RuleCondition,
    Scheme,
    ScoreAtLeast,
    ScoreBelow,
)
from socialcredit.scheme.network import peer_rules, related_conditions
from socialcredit.scheme.places import Places, format_path

Severity = Literal["critical", "warning", "info"]
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One finding of the rights audit."""

    severity: Severity
    code: str
    where: str
    line: int
    message: str

    def __str__(self) -> str:
        place = f"line {self.line}, {self.where}" if self.line else self.where
        return f"{self.severity:8} {self.code:20} {place}: {self.message}"


def _scoring_rules(scheme: Scheme) -> set[str]:
    """Rules that can move the score (and so the grade)."""
    out = set()
    for rule in scheme.rules:
        values = (
            [rule.points or 0] if rule.points is not None else [b.points for b in rule.bins or ()]
        )
        if rule.none_points:
            values.append(rule.none_points)
        if any(values):
            out.add(rule.id)
    return out


def condition_rules(scheme: Scheme, cond: Condition, lists: dict[str, set[str]]) -> set[str]:
    """The rules a condition depends on (through scores, grades and earlier lists too)."""
    if isinstance(cond, RuleCondition):
        return {cond.rule}
    if isinstance(cond, ScoreAtLeast | ScoreBelow | GradeIn):
        return _scoring_rules(scheme)
    if isinstance(cond, OnList):
        return set(lists.get(cond.list, set()))
    if isinstance(cond, AllOf | AnyOf):
        parts = cond.all if isinstance(cond, AllOf) else cond.any
        return set().union(*(condition_rules(scheme, c, lists) for c in parts))
    if isinstance(cond, Not):
        return condition_rules(scheme, cond.not_, lists)
    if isinstance(cond, Related):  # the related subjects' records, under the same rules
        return condition_rules(scheme, cond.related.where, lists)
    return set()


def audit(scheme: Scheme, places: Places | None = None) -> list[Finding]:
    """Audit a validated scheme; findings are sorted by severity, then by place."""
    found = list(_findings(scheme, places or Places("")))
    found.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.line, f.where))
    return found


def protected_category(category: str) -> bool:
    """Whether a record category is one of SCHEME.md's protected categories, however it is
    written (``Religion``, `` health``): a category is a name, and a spelling is no way
    round the audit."""
    return " ".join(category.split()).casefold() in PROTECTED_CATEGORIES


def _findings(scheme: Scheme, places: Places) -> Iterator[Finding]:
    def at(sev: Severity, code: str, loc: tuple[str | int, ...], msg: str) -> Finding:
        return Finding(sev, code, format_path(loc), places.line_of(loc), msg)

    rules = {r.id: r for r in scheme.rules}
    categories = {t: spec.category for t, spec in scheme.records.items()}

    def rule_categories(ids: set[str]) -> set[str]:
        # a rule on peer ratings reads no records: its grounds are the ratings themselves
        peers = {"peer ratings" for r in ids if rules[r].measure in PEER_MEASURES}
        return {categories[t] for r in ids for t in rules[r].types} | peers

    def protected_types(ids: set[str]) -> list[str]:
        return sorted({t for r in ids for t in rules[r].types if protected_category(categories[t])})

    # protected categories, at each rule that reads them
    for i, rule in enumerate(scheme.rules):
        for j, t in enumerate(rule.types):
            if protected_category(categories[t]):
                yield at(
                    "critical",
                    "protected-category",
                    ("rules", i, "types", j),
                    f"rule {rule.id!r} reads {t!r}, of the protected category {categories[t]!r}",
                )
    list_rules: dict[str, set[str]] = {}
    for i, spec in enumerate(scheme.lists):
        deps = condition_rules(scheme, spec.when, list_rules)
        list_rules[spec.id] = deps
        bad = protected_types(deps)
        if bad:
            yield at(
                "critical",
                "protected-category",
                ("lists", i, "when"),
                f"list {spec.id!r} depends on protected record types: {', '.join(bad)}",
            )
        if spec.publish and "person" in scheme.subjects:
            yield at(
                "warning",
                "published-persons",
                ("lists", i, "publish"),
                f"list {spec.id!r} scores persons and is published: it names people to the public",
            )
    for i, m in enumerate(scheme.measures):
        deps = condition_rules(scheme, m.when, list_rules)
        bad = protected_types(deps)
        if bad:
            yield at(
                "critical",
                "protected-category",
                ("measures", i, "when"),
                f"measure {m.id!r} depends on protected record types: {', '.join(bad)}",
            )
        cats = rule_categories(deps)
        for j, action in enumerate(m.deny):
            for context in _contexts(scheme, action):
                if context not in cats:
                    basis = ", ".join(sorted(cats)) or "no records"
                    yield at(
                        "warning",
                        "unrelated-sanction",
                        ("measures", i, "deny", j),
                        f"measure {m.id!r} denies {action!r} (context {context!r}) on grounds "
                        f"of {basis}",
                    )

    yield from _collective(scheme, at)

    adverse = {t for t, spec in scheme.records.items() if spec.adverse}
    for i, rule in enumerate(scheme.rules):
        used = [t for t in rule.types if t in adverse]
        if used and rule.window_days is None:
            yield at(
                "warning",
                "permanent-record",
                ("rules", i),
                f"rule {rule.id!r} has no window_days, so adverse records "
                f"({', '.join(used)}) count forever",
            )
    if adverse:
        if not scheme.notice_days:
            yield at(
                "warning",
                "no-notice",
                ("notice_days",),
                "adverse records take effect with no notice to the subject (notice_days is "
                f"{'missing' if scheme.notice_days is None else scheme.notice_days})",
            )
        if not scheme.appeal_days:
            yield at(
                "warning",
                "no-appeal",
                ("appeal_days",),
                "subjects cannot contest records (appeal_days is "
                f"{'missing' if scheme.appeal_days is None else scheme.appeal_days})",
            )


def _collective(
    scheme: Scheme, at: Callable[[Severity, str, tuple[str | int, ...], str], Finding]
) -> Iterator[Finding]:
    """``collective-liability``: every use of peer ratings or of relations
    (docs/networks.md section 6)."""
    for i in peer_rules(scheme):
        rule = scheme.rules[i]
        yield at(
            "critical",
            "collective-liability",
            ("rules", i, "measure"),
            f"rule {rule.id!r} scores subjects by peer ratings ({rule.measure}): a subject's "
            "state depends on what other subjects say of it, weighted by their own standing",
        )
    for loc, cond in related_conditions(scheme):
        section, index = str(loc[0]), int(loc[1])
        owner = scheme.lists[index].id if section == "lists" else scheme.measures[index].id
        what = "list" if section == "lists" else "measure"
        via = ", ".join(cond.related.via)
        yield at(
            "critical",
            "collective-liability",
            loc,
            f"{what} {owner!r} depends on the state of related subjects (via {via}): a "
            "subject answers for the conduct of others",
        )


def _contexts(scheme: Scheme, action: str) -> set[str]:
    """Contexts of the catalogued actions a deny entry covers, or that cover it."""
    out = set()
    for name, spec in scheme.actions.items():
        if name == action or name.startswith(action + ".") or action.startswith(name + "."):
            out.add(spec.context)
    return out


def is_critical(findings: list[Finding]) -> bool:
    """Whether any finding is critical."""
    return any(f.severity == "critical" for f in findings)


def refuse_critical(scheme: Scheme, findings: list[Finding]) -> None:
    """Raise RefusedScheme when a scheme with critical findings would run on real records."""
    critical = [f for f in findings if f.severity == "critical"]
    if critical:
        lines = "\n".join(f"  {f}" for f in critical)
        raise RefusedScheme(
            f"scheme {scheme.scheme!r} has critical rights-audit findings and is refused for "
            f"real records (the lab may still simulate it):\n{lines}"
        )

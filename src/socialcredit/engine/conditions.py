"""Conditions (SCHEME.md section 5) compiled to functions over subject vectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from socialcredit.scheme.model import (
    AllOf,
    AnyOf,
    Condition,
    GradeIn,
    Not,
    OnList,
    Related,
    RuleCondition,
    ScoreAtLeast,
    ScoreBelow,
)

Bools = npt.NDArray[np.bool_]


@dataclass
class Facts:
    """What conditions read, for one partition of subjects (columns are subjects)."""

    measure: npt.NDArray[np.int64]  # [rules, n]
    has_measure: Bools  # [rules, n]; false only for a days_since rule with no record
    score: npt.NDArray[np.int64]  # [n]
    grade: npt.NDArray[np.int16]  # [n]
    lists: Bools  # [lists, n], filled in list order
    related: Bools | None = None  # [related conditions, n] (docs/networks.md), when used


Compiled = Callable[[Facts], Bools]


def compile_condition(
    cond: Condition,
    rule_index: dict[str, int],
    grade_index: dict[str, int],
    list_index: dict[str, int],
    related_index: dict[int, int] | None = None,
) -> Compiled:
    """Compile a validated condition to a function of :class:`Facts`.

    ``related_index`` numbers the ``related`` conditions of the scheme (by object
    identity); a related condition reads its row of ``Facts.related``, which the network
    stage of the evaluation fills (:mod:`socialcredit.engine.network`).
    """

    def sub(c: Condition) -> Compiled:
        return compile_condition(c, rule_index, grade_index, list_index, related_index)

    if isinstance(cond, Related):
        if related_index is None or id(cond) not in related_index:
            raise ValueError("a related condition outside the scheme it was compiled for")
        k = related_index[id(cond)]

        def related_test(f: Facts) -> Bools:
            if f.related is None:
                raise ValueError("the scheme uses relations: evaluate it with a relations input")
            out: Bools = f.related[k].copy()
            return out

        return related_test
    if isinstance(cond, RuleCondition):
        r, lo, hi = rule_index[cond.rule], cond.at_least, cond.at_most

        def rule_test(f: Facts) -> Bools:
            out: Bools = f.has_measure[r].copy()
            if lo is not None:
                out &= f.measure[r] >= lo
            if hi is not None:
                out &= f.measure[r] <= hi
            return out

        return rule_test
    if isinstance(cond, ScoreAtLeast):
        n = cond.score_at_least
        return lambda f: f.score >= n
    if isinstance(cond, ScoreBelow):
        m = cond.score_below
        return lambda f: f.score < m
    if isinstance(cond, GradeIn):
        chosen = np.zeros(len(grade_index), dtype=np.bool_)
        chosen[[grade_index[g] for g in cond.grade_in]] = True
        return lambda f: chosen[f.grade]
    if isinstance(cond, OnList):
        i = list_index[cond.list]
        return lambda f: f.lists[i].copy()
    if isinstance(cond, AllOf | AnyOf):
        subs = [sub(c) for c in (cond.all if isinstance(cond, AllOf) else cond.any)]
        combine = np.logical_and if isinstance(cond, AllOf) else np.logical_or

        def many(f: Facts) -> Bools:
            out = subs[0](f)
            for part in subs[1:]:
                combine(out, part(f), out=out)
            return out

        return many
    if isinstance(cond, Not):
        inner = sub(cond.not_)
        return lambda f: ~inner(f)
    raise TypeError(f"not a condition: {cond!r}")


def render_condition(cond: Condition) -> str:
    """The condition as it would be written in the scheme, in flow style."""
    if isinstance(cond, RuleCondition):
        parts = [f"rule: {cond.rule}"]
        if cond.at_least is not None:
            parts.append(f"at_least: {cond.at_least}")
        if cond.at_most is not None:
            parts.append(f"at_most: {cond.at_most}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(cond, ScoreAtLeast):
        return f"{{score_at_least: {cond.score_at_least}}}"
    if isinstance(cond, ScoreBelow):
        return f"{{score_below: {cond.score_below}}}"
    if isinstance(cond, GradeIn):
        return "{grade_in: [" + ", ".join(cond.grade_in) + "]}"
    if isinstance(cond, OnList):
        return f"{{list: {cond.list}}}"
    if isinstance(cond, AllOf):
        return "{all: [" + ", ".join(render_condition(c) for c in cond.all) + "]}"
    if isinstance(cond, AnyOf):
        return "{any: [" + ", ".join(render_condition(c) for c in cond.any) + "]}"
    if isinstance(cond, Not):
        return "{not: " + render_condition(cond.not_) + "}"
    if isinstance(cond, Related):
        body = cond.related
        parts = [f"via: [{', '.join(body.via)}]", f"where: {render_condition(body.where)}"]
        if body.at_least != 1:
            parts.append(f"at_least: {body.at_least}")
        return "{related: {" + ", ".join(parts) + "}}"
    raise TypeError(f"not a condition: {cond!r}")


def condition_parts(cond: Condition) -> list[Condition]:
    """The direct sub-conditions of a condition (empty for a leaf).

    A related condition is a leaf here: its ``where`` is judged on other subjects.
    """
    if isinstance(cond, AllOf):
        return list(cond.all)
    if isinstance(cond, AnyOf):
        return list(cond.any)
    if isinstance(cond, Not):
        return [cond.not_]
    return []

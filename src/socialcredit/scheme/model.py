"""The scheme language (SCHEME.md) as pydantic models.

The models check the shape of a scheme file: keys, types and bounds. The cross-references
(a rule's types in the catalogue, a condition's rule, grade or list) are checked by
:mod:`socialcredit.scheme.validate`, which reports every problem at once with its place.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from socialcredit.records import DOTTED_NAME, MAX_NAME

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=64)]
TypeName = Annotated[str, Field(pattern=DOTTED_NAME, min_length=1, max_length=MAX_NAME)]
ActionName = TypeName
INT64_MAX = 2**63 - 1
Int = Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
"""Every integer of a scheme is a signed 64-bit integer (the engine's arithmetic)."""
PositiveInt = Annotated[int, Field(gt=0, le=INT64_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT64_MAX)]
SubjectKind = Literal["person", "organization"]
Measure = Literal["count", "amount", "days_since", "peer_rating", "peer_trust"]
PEER_MEASURES = frozenset({"peer_rating", "peer_trust"})
"""Measures read from peer ratings (docs/networks.md), not from the subject's records."""
RELATION_KINDS = ("household", "friend", "employer", "legal_representative")
"""The kinds of a row of the relations input (docs/networks.md)."""
Via = Literal["household", "friend", "employer", "employee", "legal_representative", "represented"]
"""How a related subject is reached from the subject (docs/networks.md section 3)."""

PROTECTED_CATEGORIES = frozenset(
    {"political", "religion", "ethnicity", "speech", "association", "health", "sexuality"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RecordType(_Strict):
    """One entry of the record catalogue."""

    category: Annotated[str, Field(min_length=1)]
    adverse: bool = False
    description: str | None = None


class ScoreSpec(_Strict):
    """The base of the score and its optional bounds."""

    base: Int
    min: Int | None = None
    max: Int | None = None


class Bin(_Strict):
    """A row of a table-form rule: the first row whose ``max >= measure`` gives the points."""

    max: NonNegativeInt | None = None
    points: Int


class Rule(_Strict):
    """A rule adds a contribution to the score (SCHEME.md section 4)."""

    id: Identifier
    types: Annotated[list[TypeName], Field(min_length=1)] = Field(default_factory=list)
    window_days: PositiveInt | None = None
    measure: Measure
    points: Int | None = None
    per: PositiveInt | None = None
    cap: PositiveInt | None = None
    bins: Annotated[list[Bin], Field(min_length=1)] | None = None
    none_points: Int | None = None
    description: str | None = None


class Grade(_Strict):
    """An entry of the ordered grade table."""

    grade: Annotated[str, Field(min_length=1, max_length=32)]
    min: Int | None = None


# ---- conditions (SCHEME.md section 5) -------------------------------------------------


class RuleCondition(_Strict):
    """``{rule: ID, at_least: N}`` and/or ``at_most: M``: on the rule's measure."""

    rule: Identifier
    at_least: Int | None = None
    at_most: Int | None = None


class ScoreAtLeast(_Strict):
    """``{score_at_least: N}``: the bounded score is at least N."""

    score_at_least: Int


class ScoreBelow(_Strict):
    """``{score_below: N}``: the bounded score is below N."""

    score_below: Int


class GradeIn(_Strict):
    """``{grade_in: [G, ...]}``: the subject's grade is one of these."""

    grade_in: Annotated[list[str], Field(min_length=1)]


class OnList(_Strict):
    """``{list: ID}``: the subject is on that (earlier) list."""

    list: Identifier


class AllOf(_Strict):
    """``{all: [C, ...]}``: every condition holds."""

    all: Annotated[list[Condition], Field(min_length=1)]


class AnyOf(_Strict):
    """``{any: [C, ...]}``: some condition holds."""

    any: Annotated[list[Condition], Field(min_length=1)]


class Not(_Strict):
    """``{not: C}``: the condition does not hold."""

    not_: Condition = Field(alias="not")
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class RelatedSpec(_Strict):
    """The body of a ``related`` condition (docs/networks.md section 3)."""

    via: Annotated[list[Via], Field(min_length=1)]
    where: Condition
    at_least: PositiveInt = 1


class Related(_Strict):
    """``{related: {via: [...], where: C, at_least: N}}``: at least N subjects related to the
    subject in one of these ways satisfy C (judged on their own states)."""

    related: RelatedSpec


_CONDITION_TAGS = (
    "rule",
    "score_at_least",
    "score_below",
    "grade_in",
    "list",
    "all",
    "any",
    "not",
    "related",
)


def condition_form(value: Any) -> str | None:
    """Which form a condition mapping has: the one tag key it holds, else None."""
    if isinstance(value, BaseModel):
        for tag, cls in _TAG_CLASSES.items():
            if isinstance(value, cls):
                return tag
        return None
    if not isinstance(value, dict):
        return None
    present = [k for k in _CONDITION_TAGS if k in value]
    return present[0] if len(present) == 1 else None


Condition = Annotated[
    Annotated[RuleCondition, Tag("rule")]
    | Annotated[ScoreAtLeast, Tag("score_at_least")]
    | Annotated[ScoreBelow, Tag("score_below")]
    | Annotated[GradeIn, Tag("grade_in")]
    | Annotated[OnList, Tag("list")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[Related, Tag("related")],
    Discriminator(
        condition_form,
        custom_error_type="condition_form",
        custom_error_message=(
            "a condition must have exactly one of the forms rule, score_at_least, "
            "score_below, grade_in, list, all, any, not, related"
        ),
    ),
]

_TAG_CLASSES: dict[str, type[BaseModel]] = {
    "rule": RuleCondition,
    "score_at_least": ScoreAtLeast,
    "score_below": ScoreBelow,
    "grade_in": GradeIn,
    "list": OnList,
    "all": AllOf,
    "any": AnyOf,
    "not": Not,
    "related": Related,
}


class ListSpec(_Strict):
    """A black or red list: its members are the scored subjects whose ``when`` holds."""

    id: Identifier
    kind: Literal["black", "red"]
    when: Condition
    publish: bool = False
    title: str | None = None
    description: str | None = None


class MeasureSpec(_Strict):
    """A measure denies or grants actions to the subjects whose ``when`` holds."""

    id: Identifier
    when: Condition
    deny: list[ActionName] = Field(default_factory=list)
    grant: list[ActionName] = Field(default_factory=list)
    agency: str | None = None
    description: str | None = None


class ActionSpec(_Strict):
    """An entry of the optional action catalogue, for the rights audit."""

    context: Annotated[str, Field(min_length=1)]
    description: str | None = None


class RatingsSpec(_Strict):
    """How peer ratings become a reputation (docs/networks.md section 4)."""

    stars: Annotated[int, Field(ge=2, le=10)] = 5
    window_days: PositiveInt | None = None
    damping: Annotated[int, Field(ge=1, le=999)] = 150
    max_iterations: Annotated[int, Field(ge=1, le=1000)] = 100
    description: str | None = None


class Scheme(_Strict):
    """A whole scheme file (SCHEME.md section 2)."""

    scheme: Identifier
    title: str | None = None
    version: str | None = None
    description: str | None = None
    subjects: Annotated[list[SubjectKind], Field(min_length=1)]
    notice_days: NonNegativeInt | None = None
    appeal_days: NonNegativeInt | None = None
    records: dict[TypeName, RecordType]
    score: ScoreSpec
    rules: list[Rule] = Field(default_factory=list)
    grades: Annotated[list[Grade], Field(min_length=1)]
    lists: list[ListSpec] = Field(default_factory=list)
    measures: list[MeasureSpec] = Field(default_factory=list)
    actions: dict[ActionName, ActionSpec] = Field(default_factory=dict)
    ratings: RatingsSpec | None = None

    def delay_of(self, record_type: str) -> int:
        """Days between recording and effect for a type (notice_days if adverse)."""
        spec = self.records.get(record_type)
        if spec is not None and spec.adverse:
            return self.notice_days or 0
        return 0


for _model in (AllOf, AnyOf, Not, RelatedSpec, Related, ListSpec, MeasureSpec):
    _model.model_rebuild()

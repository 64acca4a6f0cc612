"""The scheme language (SCHEME.md) as pydantic models.

The models check the shape of a scheme file: keys, types and bounds. The cross-references
(a rule's types in the catalogue, a condition's rule, grade or list) are checked by
:mod:`socialcredit.scheme.validate`, which reports every problem at once with its place.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

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
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _not_null(expected: str) -> BeforeValidator:
    """Refuse an explicit ``null``: a key is either absent or holds a value of its type (the
    language gives null no meaning, not even for an optional key)."""

    def refuse(value: Any) -> Any:
        if value is None:
            raise PydanticCustomError(
                "null_value", "must be {expected}, not null", {"expected": expected}
            )
        return value

    return BeforeValidator(refuse)


# Optional keys: absent is None in Python; a null written in the file is refused, and the
# JSON Schema does not offer null (see _json_schema_extra).
OptInt = Annotated[Int | None, _not_null("an integer")]
OptPositiveInt = Annotated[PositiveInt | None, _not_null("an integer")]
OptNonNegativeInt = Annotated[NonNegativeInt | None, _not_null("an integer")]
OptText = Annotated[str | None, _not_null("a string")]
NonEmptyText = Annotated[str, Field(min_length=1)]
_NULL = {"type": "null"}


def _json_schema_extra(schema: dict[str, Any], cls: type[Any]) -> None:
    """Finish a model's JSON Schema: an optional key takes its type's values only, never
    null (``anyOf: [T, null]`` becomes ``T``, with no ``default: null``), and the class's own
    constraints between keys (``json_schema_rules``) are added."""
    for prop in schema.get("properties", {}).values():
        if not isinstance(prop, dict):
            continue
        choices = prop.get("anyOf")
        if isinstance(choices, list) and _NULL in choices:
            rest = [c for c in choices if c != _NULL]
            del prop["anyOf"]
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        if "default" in prop and prop["default"] is None:
            del prop["default"]
    schema.update(copy.deepcopy(getattr(cls, "json_schema_rules", {})))


def _measure_is(*names: str) -> dict[str, Any]:
    return {"required": ["measure"], "properties": {"measure": {"enum": list(names)}}}


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=_json_schema_extra
    )


class RecordType(_Strict):
    """One entry of the record catalogue."""

    category: NonEmptyText
    adverse: bool = False
    description: OptText = None


class ScoreSpec(_Strict):
    """The base of the score and its optional bounds."""

    base: Int
    min: OptInt = None
    max: OptInt = None


class Bin(_Strict):
    """A row of a table-form rule: the first row whose ``max >= measure`` gives the points."""

    max: OptNonNegativeInt = None
    points: Int


class Rule(_Strict):
    """A rule adds a contribution to the score (SCHEME.md section 4)."""

    json_schema_rules: ClassVar[dict[str, Any]] = {
        "allOf": [
            {"oneOf": [{"required": ["points"]}, {"required": ["bins"]}]},
            {"if": {"required": ["bins"]}, "then": {"properties": {"per": False, "cap": False}}},
            {
                "if": _measure_is(*sorted(PEER_MEASURES)),
                "then": {"properties": {"types": False, "window_days": False}},
                "else": {"required": ["types"]},
            },
            {"if": _measure_is("days_since"), "then": {"required": ["bins", "none_points"]}},
            {"if": _measure_is("peer_rating"), "then": {"required": ["none_points"]}},
            {
                "if": _measure_is("days_since", "peer_rating"),
                "else": {"properties": {"none_points": False}},
            },
        ]
    }

    id: Identifier
    types: Annotated[
        list[TypeName], Field(min_length=1, json_schema_extra={"uniqueItems": True})
    ] = Field(default_factory=list)
    window_days: OptPositiveInt = None
    measure: Measure
    points: OptInt = None
    per: OptPositiveInt = None
    cap: OptPositiveInt = None
    bins: Annotated[Annotated[list[Bin], Field(min_length=1)] | None, _not_null("a list")] = None
    none_points: OptInt = None
    description: OptText = None


class Grade(_Strict):
    """An entry of the ordered grade table."""

    grade: Annotated[str, Field(min_length=1, max_length=32)]
    min: OptInt = None


# ---- conditions (SCHEME.md section 5) -------------------------------------------------


class RuleCondition(_Strict):
    """``{rule: ID, at_least: N}`` and/or ``at_most: M``: on the rule's measure."""

    json_schema_rules: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["at_least"]}, {"required": ["at_most"]}]
    }

    rule: Identifier
    at_least: OptInt = None
    at_most: OptInt = None


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
    title: OptText = None
    description: OptText = None


class MeasureSpec(_Strict):
    """A measure denies or grants actions to the subjects whose ``when`` holds."""

    json_schema_rules: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": [key], "properties": {key: {"minItems": 1}}} for key in ("deny", "grant")
        ]
    }

    id: Identifier
    when: Condition
    deny: list[ActionName] = Field(default_factory=list)
    grant: list[ActionName] = Field(default_factory=list)
    agency: OptText = None
    description: OptText = None


class ActionSpec(_Strict):
    """An entry of the optional action catalogue, for the rights audit."""

    context: NonEmptyText
    description: OptText = None


class RatingsSpec(_Strict):
    """How peer ratings become a reputation (docs/networks.md section 4)."""

    stars: Annotated[int, Field(ge=2, le=10)] = 5
    window_days: OptPositiveInt = None
    damping: Annotated[int, Field(ge=1, le=999)] = 150
    max_iterations: Annotated[int, Field(ge=1, le=1000)] = 100
    description: OptText = None


class Scheme(_Strict):
    """A whole scheme file (SCHEME.md section 2)."""

    json_schema_rules: ClassVar[dict[str, Any]] = {
        "if": {
            "required": ["rules"],
            "properties": {"rules": {"contains": _measure_is(*sorted(PEER_MEASURES))}},
        },
        "then": {"required": ["ratings"]},
    }

    scheme: Identifier
    title: OptText = None
    version: OptText = None
    description: OptText = None
    subjects: Annotated[
        list[SubjectKind], Field(min_length=1, json_schema_extra={"uniqueItems": True})
    ]
    notice_days: OptNonNegativeInt = None
    appeal_days: OptNonNegativeInt = None
    records: Annotated[
        dict[TypeName, RecordType], Field(json_schema_extra={"additionalProperties": False})
    ]
    score: ScoreSpec
    rules: list[Rule] = Field(default_factory=list)
    grades: Annotated[list[Grade], Field(min_length=1)]
    lists: list[ListSpec] = Field(default_factory=list)
    measures: list[MeasureSpec] = Field(default_factory=list)
    actions: Annotated[
        dict[ActionName, ActionSpec], Field(json_schema_extra={"additionalProperties": False})
    ] = Field(default_factory=dict)
    ratings: Annotated[RatingsSpec | None, _not_null("a mapping")] = None

    def delay_of(self, record_type: str) -> int:
        """Days between recording and effect for a type (notice_days if adverse)."""
        spec = self.records.get(record_type)
        if spec is not None and spec.adverse:
            return self.notice_days or 0
        return 0


for _model in (AllOf, AnyOf, Not, RelatedSpec, Related, ListSpec, MeasureSpec):
    _model.model_rebuild()


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scheme file, as ``scheme schema`` prints it: the
    keys, types and bounds, and the constraints between the keys of one rule, condition or
    measure. The references between parts are left to the full check."""
    return {"$schema": JSON_SCHEMA_DIALECT, **Scheme.model_json_schema(by_alias=True)}

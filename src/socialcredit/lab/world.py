"""Worlds: the synthetic population and its conduct, as a YAML file (docs/lab.md).

A world is checked whole, like a scheme: the pydantic models check shapes, then
:func:`cross_check` checks what shapes alone cannot (ten values per decile, shares that sum
to one, a detection coverage for every category); every problem is reported at once with
its place (``town.yaml:12: behaviour[3].by_decile: must have 10 values``). An invalid world
raises :class:`InvalidWorld` and is never half-used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from socialcredit.errors import InvalidInput, InvalidScheme, Problem
from socialcredit.scheme.model import TypeName
from socialcredit.scheme.places import Places
from socialcredit.scheme.validate import parse_document, read_scheme_text

Share = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
DECILES = 10


class InvalidWorld(InvalidInput):
    """A world file failed validation."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, what="world")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Areas(_Strict):
    """A multiplier for each kind of area."""

    urban: NonNegative = 1.0
    rural: NonNegative = 1.0


class Population(_Strict):
    """Who lives in the world."""

    persons: Annotated[int, Field(gt=0)]
    organizations: Annotated[int, Field(ge=0)]
    urban_share: Share
    # share of each area's persons in each national income decile (1 = poorest); each sums to 1
    decile_shares_urban: list[NonNegative] | None = None
    decile_shares_rural: list[NonNegative] | None = None
    # shape of the gamma (mean 1) propensity that scales each subject's misconduct rates
    propensity_shape: Annotated[float, Field(gt=0)] = 0.5


class Resolution(_Strict):
    """A later record that ends (``ref``) a share of the records of a conduct."""

    type: TypeName
    share: Share
    mean_days: Annotated[float, Field(gt=0)]


class Conduct(_Strict):
    """One kind of conduct of one kind of subject, and the record an agency makes of it."""

    type: TypeName
    category: Annotated[str, Field(min_length=1)]
    kind: Literal["person", "organization"] = "person"
    rate: NonNegative  # events per subject per year, before multipliers
    by_decile: list[NonNegative] | None = None  # persons: multiplier per income decile
    by_area: Areas = Areas()
    legal: bool = False  # lawful conduct (e.g. a heroic act): no propensity, no deterrence
    amount: NonNegative = 0  # mean amount of a record (0: records carry no amount)
    resolution: Resolution | None = None


class Detection(_Strict):
    """How much conduct becomes records, how late, and how many records are false."""

    coverage: dict[str, Share]  # per category: the share of conduct an agency records
    delay_days: NonNegative = 3  # mean days from conduct to record (Poisson)
    false_record_rate: NonNegative = 0  # false records per true record of misconduct


class Deterrence(_Strict):
    """How rates of conduct a scheme penalizes fall."""

    specific: Share = 0  # fall of a subject's rate while the subject is penalized
    general: Share = 0  # fall of everyone's rate, once the scheme is known
    learning_weeks: Annotated[int, Field(gt=0)] = 13  # weeks until ``general`` is reached


class Responses(_Strict):
    """How subjects respond to a scheme."""

    deterrence: Deterrence = Deterrence()
    chilling: Share = 0  # fall of everyone's rate of legal conduct the scheme penalizes


class Appeals(_Strict):
    """Who contests a false record, how often it is voided, and how long that takes."""

    contest_by_decile: list[Share]  # persons, by income decile
    contest_organization: Share = 0.5
    upheld: Share  # probability that a contested false record is voided
    delay_days: Annotated[int, Field(ge=0)] = 30
    type: TypeName = "appeal.upheld"


class Redemption(_Strict):
    """Donations: the points a scheme may let subjects buy back."""

    type: TypeName = "charity.donation"
    category: str = "charity"
    rate_by_decile: list[NonNegative]  # donations per person per year
    amount_by_decile: list[NonNegative]  # mean amount of a donation
    when_penalized: NonNegative = 1.0  # rate multiplier while the donor is penalized


class Networks(_Strict):
    """Households and a friendship graph among the persons (docs/lab.md)."""

    household_size_mean: Annotated[float, Field(ge=1, le=100)] = 2.62
    household_size_max: Annotated[int, Field(ge=1, le=100)] = 10
    friends_mean_degree: Annotated[float, Field(ge=0, le=1000)] = 8.0
    friends_homophily: Share = 0.8  # share of friendships drawn within the person's area


class Ratings(_Strict):
    """Peer ratings among persons, for schemes with rules on peer ratings (docs/lab.md)."""

    per_person_per_week: Annotated[float, Field(ge=0, le=100)] = 0.5
    among: Literal["friends", "anyone"] = "friends"  # whom a rater rates
    quality: Share = 0.8  # a rating's stars are 1 + Binomial(stars - 1, q); q of the average
    conduct: NonNegative = 0.1  # q falls by this per unit of the ratee's propensity above 1
    stigma: Share = 0.3  # q falls by this when the ratee is on a black list
    trust_every_weeks: Annotated[int, Field(ge=1, le=52)] = 4  # EigenTrust re-evaluated


class World(_Strict):
    """A whole world file."""

    world: Annotated[str, Field(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=64)]
    title: str | None = None
    description: str | None = None
    start: dt.date
    population: Population
    behaviour: Annotated[list[Conduct], Field(min_length=1)]
    detection: Detection
    responses: Responses = Responses()
    appeals: Appeals | None = None
    redemption: Redemption | None = None
    networks: Networks | None = None
    ratings: Ratings | None = None


@dataclass(frozen=True)
class LoadedWorld:
    """A validated world, where it came from, and the lines of its parts."""

    world: World
    places: Places
    source: str
    text: str


def parse_world(text: str, source: str = "<string>") -> tuple[World, Places]:
    """Parse and validate a world; raise InvalidWorld with every problem at once."""
    world, places, problems = parse_document(text, source, World, cross_check, "world")
    if problems or world is None:
        raise InvalidWorld(problems)
    return world, places


def _deciles(value: Any, loc: tuple[str | int, ...], places: Places, out: list[Problem]) -> None:
    if isinstance(value, list) and len(value) != DECILES:
        out.append(places.problem(loc, f"must have {DECILES} values (one per income decile)"))


def cross_check(data: Any, places: Places) -> list[Problem]:
    """Check what the shapes alone cannot; run on the raw document."""
    out: list[Problem] = []
    if not isinstance(data, dict):
        return out
    pop = data.get("population")
    if isinstance(pop, dict):
        for key in ("decile_shares_urban", "decile_shares_rural"):
            shares = pop.get(key)
            _deciles(shares, ("population", key), places, out)
            if (
                isinstance(shares, list)
                and all(isinstance(v, int | float) for v in shares)
                and abs(sum(shares) - 1) > 1e-6
            ):
                out.append(places.problem(("population", key), "the shares must sum to 1"))
    behaviour = data.get("behaviour") if isinstance(data.get("behaviour"), list) else []
    assert isinstance(behaviour, list)
    seen: set[tuple[str, str]] = set()
    categories: set[str] = set()
    for i, item in enumerate(behaviour):
        if not isinstance(item, dict):
            continue
        _deciles(item.get("by_decile"), ("behaviour", i, "by_decile"), places, out)
        pair = (str(item.get("type")), str(item.get("kind", "person")))
        if pair in seen:
            out.append(places.problem(("behaviour", i, "type"), f"{pair[0]!r} for {pair[1]} twice"))
        seen.add(pair)
        if isinstance(item.get("category"), str):
            categories.add(item["category"])
    redemption = data.get("redemption")
    if isinstance(redemption, dict):
        for key in ("rate_by_decile", "amount_by_decile"):
            _deciles(redemption.get(key), ("redemption", key), places, out)
        categories.add(str(redemption.get("category", "charity")))
    appeals = data.get("appeals")
    if isinstance(appeals, dict):
        _deciles(appeals.get("contest_by_decile"), ("appeals", "contest_by_decile"), places, out)
    networks = data.get("networks")
    if isinstance(networks, dict):
        mean, most = networks.get("household_size_mean"), networks.get("household_size_max", 10)
        if isinstance(mean, int | float) and isinstance(most, int) and mean > most:
            out.append(
                places.problem(
                    ("networks", "household_size_mean"),
                    f"must not be above household_size_max ({most})",
                )
            )
    ratings = data.get("ratings")
    friends = isinstance(ratings, dict) and ratings.get("among", "friends") == "friends"
    if friends and "networks" not in data:
        out.append(
            places.problem(
                ("ratings", "among"),
                "'friends' needs a networks section (or rate 'anyone')",
            )
        )
    detection = data.get("detection")
    coverage = detection.get("coverage") if isinstance(detection, dict) else None
    if isinstance(coverage, dict):
        for category in sorted(categories - set(coverage)):
            out.append(
                places.problem(
                    ("detection", "coverage"),
                    f"no coverage for category {category!r} (give a share from 0 to 1)",
                )
            )
    return out


def world_names() -> list[str]:
    """The names of the shipped worlds, sorted."""
    folder = resources.files("socialcredit.lab") / "worlds"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_world(name_or_path: str) -> LoadedWorld:
    """Load a world by shipped name or by file path, validated whole."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            text = read_scheme_text(path)  # the same reading as a scheme file's
        except InvalidScheme as exc:
            raise InvalidWorld(exc.problems) from None
        world, places = parse_world(text, str(path))
        return LoadedWorld(world, places, str(path), text)
    if name_or_path in world_names():
        res = resources.files("socialcredit.lab") / "worlds" / f"{name_or_path}.yaml"
        text = res.read_text(encoding="utf-8")
        source = f"world:{name_or_path}"
        world, places = parse_world(text, source)
        return LoadedWorld(world, places, source, text)
    known = ", ".join(world_names())
    raise InvalidWorld(
        [Problem(name_or_path, 0, "", f"no such file, and no shipped world (worlds: {known})")]
    )

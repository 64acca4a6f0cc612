"""The synthetic population of a world: compact columns, one row per agent.

Agents are kept ordered by *group* (kind, area, income decile), so that a group is a
contiguous range of rows. That makes drawing a week's events cost in proportion to the
events: a Poisson count per group, then agents within the group by a binary search in the
cumulative propensity (or uniformly). Codes are valid synthetic codes
(:mod:`socialcredit.ids`), drawn at random, so their order is unrelated to the groups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.ids import ric, uscc
from socialcredit.lab.world import DECILES, World
from socialcredit.records import SUBJECTS_SCHEMA

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PERSON, ORGANIZATION = 0, 1
URBAN, RURAL = 0, 1
N_GROUPS = 2 * DECILES + 2
"""Groups: persons ``area * 10 + decile - 1`` (0-19), then organizations ``20 + area``."""


def person_group(area: int, decile: int) -> int:
    """The group of persons of an area (URBAN or RURAL) and income decile (1-10)."""
    return area * DECILES + decile - 1


def organization_group(area: int) -> int:
    """The group of organizations of an area."""
    return 2 * DECILES + area


@dataclass(frozen=True)
class Population:
    """Agents in group order: columns, group bounds and the subjects table."""

    codes: pa.Array  # per agent (string)
    kind: npt.NDArray[np.int8]  # PERSON or ORGANIZATION
    decile: npt.NDArray[np.int8]  # 1..10 for persons, 0 for organizations
    area: npt.NDArray[np.int8]  # URBAN or RURAL
    propensity: F64  # gamma, mean 1
    bounds: I64  # [N_GROUPS + 1]: rows of group g are bounds[g]:bounds[g + 1]
    cum_propensity: F64  # [n + 1]: cumulative propensity, cum[0] = 0
    sorted_codes: pa.Array  # every code, in byte order
    rank: npt.NDArray[np.int32]  # per agent: position of its code in sorted_codes
    persons: int
    organizations: int

    @property
    def size(self) -> int:
        """How many agents."""
        return len(self.kind)

    @property
    def subjects(self) -> pa.Table:
        """The canonical subjects table, in code order."""
        kinds = pa.array(["person", "organization"], pa.string()).take(
            pa.array(self.kind[np.argsort(self.rank)].astype(np.int32))
        )
        return pa.Table.from_arrays([self.sorted_codes, kinds], schema=SUBJECTS_SCHEMA)

    def group_size(self, g: int) -> int:
        """How many agents in group ``g``."""
        return int(self.bounds[g + 1] - self.bounds[g])

    def group_propensity(self) -> F64:
        """The sum of propensity in each group."""
        total: F64 = self.cum_propensity[self.bounds[1:]] - self.cum_propensity[self.bounds[:-1]]
        return total


def build_population(
    world: World, persons: int, organizations: int, rng: np.random.Generator
) -> Population:
    """Draw the agents of a world."""
    pop = world.population
    equal = [1 / DECILES] * DECILES
    urban = rng.random(persons) < pop.urban_share
    decile = np.empty(persons, dtype=np.int8)
    for area_is_urban, shares in (
        (True, pop.decile_shares_urban or equal),
        (False, pop.decile_shares_rural or equal),
    ):
        where = np.flatnonzero(urban == area_is_urban)
        p = np.asarray(shares, dtype=np.float64)
        decile[where] = rng.choice(DECILES, size=len(where), p=p / p.sum()) + 1
    org_urban = rng.random(organizations) < pop.urban_share
    area = np.concatenate([np.where(urban, URBAN, RURAL), np.where(org_urban, URBAN, RURAL)])
    group = np.concatenate(
        [
            area[:persons] * DECILES + decile - 1,
            2 * DECILES + area[persons:],
        ]
    ).astype(np.int64)
    order = np.argsort(group, kind="stable")
    group = group[order]
    kind = np.concatenate(
        [np.full(persons, PERSON, np.int8), np.full(organizations, ORGANIZATION, np.int8)]
    )[order]
    decile_all = np.concatenate([decile, np.zeros(organizations, np.int8)])[order]
    area = area[order].astype(np.int8)
    propensity = rng.gamma(pop.propensity_shape, 1 / pop.propensity_shape, size=len(order))
    person_codes = ric.generate(
        rng, persons, born_from=dt.date(1950, 1, 1), born_to=dt.date(2006, 12, 31)
    )
    org_codes = uscc.generate(rng, organizations)
    codes = pa.array(person_codes + org_codes, pa.string()).take(pa.array(order))
    sort = pc.sort_indices(codes)
    rank = np.empty(len(order), dtype=np.int32)
    rank[np.asarray(sort)] = np.arange(len(order), dtype=np.int32)
    return Population(
        codes=codes,
        kind=kind,
        decile=decile_all,
        area=area,
        propensity=propensity,
        bounds=np.searchsorted(group, np.arange(N_GROUPS + 1)).astype(np.int64),
        cum_propensity=np.concatenate([[0.0], np.cumsum(propensity)]),
        sorted_codes=codes.take(sort),
        rank=rank,
        persons=persons,
        organizations=organizations,
    )

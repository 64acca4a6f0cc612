"""The synthetic population of a world: compact columns, one row per agent.

Agents are kept ordered by *group* (kind, area, income decile), so that a group is a
contiguous range of rows. That makes drawing a week's events cost in proportion to the
events: a Poisson count per group, then agents within the group by a binary search in the
cumulative propensity (or uniformly). Codes are valid synthetic codes
(:mod:`socialcredit.ids`), drawn at random, so their order is unrelated to the groups.

When the world has ``networks``, the persons (rows ``0:persons``, the first groups) also
have households and friends (:mod:`socialcredit.lab.networks`), drawn from the same
generator after everything else, so a world with networks has the same agents as without.
A household never crosses a group (its members share an area and an income decile);
friendships join persons of the partition, a share ``friends_homophily`` of them within the
person's area.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.ids import ric, uscc
from socialcredit.lab.networks import Friends, Households, friends, households
from socialcredit.lab.world import DECILES, Networks, World
from socialcredit.records import SUBJECTS_SCHEMA

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PERSON, ORGANIZATION = 0, 1
URBAN, RURAL = 0, 1
_BLOCK = 64
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
    """Agents in group order: columns and group bounds. Codes are drawn when first asked
    for (from their own seed), so a population that never writes a ledger never holds
    them as strings."""

    kind: npt.NDArray[np.int8]  # PERSON or ORGANIZATION
    decile: npt.NDArray[np.int8]  # 1..10 for persons, 0 for organizations
    area: npt.NDArray[np.int8]  # URBAN or RURAL
    propensity: F64  # gamma, mean 1
    bounds: I64  # [N_GROUPS + 1]: rows of group g are bounds[g]:bounds[g + 1]
    cum_propensity: F64  # [n + 1]: cumulative propensity, cum[0] = 0
    persons: int
    organizations: int
    order: I64  # per agent: its draw (persons first, then organizations)
    code_seed: int
    regions: tuple[str, ...] | None  # synthetic regions of the codes (None: all)
    homes: Households | None = None  # households of the persons (rows 0:persons)
    friends: Friends | None = None  # friendships among the persons

    @property
    def has_networks(self) -> bool:
        """Whether the persons have households and friends."""
        return self.homes is not None

    @property
    def person_codes(self) -> pa.Array:
        """The codes of the persons (rows ``0:persons``), in row order."""
        return self.codes.slice(0, self.persons)

    @property
    def size(self) -> int:
        """How many agents."""
        return len(self.kind)

    @cached_property
    def codes(self) -> pa.Array:
        """Per agent: its code (string), a valid synthetic resident number or USCC."""
        rng = np.random.default_rng(self.code_seed)
        regions = list(self.regions) if self.regions is not None else None
        person_codes = ric.generate(
            rng,
            self.persons,
            born_from=dt.date(1950, 1, 1),
            born_to=dt.date(2006, 12, 31),
            regions=regions,
        )
        org_codes = uscc.generate(rng, self.organizations, regions=regions)
        return pa.array(person_codes + org_codes, pa.string()).take(pa.array(self.order))

    @cached_property
    def _code_sort(self) -> pa.Array:
        return pc.sort_indices(self.codes)

    @property
    def sorted_codes(self) -> pa.Array:
        """Every code, in byte order."""
        return self.codes.take(self._code_sort)

    @cached_property
    def rank(self) -> npt.NDArray[np.int32]:
        """Per agent: the position of its code in :attr:`sorted_codes`."""
        rank = np.empty(self.size, dtype=np.int32)
        rank[np.asarray(self._code_sort)] = np.arange(self.size, dtype=np.int32)
        return rank

    @property
    def subjects(self) -> pa.Table:
        """The canonical subjects table, in code order."""
        kinds = pa.array(["person", "organization"], pa.string()).take(
            pa.array(self.kind[np.asarray(self._code_sort)].astype(np.int32))
        )
        return pa.Table.from_arrays([self.sorted_codes, kinds], schema=SUBJECTS_SCHEMA)

    @property
    def agent_subjects(self) -> pa.Table:
        """The canonical subjects table in agent order (no sort: for writing out)."""
        kinds = pa.array(["person", "organization"], pa.string()).take(
            pa.array(self.kind.astype(np.int32))
        )
        return pa.Table.from_arrays([self.codes, kinds], schema=SUBJECTS_SCHEMA)

    @cached_property
    def group(self) -> npt.NDArray[np.int8]:
        """Per agent: its group."""
        out: npt.NDArray[np.int8] = np.repeat(
            np.arange(N_GROUPS, dtype=np.int8), np.diff(self.bounds)
        )
        return out

    @cached_property
    def _coarse(self) -> F64:
        """Every ``_BLOCK``-th entry of the cumulative propensity (small: stays in cache)."""
        out: F64 = self.cum_propensity[::_BLOCK].copy()
        return out

    def at_propensity(self, target: F64) -> I64:
        """For each value of the cumulative propensity, the agent whose share of it holds
        the value: the largest ``j`` with ``cum_propensity[j] <= value`` (as
        ``searchsorted(cum, value, "right") - 1``, in two levels: a search in every
        ``_BLOCK``-th entry, then a few steps within the block, which reads less memory)."""
        cum = self.cum_propensity
        pos: I64 = (np.searchsorted(self._coarse, target, side="right") - 1).astype(np.int64)
        pos *= _BLOCK
        last = len(cum) - 1
        step = _BLOCK // 2
        while step:
            candidate = np.minimum(pos + step, last)
            pos = np.where(cum[candidate] <= target, candidate, pos)
            step //= 2
        return pos

    def group_size(self, g: int) -> int:
        """How many agents in group ``g``."""
        return int(self.bounds[g + 1] - self.bounds[g])

    def group_propensity(self) -> F64:
        """The sum of propensity in each group."""
        total: F64 = self.cum_propensity[self.bounds[1:]] - self.cum_propensity[self.bounds[:-1]]
        return total


def build_population(
    world: World,
    persons: int,
    organizations: int,
    rng: np.random.Generator,
    *,
    regions: Sequence[str] | None = None,
) -> Population:
    """Draw the agents of a world; their codes come from ``regions`` (default: every
    synthetic region), so populations drawn from disjoint regions never share a code."""
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
    ).astype(np.int8)
    order = np.argsort(group, kind="stable")  # a radix sort, on 8 bits
    group = group[order]
    kind = np.concatenate(
        [np.full(persons, PERSON, np.int8), np.full(organizations, ORGANIZATION, np.int8)]
    )[order]
    decile_all = np.concatenate([decile, np.zeros(organizations, np.int8)])[order]
    area = area[order].astype(np.int8)
    propensity = rng.gamma(pop.propensity_shape, 1 / pop.propensity_shape, size=len(order))
    code_seed = int(rng.integers(2**63))
    bounds = np.searchsorted(group, np.arange(N_GROUPS + 1)).astype(np.int64)
    homes, graph = (
        draw_networks(world.networks, rng, persons, bounds)
        if world.networks is not None
        else (None, None)
    )
    return Population(
        kind=kind,
        decile=decile_all,
        area=area,
        propensity=propensity,
        bounds=bounds,
        cum_propensity=np.concatenate([[0.0], np.cumsum(propensity)]),
        persons=persons,
        organizations=organizations,
        order=order.astype(np.int64),
        code_seed=code_seed,
        regions=tuple(regions) if regions is not None else None,
        homes=homes,
        friends=graph,
    )


def draw_networks(
    networks: Networks, rng: np.random.Generator, persons: int, bounds: I64
) -> tuple[Households, Friends]:
    """Households (never across a group of persons) and friends (a share within the
    person's area) of the persons, rows ``0:persons``."""
    homes = households(
        rng,
        persons,
        mean_size=networks.household_size_mean,
        max_size=networks.household_size_max,
        blocks=bounds[1 : 2 * DECILES],
    )
    graph = friends(
        rng,
        persons,
        mean_degree=networks.friends_mean_degree,
        homophily=networks.friends_homophily,
        blocks=bounds[DECILES : DECILES + 1],
    )
    return homes, graph

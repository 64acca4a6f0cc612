"""The same simple scheme in Mesa and in the lab, side by side in one run.

    python benchmarks/bench_mesa.py                    # doubling until Mesa needs 5 minutes
    python benchmarks/bench_mesa.py --start 50000 --limit 10   # a quick look

The scheme: persons only; each week a person commits a Poisson number of misconducts of
mean ``rate * 7/365`` (as the lab draws them); every record costs 10 points off a base of
100 while it is younger than 364 days (52 weeks); a person whose score is below 80 (three
records or more) is on the black list. No detection gap, no false records, no deterrence,
no donations.

- **Mesa** (the installed version): an ``Agent`` subclass whose ``step`` draws the week's
  conduct (inverting the Poisson distribution with the agent's seeded ``random``), keeps
  its record weeks in a deque, and computes its score and whether it is listed; the model
  calls ``agents.shuffle_do("step")`` each week and a ``DataCollector`` counts the listed:
  the usual idioms of Mesa 3.
- **The lab**: a world file and a scheme file written by this script to a temporary folder,
  loaded and run with ``socialcredit.lab.simulate`` (the same kernel as ``socialcredit
  score``, with every weekly metric of docs/lab.md computed, as in a real run).

Mesa is run at 1,000, 2,000, 4,000, ... persons; the doubling stops when the next size would
pass the limit (``--limit``, 300 s) on a linear extrapolation of the last run. The lab is
then run at the largest size Mesa finished within the limit, in the same process. The table
gives agent-steps per second (persons * weeks / seconds) for both and their ratio, and the
listed shares at the end with a two-proportion z statistic (similar shares: |z| < 3).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import mesa
import numpy as np

from socialcredit.lab.simulate import make_settings, simulate
from socialcredit.lab.world import load_world
from socialcredit.scheme import load

BASE, POINTS, THRESHOLD, WINDOW_WEEKS = 100, -10, 80, 52
RATE = 1.5  # misconduct per person per year

WORLD = f"""\
world: bench
title: The world of benchmarks/bench_mesa.py
start: 2025-01-06
population:
  persons: 1000
  organizations: 0
  urban_share: 0.5
  propensity_shape: 1000000     # everyone alike: the same weekly probability
behaviour:
  - type: traffic.violation
    category: traffic
    rate: {RATE}
detection:
  coverage: {{traffic: 1.0}}
  delay_days: 0
  false_record_rate: 0
"""

SCHEME = f"""\
scheme: bench_points
title: Points off per record, a black list below {THRESHOLD}
subjects: [person]
notice_days: 0
appeal_days: 30
records:
  traffic.violation: {{category: traffic, adverse: true}}
score: {{base: {BASE}}}
rules:
  - {{id: violations, types: [traffic.violation], window_days: {7 * WINDOW_WEEKS},
     measure: count, points: {POINTS}}}
grades:
  - {{grade: ok, min: {THRESHOLD}}}
  - {{grade: low}}
lists:
  - id: low_score
    kind: black
    when: {{score_below: {THRESHOLD}}}
"""


class Person(mesa.Agent):
    """A person: draws its conduct each week and keeps its own points score."""

    def __init__(self, model: TownModel) -> None:
        super().__init__(model)
        self.records: deque[int] = deque()
        self.score = BASE
        self.listed = False

    def step(self) -> None:
        model: TownModel = self.model  # type: ignore[assignment]
        week = model.week
        # the week's misconduct: a Poisson count by inversion (almost always 0 at once)
        u, k, p = self.random.random(), 0, model.p_none
        cdf = p
        while u > cdf:
            k += 1
            p *= model.rate / k
            cdf += p
            self.records.append(week)
        while self.records and self.records[0] <= week - WINDOW_WEEKS:
            self.records.popleft()
        self.score = BASE + POINTS * len(self.records)
        self.listed = self.score < THRESHOLD


class TownModel(mesa.Model):
    """Persons with the same weekly probability of misconduct; one step is one week."""

    def __init__(self, persons: int, seed: int) -> None:
        super().__init__(rng=seed)
        self.week = 0
        self.rate = RATE * 7 / 365  # expected misconduct per person per week
        self.p_none = math.exp(-self.rate)
        Person.create_agents(self, persons)
        self.datacollector = mesa.DataCollector(
            model_reporters={"listed": lambda m: sum(1 for a in m.agents if a.listed)}
        )

    def step(self) -> None:
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)
        self.week += 1


def run_mesa(persons: int, weeks: int, seed: int) -> tuple[float, int]:
    """Seconds for ``weeks`` steps (building the agents included) and the listed at the end."""
    started = time.perf_counter()
    model = TownModel(persons, seed)
    for _ in range(weeks):
        model.step()
    elapsed = time.perf_counter() - started
    listed = int(model.datacollector.get_model_vars_dataframe()["listed"].iloc[-1])
    return elapsed, listed


def run_lab(folder: Path, persons: int, seed: int) -> tuple[float, int]:
    """Seconds for one year of the lab (population and metrics included), listed at the end."""
    world_file, scheme_file = folder / "bench.yaml", folder / "bench_points.yaml"
    world_file.write_text(WORLD, encoding="utf-8")
    scheme_file.write_text(SCHEME, encoding="utf-8")
    world, scheme = load_world(str(world_file)), load(str(scheme_file))
    started = time.perf_counter()
    settings = make_settings(world, population=persons, years=1, seed=seed)
    run = simulate(settings, scheme, keep_ledger=False)
    elapsed = time.perf_counter() - started
    return elapsed, run.states.list_sizes().get("low_score", 0)


def z_two_proportions(a: int, b: int, n: int) -> float:
    """z statistic of the difference of two shares a/n and b/n."""
    pooled = (a + b) / (2 * n)
    se = math.sqrt(max(pooled * (1 - pooled) * 2 / n, 1e-300))
    return (a - b) / n / se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=1000, help="first Mesa population")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds a Mesa run may take")
    parser.add_argument("--weeks", type=int, default=52, help="weekly steps (the lab: 52)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.weeks != 52:
        parser.error("the lab runs whole years: --weeks must be 52")
    weeks = args.weeks

    print(
        f"# Lab vs Mesa {mesa.__version__}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.machine()}",
        flush=True,
    )
    persons, done = args.start, None
    while True:
        seconds, listed = run_mesa(persons, weeks, args.seed)
        rate = persons * weeks / seconds
        print(
            f"mesa  {persons:>11,} persons  {seconds:8.1f} s  {rate:12,.0f} agent-steps/s  "
            f"listed {listed / persons:.4f}",
            flush=True,
        )
        if seconds <= args.limit:
            done = (persons, seconds, listed)
        if seconds > args.limit or 2 * seconds > args.limit:
            break
        persons *= 2
    if done is None:
        sys.exit(f"Mesa did not finish {args.start:,} persons within {args.limit:.0f} s")
    persons, mesa_s, mesa_listed = done
    with tempfile.TemporaryDirectory() as tmp:
        lab_s, lab_listed = run_lab(Path(tmp), persons, args.seed)
    mesa_rate, lab_rate = persons * weeks / mesa_s, persons * weeks / lab_s
    z = z_two_proportions(lab_listed, mesa_listed, persons)
    print(
        f"lab   {persons:>11,} persons  {lab_s:8.1f} s  {lab_rate:12,.0f} agent-steps/s  "
        f"listed {lab_listed / persons:.4f}",
        flush=True,
    )
    print()
    print("| measure | Mesa | lab |")
    print("|---|---|---|")
    print(
        f"| population (largest Mesa finishes in {args.limit:.0f} s, by doubling) "
        f"| {persons:,} | {persons:,} |"
    )
    print(f"| weekly steps | {weeks} | {weeks} |")
    print(f"| time | {mesa_s:.1f} s | {lab_s:.1f} s |")
    print(f"| agent-steps/s | {mesa_rate:,.0f} | {lab_rate:,.0f} |")
    print(f"| lab / Mesa | | {lab_rate / mesa_rate:.1f}x |")
    print(f"| listed at the end | {mesa_listed / persons:.4f} | {lab_listed / persons:.4f} |")
    verdict = "similar" if abs(z) < 3 else "DIFFERENT"
    print(f"| listed shares, two-proportion z | | {z:+.2f} ({verdict}) |")


if __name__ == "__main__":
    main()

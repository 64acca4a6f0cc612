"""``socialcredit simulate``: run schemes on a synthetic world and write a lab report."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from socialcredit.cli.app import app, domain_errors, err
from socialcredit.lab.population import build_population
from socialcredit.lab.report import CRITICAL_NOTE, metrics_paths, write_outputs
from socialcredit.lab.simulate import Run, make_settings, simulate
from socialcredit.lab.world import load_world
from socialcredit.scheme import load


@app.command("simulate")
@domain_errors
def simulate_cmd(
    scheme: Annotated[
        list[str],
        typer.Option(
            "--scheme", "-s", help="A scheme file or preset name; repeat to compare schemes."
        ),
    ],
    world: Annotated[str, typer.Option(help="A world file or shipped world name.")] = "town",
    population: Annotated[
        int | None,
        typer.Option(help="Persons (default: the world's); organizations scale with them.", min=1),
    ] = None,
    years: Annotated[int, typer.Option(help="Years of weekly steps.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same run.")] = 7,
    report: Annotated[
        Path, typer.Option(help="The HTML report to write; the metrics go next to it.")
    ] = Path("lab-report.html"),
) -> None:
    """Simulate schemes on a synthetic world and write one self-contained HTML report."""
    run_lab(scheme, world, population, years, seed, report)


def run_lab(
    scheme: list[str], world: str, population: int | None, years: int, seed: int, report: Path
) -> list[Run]:
    """Simulate schemes on a world with a progress bar, write the report and its metrics."""
    loaded_world = load_world(world)
    schemes = [load(s) for s in scheme]
    settings = make_settings(loaded_world, population=population, years=years, seed=seed)
    command = shlex.join(
        ["socialcredit", "simulate"]
        + [w for s in scheme for w in ("--scheme", s)]
        + ["--world", world, "--population", str(settings.persons), "--years", str(years)]
        + ["--seed", str(seed), "--report", str(report)]
    )
    started = time.perf_counter()
    runs: list[Run] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("drawing the population", total=None)
        pop = build_population(
            loaded_world.world,
            settings.persons,
            settings.organizations,
            np.random.default_rng([seed, 0]),
        )
        progress.update(task, total=1, completed=1)
        for loaded in schemes:
            name = loaded.scheme.scheme
            task = progress.add_task(f"{name}: weeks", total=settings.weeks)

            def advance(_week: int, task: TaskID = task) -> None:
                progress.advance(task)

            run = simulate(settings, loaded, population=pop, on_week=advance)
            runs.append(run)
    for run in runs:
        if run.critical:
            err.print(f"note: {run.scheme.scheme.scheme}: {CRITICAL_NOTE}", markup=False)
    write_outputs(report, settings, runs, command)
    csv_path, parquet_path = metrics_paths(report)
    err.print(
        f"wrote {report} and its metrics ({csv_path.name}, {parquet_path.name}) in "
        f"{time.perf_counter() - started:.1f} s; seed {seed}",
        markup=False,
    )
    return runs

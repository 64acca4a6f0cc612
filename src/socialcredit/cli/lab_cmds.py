"""``socialcredit simulate``: run schemes on a synthetic world and write a lab report."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from socialcredit.cli.app import app, domain_errors, err
from socialcredit.engine import Engine
from socialcredit.lab.export import LedgerWriter
from socialcredit.lab.report import CRITICAL_NOTE, metrics_paths, write_outputs
from socialcredit.lab.resources import (
    RunTooLarge,
    available_disk,
    available_memory,
    check,
    estimate,
)
from socialcredit.lab.simulate import PARTITION_PERSONS, Run, make_settings, simulate_all
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
    ledger: Annotated[
        Path | None,
        typer.Option(help="A new folder to write each scheme's ledger to, as Parquet."),
    ] = None,
    partition_size: Annotated[
        int,
        typer.Option(
            help="Persons simulated at a time; part of the run (same size, same run).", min=1
        ),
    ] = PARTITION_PERSONS,
    workers: Annotated[
        int, typer.Option(help="Processes simulating partitions at once.", min=1)
    ] = 1,
) -> None:
    """Simulate schemes on a synthetic world and write one self-contained HTML report."""
    run_lab(
        scheme,
        world,
        population,
        years,
        seed,
        report,
        ledger=ledger,
        partition_size=partition_size,
        workers=workers,
    )


def run_lab(
    scheme: list[str],
    world: str,
    population: int | None,
    years: int,
    seed: int,
    report: Path,
    *,
    ledger: Path | None = None,
    partition_size: int = PARTITION_PERSONS,
    workers: int = 1,
) -> list[Run]:
    """Simulate schemes on a world with a progress bar, write the report and its metrics.

    The run is refused before it starts when it would not fit in the memory or the disk
    available (:mod:`socialcredit.lab.resources`)."""
    loaded_world = load_world(world)
    schemes = [load(s) for s in scheme]
    try:
        settings = make_settings(
            loaded_world,
            population=population,
            years=years,
            seed=seed,
            partition_size=partition_size,
        )
    except ValueError as exc:
        raise RunTooLarge(str(exc)) from None
    needs = estimate(
        loaded_world.world,
        settings.partition(0),
        settings.n_partitions,
        years,
        len(schemes),
        workers=workers,
        ledger=ledger is not None,
        rating_schemes=sum(Engine(s.scheme).uses_ratings for s in schemes),
    )
    check(
        needs,
        memory=available_memory(),
        disk=available_disk(ledger) if ledger is not None else None,
        where=ledger,
    )
    writer = LedgerWriter(ledger) if ledger is not None else None
    words = ["socialcredit", "simulate"] + [w for s in scheme for w in ("--scheme", s)]
    words += ["--world", world, "--population", str(settings.persons), "--years", str(years)]
    words += ["--seed", str(seed), "--report", str(report)]
    if partition_size != PARTITION_PERSONS:
        words += ["--partition-size", str(partition_size)]
    if ledger is not None:
        words += ["--ledger", str(ledger)]
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        what = ", ".join(s.scheme.scheme for s in schemes)
        parts = settings.n_partitions
        label = f"{what}: weeks" + (f" of {parts:,} partitions" if parts > 1 else "")
        task = progress.add_task(label, total=settings.weeks * len(schemes) * parts)

        def advance(steps: int) -> None:
            progress.advance(task, steps)

        if writer is not None:
            writer.start()
        try:
            runs = simulate_all(
                settings, schemes, on_step=advance, ledger_sink=writer, workers=workers
            )
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    if writer is not None:
        writer.commit()
    for run in runs:
        if run.critical:
            err.print(f"note: {run.scheme.scheme.scheme}: {CRITICAL_NOTE}", markup=False)
    write_outputs(report, settings, runs, shlex.join(words))
    csv_path, parquet_path = metrics_paths(report)
    written = f"; ledger in {ledger}" if ledger is not None else ""
    err.print(
        f"wrote {report} and its metrics ({csv_path.name}, {parquet_path.name}) in "
        f"{time.perf_counter() - started:.1f} s; seed {seed}{written}",
        markup=False,
    )
    return runs

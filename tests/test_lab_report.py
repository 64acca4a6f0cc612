"""The lab report's figures, on small worlds where the answer is known.

tests/test_lab.py checks the command end to end (files written, no remote reference, the
critical banner); here: what the report says, that it says it from the metrics table, that
the same seed gives the same bytes, that metrics it does not know still appear, and that an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from html import escape, unescape
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from socialcredit.lab import report as report_module
from socialcredit.lab.metrics import MetricsTable, summary
from socialcredit.lab.report import (
    concentration_index,
    metrics_paths,
    render,
    write_outputs,
)
from socialcredit.lab.simulate import Run, Settings, make_settings, simulate
from socialcredit.lab.svg import COLOURS, bar_chart, contrast, line_chart
from socialcredit.lab.world import LoadedWorld, load_world, parse_world
from socialcredit.scheme import load

TOWN = load_world("town")
COMMAND = "socialcredit simulate --test"


def world_with(**changes: str) -> LoadedWorld:
    """The town with some of its text replaced (old -> new)."""
    text = TOWN.text
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    world, places = parse_world(text, "test.yaml")
    return LoadedWorld(world, places, "test.yaml", text)


def settings_for(world: LoadedWorld = TOWN, persons: int = 800, seed: int = 3) -> Settings:
    return make_settings(world, population=persons, years=1, seed=seed)


def runs_of(settings: Settings, *schemes: str) -> list[Run]:
    return [simulate(settings, load(s)) for s in schemes]


def section(html: str, anchor: str) -> str:
    """The HTML of one section of the report."""
    found = re.search(rf'<section id="{anchor}".*?</section>', html, re.S)
    assert found, anchor
    return found.group(0)


def column(html: str, anchor: str, scheme: str) -> str:
    """One scheme's column of a section."""
    parts = section(html, anchor).split('<div class="col"')[1:]
    for part in parts:
        if f"<h3>{scheme}</h3>" in part:
            return part
    raise AssertionError(f"no column {scheme} in {anchor}")


def value(cell: str, label: str) -> str:
    """The value next to a label in a two-column table of a cell."""
    found = re.search(rf"<td>{re.escape(escape(label))}</td><td>([^<]*)</td>", cell)
    assert found, label
    return found.group(1)


@pytest.fixture(scope="module")
def pair() -> tuple[Settings, list[Run], str]:
    settings = settings_for()
    runs = runs_of(settings, "rongcheng", "court_dishonest_debtors")
    return settings, runs, render(settings, runs, COMMAND)


# -- the seed, the parameters, reproducibility ------------------------------------------------


def test_same_seed_same_bytes_and_another_seed_other_bytes(
    pair: tuple[Settings, list[Run], str],
) -> None:
    settings, _, html = pair
    again = runs_of(settings_for(), "rongcheng", "court_dishonest_debtors")
    assert render(settings, again, COMMAND) == html
    other = settings_for(seed=4)
    assert render(other, runs_of(other, "rongcheng", "court_dishonest_debtors"), COMMAND) != html


def test_report_states_the_seed_and_every_parameter(
    pair: tuple[Settings, list[Run], str],
) -> None:
    settings, runs, html = pair
    params = section(html, "parameters")
    data = re.search(r'<script type="application/json" id="parameters-json">(.*?)</script>', html)
    assert data and json.loads(data.group(1)) == settings.parameters()
    assert "Seed <b>3</b>" in params
    for key, val in settings.parameters().items():
        assert f"<tr><td>{key}</td><td><code>{escape(str(val))}</code></td></tr>" in params
    assert escape(COMMAND) in params
    files = [unescape(f) for f in re.findall(r"<pre>(.*?)</pre>", params, re.S)]
    assert settings.world.text in files  # every parameter of the world
    for run in runs:
        assert run.scheme.text in files  # and of each scheme
    assert "http://" not in params and "https://" not in params  # quoted, not linked


# -- a column per scheme, and what each says ------------------------------------------------


def test_a_column_per_scheme_in_every_section(pair: tuple[Settings, list[Run], str]) -> None:
    _, _, html = pair
    anchors = re.findall(r'<section id="([a-z]+)"', html)
    assert anchors[:2] == ["audit", "numbers"] and anchors[-1] == "parameters"
    for anchor in anchors:
        if anchor in ("numbers", "parameters", "network"):
            continue
        cols = re.findall(
            r'<div class="col" role="group" aria-label="([^"]+)">', section(html, anchor)
        )
        assert cols == ["rongcheng", "court_dishonest_debtors"], anchor
    head = re.search(r"<thead>(.*?)</thead>", section(html, "numbers"))
    assert head and "rongcheng" in head.group(1) and "court_dishonest_debtors" in head.group(1)


def test_schemes_without_lists_show_no_list_plots_but_say_so() -> None:
    settings = settings_for()
    html = render(settings, runs_of(settings, "sesame", "fcra_bureau"), COMMAND)
    lists = section(html, "lists")
    assert "None of the schemes keeps a list" in lists and "<svg" not in lists
    assert "subjects on each list" not in html
    for scheme in ("sesame", "fcra_bureau"):
        assert "has no black list: nobody is listed" in column(html, "wrongful", scheme)


def test_a_scheme_without_lists_beside_one_with_lists() -> None:
    settings = settings_for()
    html = render(settings, runs_of(settings, "sesame", "court_dishonest_debtors"), COMMAND)
    assert "This scheme keeps no lists." in column(html, "lists", "sesame")
    court = column(html, "lists", "court_dishonest_debtors")
    assert "subjects on each list" in court and "keeps no lists" not in court


def test_no_donations_show_no_points_bought_back() -> None:
    data = yaml.safe_load(TOWN.text)
    del data["redemption"]
    text = yaml.safe_dump(data)
    world = LoadedWorld(*parse_world(text, "test.yaml"), "test.yaml", text)
    assert world.world.redemption is None
    settings = settings_for(world)
    runs = runs_of(settings, "rongcheng")
    assert set(summary(runs[0].metrics, "donated_per_person").values()) == {0.0}
    cell = column(render(settings, runs, COMMAND), "donations", "rongcheng")
    assert "No donations were recorded: no points were bought back." in cell
    assert "<svg" not in cell


def test_donations_are_shown_by_decile_with_the_rules_that_read_them(
    pair: tuple[Settings, list[Run], str],
) -> None:
    _, runs, html = pair
    cell = column(html, "donations", "rongcheng")
    assert "Rules that read donations (<code>charity.donation</code>): donations" in cell
    per = summary(runs[0].metrics, "donated_per_person")
    assert per["decile_10"] > 0
    assert f"10: {per['decile_10']:,.0f}" in cell or f"10: {per['decile_10']:.3g}" in cell
    assert "No rule of this scheme reads donations" in column(
        html, "donations", "court_dishonest_debtors"
    )


def test_zero_false_record_rate_reports_no_wrongful_listing() -> None:
    settings = settings_for(world_with(**{"  false_record_rate: 0.02": "  false_record_rate: 0"}))
    html = render(settings, runs_of(settings, "court_dishonest_debtors"), COMMAND)
    cell = column(html, "wrongful", "court_dishonest_debtors")
    assert value(cell, "false records written") == "0"
    assert value(cell, "people listed on false records") == "0"
    assert value(cell, "person-weeks listed on false records") == "0"


def test_wrongful_listing_figures_come_from_the_metrics_table() -> None:
    settings = settings_for(world_with(**{"  false_record_rate: 0.02": "  false_record_rate: 0.5"}))
    runs = runs_of(settings, "court_dishonest_debtors")
    html = render(settings, runs, COMMAND)
    m = runs[0].metrics
    people = summary(m, "wrongfully_listed_subjects")[""]
    weeks = summary(m, "wrongful_person_weeks")[""]
    assert people > 0
    cell = column(html, "wrongful", "court_dishonest_debtors")
    assert value(cell, "people listed on false records") == f"{int(people):,}"
    assert value(cell, "person-weeks listed on false records") == f"{int(weeks):,}"
    mean = weeks / people
    assert value(cell, "mean weeks each") in (f"{mean:.3g}", f"{mean:,.1f}", f"{mean:,.0f}")


def test_who_bears_sanctions_from_the_metrics_table(pair: tuple[Settings, list[Run], str]) -> None:
    _, runs, html = pair
    borne = summary(runs[1].metrics, "sanctions_borne")
    cell = column(html, "sanctions", "court_dishonest_debtors")
    poorest = sum(borne[f"decile_{d:02d}"] for d in (1, 2, 3))
    assert value(cell, "share of sanctions borne by the poorest 30%") == f"{poorest:.1%}"
    assert value(cell, "share of sanctions borne: rural") == f"{borne['rural']:.1%}"
    # rongcheng lists nobody and denies nothing in a year of this town
    assert "Nobody was sanctioned" in column(html, "sanctions", "rongcheng")


CONCENTRATION = [
    ([1.0] + [0.0] * 9, -0.9),  # all borne by the poorest decile
    ([0.0] * 9 + [1.0], 0.9),  # all by the richest
    ([0.3] * 10, 0.0),  # evenly
    ([0.0] * 10, 0.0),  # nobody
    ([1.0] * 5 + [0.0] * 5, -0.5),  # the poorer half, evenly
]


@pytest.mark.parametrize(("rates", "expected"), CONCENTRATION)
def test_concentration_index(rates: list[float], expected: float) -> None:
    assert concentration_index(rates) == pytest.approx(expected)


# -- metrics the report does not know still appear -------------------------------------------


def with_rows(run: Run, rows: MetricsTable) -> Run:
    extra = rows.to_table()
    return dataclasses.replace(run, metrics=pa.concat_tables([run.metrics, extra]))


def test_new_metrics_appear_in_their_section_or_under_other_metrics(
    pair: tuple[Settings, list[Run], str],
) -> None:
    settings, runs, html = pair
    assert 'data-metric="network_exposure"' in section(html, "network")  # the town's networks
    assert '<section id="other"' not in html or "mystery_index" not in html
    rows = MetricsTable("court_dishonest_debtors", False)
    for week in range(3):
        rows.add("network_exposed", 10.0 * week, group="household", week=week, date="2025-01-05")
        rows.add("network_exposed", 5.0 * week, group="friend", week=week, date="2025-01-05")
    rows.add("mystery_index", 0.25, group="a")
    rows.add("mystery_index", 0.75, group="b")
    rows.add("wrongful_listing_weeks", 4.0, group="median")
    html = render(settings, [runs[0], with_rows(runs[1], rows)], COMMAND)
    network = column(html, "network", "court_dishonest_debtors")
    assert 'data-metric="network_exposed"' in network
    assert "household: from 0 to 20, largest 20" in network
    assert "friend: from 0 to 10" in network
    other = column(html, "other", "court_dishonest_debtors")
    assert 'data-metric="mystery_index"' in other
    assert "<td>a</td><td>0.25</td>" in other and "<td>b</td><td>0.75</td>" in other
    wrongful = column(html, "wrongful", "court_dishonest_debtors")
    assert 'data-metric="wrongful_listing_weeks"' in wrongful
    assert "<td>median</td><td>4</td>" in wrongful


# -- charts and accessibility ---------------------------------------------------------------


def test_bars_are_proportional_to_their_values() -> None:
    svg = bar_chart("t", ["a", "b", "c"], [1.0, 2.0, 0.0])
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.1) and heights[2] == 0
    assert 'aria-label="t. Bar chart. a: 1; b: 2; c: 0."' in svg


def test_a_line_chart_has_a_line_per_series_and_a_legend() -> None:
    svg = line_chart("t", {"x": [0.0, 1.0, 2.0], "y": [2.0, 1.0, 0.0]})
    assert svg.count("<polyline") == 2 and svg.count("<li>") == 2
    assert "x: from 0 to 2, largest 2; y: from 2 to 0, largest 2" in svg
    assert "no data" in line_chart("t", {})


def test_every_plot_colour_and_text_colour_is_readable_on_white() -> None:
    style = report_module._STYLE
    texts = set(re.findall(r"(?<![-a-z])color:(#[0-9a-f]{3,6})", style))
    full = {c if len(c) == 7 else "#" + "".join(ch * 2 for ch in c[1:]) for c in texts}
    for colour in [*COLOURS, *full]:
        assert contrast(colour, "#ffffff") >= 4.5, colour
    assert contrast("#660000", "#fde8e8") >= 4.5  # the critical banner


def test_every_chart_is_labelled_and_the_page_has_headings(
    pair: tuple[Settings, list[Run], str],
) -> None:
    _, _, html = pair
    charts = re.findall(r'<svg class="chart"[^>]*>', html)
    assert len(charts) > 10
    for chart in charts:
        assert 'role="img"' in chart and re.search(r'aria-label="[^"]{20,}"', chart)
    assert html.count("<h1>") == 1
    assert '<html lang="en">' in html


# -- an interrupted run leaves nothing half-written ---------------------------------------------


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def plain(chunks: list[str]) -> str:
    """What a terminal would show of these characters, without its control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(chunks))


def test_an_interrupted_run_writes_no_report(tmp_path: Path) -> None:
    # Ctrl-C (SIGINT) in the middle of a run far too long to finish first
    out = tmp_path / "out"
    command = [
        sys.executable, "-c", "from socialcredit.cli.app import main; main()",
        "simulate", "--scheme", "rongcheng", "--population", "2000000", "--years", "3",
        "--report", str(out / "report.html"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # the progress bar drawn live, as on a terminal, so that it shows the weeks under way
        env={**os.environ, "FORCE_COLOR": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"},
        # a shell may have started this one with SIGINT ignored; the child must hear it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")))
    reader.start()
    try:
        # interrupt once the progress bar shows the weekly steps under way
        deadline = time.monotonic() + 300
        while not re.search(r"weeks\D*[1-9]\d*/156", plain(seen)):
            assert proc.poll() is None, "".join(seen)
            assert time.monotonic() < deadline, "".join(seen)
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    stderr = plain(seen)
    assert proc.returncode == 130, stderr  # stopped by the interrupt, not finished or failed
    weeks = re.findall(r"weeks\D*(\d+)/156", stderr)[-1:]
    assert weeks and 0 < int(weeks[0]) < 156, stderr  # it was in the middle of the run
    assert files_in(out) == {}


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_an_interrupted_write_keeps_the_old_files_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]
) -> None:
    settings = settings_for(persons=300)
    report = tmp_path / "report.html"
    write_outputs(report, settings, runs_of(settings, "sesame"), COMMAND)
    before = files_in(tmp_path)
    assert set(before) == {"report.html", *(p.name for p in metrics_paths(report))}

    other = settings_for(persons=300, seed=9)
    runs = runs_of(other, "sesame")
    calls = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:  # while the report itself is written, after both metrics files
            raise interrupt("interrupted")
        real_fsync(fd)

    monkeypatch.setattr(report_module.os, "fsync", fsync)
    with pytest.raises(interrupt):
        write_outputs(report, other, runs, COMMAND)
    assert len(calls) == 3
    assert files_in(tmp_path) == before
    monkeypatch.undo()
    write_outputs(report, other, runs, COMMAND)
    after = files_in(tmp_path)
    assert set(after) == set(before) and after["report.html"] != before["report.html"]


def test_a_failure_while_rendering_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(persons=300)
    runs = runs_of(settings, "sesame")

    def broken(*args: object) -> str:
        raise RuntimeError("no report")

    monkeypatch.setattr(report_module, "render", broken)
    with pytest.raises(RuntimeError):
        write_outputs(tmp_path / "out" / "report.html", settings, runs, COMMAND)
    assert files_in(tmp_path / "out") == {}

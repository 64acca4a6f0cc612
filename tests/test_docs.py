"""The documentation is checked against the code, so that it cannot drift.

* every ``python`` block of docs/api.md runs, in order, in one namespace;
* every command of the CLI has a section in docs/cli.md that names each of its arguments,
  each of its option names and each default that is a value;
* the worked example of docs/cli.md runs: its files are written, its commands run, and
  what they print (standard error, then standard output) is what the page shows, and so
  is the excerpt of the demo's report;
* the links between docs/cli.md, scheme-language.md, api.md and design.md resolve, to a
  file and to a heading.
"""

from __future__ import annotations

import linecache
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ELLIPSIS = "…"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _app() -> typer.Typer:
    from socialcredit.cli.app import command_app

    return command_app()


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


# -- docs/api.md ---------------------------------------------------------------------


def test_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The python blocks of docs/api.md run, in order, in one namespace."""
    monkeypatch.chdir(tmp_path)
    blocks = _blocks((DOCS / "api.md").read_text(encoding="utf-8"), "python")
    assert len(blocks) >= 5, "docs/api.md has lost its examples"
    namespace: dict[str, Any] = {"__name__": "docs_api"}
    for i, block in enumerate(blocks, 1):
        name = f"docs/api.md, python block {i}"
        linecache.cache[name] = (len(block), None, block.splitlines(keepends=True), name)
        exec(compile(block, name, "exec"), namespace)


# -- docs/cli.md: every command and option ----------------------------------------------


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of a click group, with its path of names."""
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _sections(text: str) -> dict[str, str]:
    """The ``### socialcredit …`` sections of docs/cli.md, by command path."""
    out: dict[str, str] = {}
    parts = re.split(r"^### socialcredit (.+)$", text, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        out[name.strip()] = re.split(r"^##? ", body, maxsplit=1, flags=re.M)[0]
    return out


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _cli_tree() -> list[tuple[tuple[str, ...], Any]]:
    return list(_commands(typer.main.get_command(_app())))


def test_every_command_has_a_section() -> None:
    sections = _sections((DOCS / "cli.md").read_text(encoding="utf-8"))
    commands = {" ".join(path) for path, _ in _cli_tree()}
    assert len(commands) >= 15
    missing = sorted(commands - set(sections))
    assert not missing, f"docs/cli.md has no '### socialcredit …' section for {missing}"
    unknown = sorted(set(sections) - commands)
    assert not unknown, f"docs/cli.md documents commands that do not exist: {unknown}"


@pytest.mark.parametrize(
    "path, command", _cli_tree(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_option_is_documented(path: tuple[str, ...], command: Any) -> None:
    section = _sections((DOCS / "cli.md").read_text(encoding="utf-8")).get(" ".join(path), "")
    assert section, f"no section for socialcredit {' '.join(path)}"
    missing = []
    for param in command.params:
        if param.param_type_name == "argument":
            if not _mentions(section, param.name.upper()):
                missing.append(param.name.upper())
            continue
        for name in [*param.opts, *param.secondary_opts]:
            if name != "--help" and not _mentions(section, name):
                missing.append(name)
        default = param.default
        shown = default is None or isinstance(default, bool) or param.required
        if not shown and not re.search(rf"`{re.escape(str(default))}`", section):
            missing.append(f"default `{default}` of {param.opts[0]}")
    assert not missing, f"socialcredit {' '.join(path)}: docs/cli.md does not document {missing}"


# -- docs/cli.md: the worked example ----------------------------------------------------


def _worked_example() -> str:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    start = text.index("\n## Worked example")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _files(section: str) -> dict[str, str]:
    """The files the example saves: each csv block, named by the last "as `NAME`" before it."""
    out = {}
    for match in re.finditer(r"^```csv\n(.*?)^```$", section, flags=re.S | re.M):
        names = re.findall(r"as `([\w.-]+)`", section[: match.start()])
        assert names, "a csv block of the worked example does not say which file it is"
        out[names[-1]] = match.group(1)
    return out


def _steps(section: str) -> list[tuple[str, list[str]]]:
    """The commands of the console blocks, each with the lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for block in _blocks(section, "console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command: {line!r}"
                steps[-1][1].append(line)
    return steps


def _shows(shown: list[str], actual: list[str]) -> bool:
    """Whether ``shown`` is ``actual``, or an excerpt of it where a line ``…`` stands for
    lines left out (none, one or many)."""
    shown = [line.rstrip() for line in shown]
    actual = [line.rstrip() for line in actual]
    chunks: list[list[str]] = [[]]
    for line in shown:
        if line == ELLIPSIS:
            chunks.append([])
        else:
            chunks[-1].append(line)
    if len(chunks) == 1:
        return shown == actual
    if actual[: len(chunks[0])] != chunks[0]:
        return False
    position = len(chunks[0])
    for chunk in chunks[1:-1]:
        for start in range(position, len(actual) - len(chunk) + 1):
            if actual[start : start + len(chunk)] == chunk:
                position = start + len(chunk)
                break
        else:
            return False
    last = chunks[-1]
    return len(actual) - position >= len(last) and actual[len(actual) - len(last) :] == last


def test_worked_example_prints_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = _worked_example()
    files = _files(section)
    assert {"subjects.csv", "records.csv"} <= set(files)
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOCIALCREDIT_LEDGER", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    app = _app()
    runner = CliRunner()
    steps = _steps(section)
    assert len(steps) >= 15
    status = 0
    for command, shown in steps:
        words = shlex.split(command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        if words == ["echo", "$?"]:
            assert shown == [str(status)], f"exit status after the previous command is {status}"
            continue
        assert words[0] == "socialcredit", f"the example runs only socialcredit: {command}"
        result = runner.invoke(app, words[1:], catch_exceptions=False)
        status = result.exit_code
        actual = _ANSI.sub("", result.stderr + result.stdout).splitlines()
        assert _shows(shown, actual), (
            f"docs/cli.md shows for '$ {command}':\n"
            + "\n".join(shown)
            + "\n\nbut it prints:\n"
            + "\n".join(actual)
        )


def test_demo_excerpt_is_what_the_demo_prints(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    section = _sections(text)["demo"]
    shown = re.search(
        r"An excerpt \(`COLUMNS=100 socialcredit demo`\):\n\n```text\n(.*?)^```$",
        section,
        flags=re.S | re.M,
    )
    assert shown, "docs/cli.md has lost the demo's excerpt"
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(tmp_path)  # the demo writes its lab report in the current folder
    result = CliRunner().invoke(_app(), ["demo"], catch_exceptions=False)
    assert result.exit_code == 0

    def tidy(lines: list[str]) -> list[str]:  # the ledger is in a new temporary folder
        return [re.sub(r"\S*socialcredit-demo-[^/\s]*/", "TMP/", line) for line in lines]

    actual = tidy(_ANSI.sub("", result.stdout).splitlines())
    assert _shows(tidy(shown.group(1).splitlines()), actual), "\n".join(actual)


# -- links between the documents ----------------------------------------------------------

OWN_DOCS = ("cli.md", "scheme-language.md", "api.md", "design.md")


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a markdown file's headings."""
    text = re.sub(r"^```.*?^```$", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("name", OWN_DOCS)
def test_links_between_documents_resolve(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        path = DOCS / file if file else DOCS / name
        if not path.is_file() or (anchor and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"docs/{name} links to missing files or headings: {broken}"

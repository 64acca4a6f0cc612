"""Load YAML keeping the place (line) of every value, so problems can name it.

PyYAML's composer gives a node tree with marks; this module turns it into plain Python
values and a map from document paths (``rules[2].cap``) to 1-based line numbers. Duplicate
keys, which PyYAML would silently overwrite, are reported as problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from socialcredit.errors import Problem


def format_path(loc: Sequence[str | int]) -> str:
    """Render a location tuple as ``rules[2].cap``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Places:
    """The line of each path in one loaded document."""

    source: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of ``loc``, or of its nearest ancestor that has one (0 if none)."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 0)

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A problem placed at ``loc``."""
        return Problem(self.source, self.line_of(loc), format_path(loc), message)


def load_yaml(text: str, source: str) -> tuple[Any, Places, list[Problem]]:
    """Parse ``text``; return the value, its places and any problems (syntax, duplicates)."""
    places = Places(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = getattr(exc, "problem", None) or str(exc)
        return None, places, [Problem(source, line, "", f"not valid YAML: {reason}")]
    if node is None:
        return None, places, [Problem(source, 1, "", "the file is empty")]
    problems: list[Problem] = []
    value = _convert(node, (), places, problems)
    return value, places, problems


def _convert(
    node: yaml.Node, loc: tuple[str | int, ...], places: Places, problems: list[Problem]
) -> Any:
    places.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            child = (*loc, key if isinstance(key, str | int) else str(key))
            if key in out:
                problems.append(
                    Problem(
                        places.source,
                        key_node.start_mark.line + 1,
                        format_path(child),
                        "duplicate key (an earlier line sets it already)",
                    )
                )
                continue
            places.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, places, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*loc, i)
            places.lines[child] = item.start_mark.line + 1
            items.append(_convert(item, child, places, problems))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return str(node.start_mark)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()

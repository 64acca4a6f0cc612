"""Load YAML keeping the place (line) of every value, so problems can name it.

PyYAML's composer gives a node tree with marks; this module turns it into plain Python
values and a map from document paths (``rules[2].cap``) to 1-based line numbers. Duplicate
keys, which PyYAML would silently overwrite, are reported as problems.

A value reached through an alias (``*name``) or a merge key (``<<: *name``) is placed on
the line where it is used; its problems also say the line where it is written. Whatever a
file holds, loading it ends in values or in problems, never in an exception: nesting deeper
than :data:`MAX_DEPTH` levels, aliases that expand to more than :data:`MAX_ALIAS_VALUES`
values (an "alias bomb" of a few hundred bytes can otherwise expand to billions), an alias
inside its own anchor, an unknown tag and a value its tag cannot read are all problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.constructor
import yaml.reader

from socialcredit.errors import Problem

MAX_DEPTH = 100
"""The deepest nesting of lists and mappings a file may have."""

MAX_ALIAS_VALUES = 100_000
"""The most values that aliases and merge keys may expand to in one file."""

_CORE = "tag:yaml.org,2002:"
_MERGE = _CORE + "merge"
_COLLECTION_TAGS = frozenset({_CORE + "seq", _CORE + "map"})
# What a value of each scalar tag must be, for the problem when it is not.
_SCALAR_KINDS = {
    _CORE + "null": "null",
    _CORE + "bool": "true or false",
    _CORE + "int": "a valid integer",
    _CORE + "float": "a valid number",
    _CORE + "str": "text",
    _CORE + "timestamp": "a valid date or time",
}
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels of lists and mappings)"
_TOO_DEEP_MERGES = f"merge keys (<<) chained too deeply (more than {MAX_DEPTH} levels)"
_TOO_MANY = f"aliases expand to more than {MAX_ALIAS_VALUES:,} values"
_BAD_MERGE = "a merge key (<<) takes a mapping or a list of mappings"


def escape_controls(text: str) -> str:
    """``text`` with every character that is not printable (newlines, terminal escapes,
    other control and format characters) written as its Python escape (``\\n``,
    ``\\x1b``), so text from a file cannot fake or restyle lines of output."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def format_path(loc: Sequence[str | int]) -> str:
    """Render a location tuple as ``rules[2].cap``; a key with characters that are not
    printable is shown quoted and escaped: ``records['a\\nb']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable():
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Places:
    """The line of each path in one loaded document.

    ``lines`` holds the line where each value is used; ``origins`` the line where a value
    reached through an alias or a merge key is written, when that is another line.
    """

    source: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    origins: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def _placed(self, loc: Sequence[str | int]) -> tuple[str | int, ...]:
        """``loc``, or its nearest ancestor that has a line (``()`` if none)."""
        key = tuple(loc)
        while key and key not in self.lines:
            key = key[:-1]
        return key

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of ``loc``, or of its nearest ancestor that has one (0 if none)."""
        return self.lines.get(self._placed(loc), 0)

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A problem placed at ``loc``; the message is shown with control characters
        escaped, and says where a value used through an alias is written."""
        key = self._placed(loc)
        message = escape_controls(message)
        origin = self.origins.get(key)
        if origin is not None:
            message += f" (written on line {origin}, used here through an alias)"
        return Problem(self.source, self.lines.get(key, 0), format_path(loc), message)


def load_yaml(text: str, source: str) -> tuple[Any, Places, list[Problem]]:
    """Parse ``text``; return the value, its places and any problems (syntax, duplicates,
    nesting, alias expansion, tags). The value is None when the document could not be
    read whole."""
    places = Places(source)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks that every character is allowed
        node = loader.get_single_node()
    except _TooDeep as exc:
        return None, places, [Problem(source, exc.line, "", _TOO_DEEP)]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        reason = f"the character U+{exc.character:04X} is not allowed"
        return None, places, [Problem(source, line, "", f"not valid YAML: {reason}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            reason = f"{context} (line {context_mark.line + 1}), {reason}"
        message = escape_controls(f"not valid YAML: {reason}")
        return None, places, [Problem(source, line, "", message)]
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None, places, [Problem(source, 1, "", "the file is empty")]
    problems: list[Problem] = []
    converter = _Converter(places, problems)
    try:
        places.lines[()] = _line(node)
        value = converter.convert(node, (), None)
    except _Stop as stop:
        return None, places, [*problems, stop.problem]
    return value, places, problems


# ---- composing ----------------------------------------------------------------------


class _Alias(yaml.Node):
    """An alias where it is used: ``value`` is the anchored node, the marks are the alias's."""

    def __init__(self, target: yaml.Node, event: Any) -> None:
        super().__init__(target.tag, target, event.start_mark, event.end_mark)
        self.anchor = str(event.anchor)


class _TooDeep(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(_TOO_DEEP)
        self.line = line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer, keeping aliases as :class:`_Alias` nodes (so their lines are
    known) and refusing nesting deeper than :data:`MAX_DEPTH` before it recurses."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.current_event  # the alias, which check_event has just read
            target = super().compose_node(parent, index)
            assert target is not None
            return _Alias(target, event)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.current_event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# ---- converting ---------------------------------------------------------------------


class _Stop(Exception):
    """The document cannot be read further; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class _Entry:
    """One key of a mapping, with ``via``, the line of the alias or merge key it comes
    through (None when it is written where it is used)."""

    key: yaml.Node
    value: yaml.Node
    via: int | None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _child(loc: tuple[str | int, ...], key: Any) -> tuple[str | int, ...]:
    """The path of a mapping's key (a key of another type, as text)."""
    return (*loc, key if isinstance(key, str | int) else str(key))


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _tag_problem(tag: str) -> str:
    if tag.startswith(_CORE):
        return f"the tag {_tag_name(tag)!r} is not supported"
    return f"unknown tag {_tag_name(tag)!r}"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


class _Converter:
    """Turns a composed node tree into Python values, recording the place of each."""

    def __init__(self, places: Places, problems: list[Problem]) -> None:
        self.places = places
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()
        self.scalars: dict[int, Any] = {}  # id of a scalar node -> its value
        self.active: set[int] = set()  # ids of the collections being converted
        self.expanded = 0

    def report(self, line: int, loc: tuple[str | int, ...], message: str) -> None:
        self.problems.append(
            Problem(self.places.source, line, format_path(loc), escape_controls(message))
        )

    def place(self, loc: tuple[str | int, ...], line: int, via: int | None) -> None:
        """Record the line of ``loc``; count it when it comes through an alias."""
        if via is None:
            self.places.lines[loc] = line
            return
        self.places.lines[loc] = via
        if line != via:
            self.places.origins[loc] = line
        self.count(via, loc)

    def count(self, line: int, loc: tuple[str | int, ...]) -> None:
        self.expanded += 1
        if self.expanded > MAX_ALIAS_VALUES:
            raise _Stop(Problem(self.places.source, line, format_path(loc), _TOO_MANY))

    def follow(
        self, node: yaml.Node, loc: tuple[str | int, ...], via: int | None
    ) -> tuple[yaml.Node | None, int | None]:
        """The node an alias stands for and the line it is used on (None when the alias
        is inside its own anchor, which is reported); other nodes are returned as they are."""
        if not isinstance(node, _Alias):
            return node, via
        use = via if via is not None else _line(node)
        target: yaml.Node = node.value
        if id(target) in self.active:
            self.report(
                use,
                loc,
                f"the alias *{node.anchor} contains itself "
                f"(it is inside its anchor &{node.anchor} of line {_line(target)})",
            )
            return None, use
        return target, use

    def convert(self, node: yaml.Node, loc: tuple[str | int, ...], via: int | None) -> Any:
        target, via = self.follow(node, loc, via)
        if target is None:
            return None
        if isinstance(target, yaml.ScalarNode):
            return self.scalar(target, loc, via)
        if len(loc) >= MAX_DEPTH:
            raise _Stop(
                Problem(self.places.source, via or _line(target), format_path(loc), _TOO_DEEP)
            )
        if target.tag not in _COLLECTION_TAGS:
            self.report(via or _line(target), loc, _tag_problem(target.tag))
        self.active.add(id(target))
        try:
            if isinstance(target, yaml.SequenceNode):
                return self.sequence(target, loc, via)
            assert isinstance(target, yaml.MappingNode)
            return self.mapping(target, loc, via)
        finally:
            self.active.discard(id(target))

    def scalar(self, node: yaml.ScalarNode, loc: tuple[str | int, ...], via: int | None) -> Any:
        if id(node) in self.scalars:
            return self.scalars[id(node)]
        value: Any = node.value
        kind = _SCALAR_KINDS.get(node.tag)
        if kind is None:
            self.report(via or _line(node), loc, _tag_problem(node.tag))
        else:
            try:
                value = self.constructor.construct_object(node)
            except (
                ArithmeticError,
                AttributeError,
                LookupError,
                TypeError,
                ValueError,
                yaml.YAMLError,
            ):
                self.report(via or _line(node), loc, f"{_shown(node.value)} is not {kind}")
        self.scalars[id(node)] = value
        return value

    def sequence(
        self, node: yaml.SequenceNode, loc: tuple[str | int, ...], via: int | None
    ) -> list[Any]:
        items = []
        for i, item in enumerate(node.value):
            child = (*loc, i)
            self.place(child, _line(item), via)
            items.append(self.convert(item, child, via))
        return items

    def key(self, entry: _Entry, loc: tuple[str | int, ...]) -> tuple[bool, Any]:
        """The key of an entry, or (False, None) when it is not a single value (reported)."""
        node, _ = self.follow(entry.key, loc, entry.via)
        if node is None:
            return False, None
        if not isinstance(node, yaml.ScalarNode):
            self.report(
                entry.via or _line(entry.key),
                loc,
                "a key must be a single value, not a list or mapping",
            )
            return False, None
        return True, self.scalar(node, loc, entry.via)

    def mapping(
        self, node: yaml.MappingNode, loc: tuple[str | int, ...], via: int | None
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, entry in self.entries(node, loc, via, 0):
            child = _child(loc, key)
            self.place(child, _line(entry.key), entry.via)
            out[key] = self.convert(entry.value, child, entry.via)
        return out

    def entries(
        self, node: yaml.MappingNode, loc: tuple[str | int, ...], via: int | None, depth: int
    ) -> list[tuple[Any, _Entry]]:
        """The keys of a mapping, its merge keys (``<<``) expanded, each with the entry that
        sets it. As YAML defines merge keys, a key written in the mapping wins over a merged
        one, and a mapping listed earlier over one listed later; the keys come in the order
        they first occur, merged ones first (as PyYAML orders them)."""
        if depth > MAX_DEPTH:
            raise _Stop(
                Problem(self.places.source, via or _line(node), format_path(loc), _TOO_DEEP_MERGES)
            )
        merged: dict[Any, _Entry] = {}
        own: dict[Any, _Entry] = {}
        self.active.add(id(node))
        try:
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE:
                    line = via or _line(key_node)
                    for source, source_via in self.merge_sources(value_node, loc, via, line):
                        for key, entry in self.entries(source, loc, source_via, depth + 1):
                            self.count(line, loc)
                            merged.setdefault(key, entry)
                    continue
                entry = _Entry(key_node, value_node, via)
                ok, key = self.key(entry, loc)
                if not ok:
                    continue
                if key in own:
                    # reported once, where the mapping is written, not at each alias of it
                    if via is None:
                        self.report(
                            _line(key_node),
                            _child(loc, key),
                            "duplicate key (an earlier line sets it already)",
                        )
                    continue
                own[key] = entry
        finally:
            if depth:
                self.active.discard(id(node))
        return [(key, own.get(key, entry)) for key, entry in merged.items()] + [
            (key, entry) for key, entry in own.items() if key not in merged
        ]

    def merge_sources(
        self, value: yaml.Node, loc: tuple[str | int, ...], via: int | None, line: int
    ) -> Iterator[tuple[yaml.MappingNode, int | None]]:
        """The mappings a merge key names, in order, each with the line it is used on."""
        target, target_via = self.follow(value, loc, via)
        if target is None:
            return
        if isinstance(target, yaml.MappingNode):
            yield target, target_via
            return
        if not isinstance(target, yaml.SequenceNode):
            self.report(line, loc, _BAD_MERGE)
            return
        for item in target.value:
            mapping, mapping_via = self.follow(item, loc, target_via)
            if mapping is None:
                continue
            if not isinstance(mapping, yaml.MappingNode):
                self.report(line, loc, _BAD_MERGE)
                continue
            yield mapping, mapping_via

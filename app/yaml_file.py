"""Reading one YAML configuration file so that no file can hurt: bounded size, UTF-8, depth and aliases, no
duplicate keys, and one `FILE: line L:C: what is wrong` error (exit 2) for anything else.

A config file is small and flat. Anything far from that is a mistake or an attack: a binary file, a document
that nests thousands of levels (the parser recurses), or one whose aliases multiply into millions of nodes (the
"billion laughs") would otherwise give a traceback, or memory growing until the board falls over.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from app.errors import ConfigError
from app.text_file import read_text

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 64
#: values the document would have with every alias expanded (aliases may nest: 2 per level doubles each level)
MAX_EXPANDED = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with a nesting bound, an alias bound, and duplicate keys refused: plain YAML keeps the last
    value of a repeated key silently, so a second `publish:` or `camera:` would hide the first."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases (*name)",
                                    self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_EXPANDED:
            raise ComposerError(None, None, f"its aliases expand to more than {MAX_EXPANDED} values", node.start_mark)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise ConstructorError(None, None, f"duplicate key {key}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for with aliases expanded; a node that contains itself counts as unbounded."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_EXPANDED + 1  # while counting: a cycle back to here is unbounded
    children: list[Node] = []
    if isinstance(node, MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    total = 1
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_EXPANDED:
            break
    sizes[id(node)] = total
    return total


def read_mapping(path: Path) -> dict[str, Any]:
    """The file's top-level mapping ({} for an empty file), or ConfigError naming the file and the place."""
    text = read_text(path, "a configuration file", MAX_BYTES)
    if "\0" in text:
        raise ConfigError(f"{path}: line {text[:text.index(chr(0))].count(chr(10)) + 1}: a NUL byte: not a text file")
    try:
        loaded = yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}:{mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:  # a parser stage below the composer recursed (very long flow collections)
        raise ConfigError(f"{path}: nested too deeply to be a configuration file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return loaded


def load_value(text: str) -> Any:
    """One YAML value given on the command line (`--set KEY=VALUE`), with a file's bounds on depth and aliases:
    ComposerError (its `problem` says which) beyond them, another yaml.YAMLError for what is not YAML."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except RecursionError:  # as in read_mapping: a stage below the composer recursed
        raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", None) from None

"""Reading YAML with the line of every key and item, and writing it back readably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dcops import collector

try:  # libyaml is several times faster on 10,000-programme inventories
    _BaseLoader = yaml.CSafeLoader
    _BaseDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader
    _BaseDumper = yaml.SafeDumper

MAX_FILE_BYTES = 50 * 1024 * 1024
# Aliases can make a small file expand into a huge tree (the "billion laughs");
# past this many values the file is refused instead of walked.
MAX_VALUES = 2_000_000


class LocatedDict(dict):
    """A mapping from YAML that remembers its own line and the line of each key."""

    line: int = 0
    key_lines: dict


class LocatedList(list):
    """A sequence from YAML that remembers its own line and the line of each item."""

    line: int = 0
    item_lines: list


class YamlProblem(Exception):
    """A file that is not valid YAML, or not usable as an inventory document."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class _LineLoader(_BaseLoader):
    """A safe loader that builds Located containers and refuses duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    mapping = LocatedDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise YamlProblem(key_node.start_mark.line + 1, "a mapping key must be a plain value") from None
        if key in mapping.key_lines:
            raise YamlProblem(
                key_node.start_mark.line + 1,
                f"duplicate key {key!r} (first at line {mapping.key_lines[key]})",
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    sequence = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _count_values(data: Any, limit: int) -> int:
    seen = 0
    stack = [data]
    while stack:
        value = stack.pop()
        seen += 1
        if seen > limit:
            break
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return seen


def load_yaml(path: Path) -> Any:
    """Parse one YAML file into Located containers; raise YamlProblem with a line."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise YamlProblem(1, f"file is {size} bytes, more than the {MAX_FILE_BYTES} an inventory file may be")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlProblem(1, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise YamlProblem(1, f"cannot read: {error.strerror}") from None
    # The cyclic GC finds nothing to free in a freshly built tree but walks all of it,
    # again and again as it grows: off while parsing, loads run about twice as fast.
    try:
        with collector.paused():
            data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a safe loader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = error.problem or error.context or "invalid YAML"
        raise YamlProblem(line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise YamlProblem(1, f"invalid YAML: {str(error).splitlines()[0]}") from None
    except RecursionError:
        raise YamlProblem(1, "invalid YAML: nested too deeply") from None
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise YamlProblem(1, f"the document expands to more than {MAX_VALUES} values (aliases?)")
    return data


def line_of(data: Any, loc: tuple) -> int | None:
    """The line of the deepest part of `loc` (a path of keys and indexes) found in `data`."""
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, LocatedDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
        line = getattr(node, "line", None) or line
    return line


def dump_yaml(data: Any, header: str = "") -> str:
    """YAML text for plain data: keys in the given order, block style, Unicode kept."""
    body = yaml.dump(
        data, Dumper=_BaseDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
    return header + body

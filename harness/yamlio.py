"""YAML loading that remembers where each key stands, so errors can give a line number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError, Problem, not_utf8

Loc = tuple[str | int, ...]


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[tuple[Loc, int, int]]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            child = (*loc, key.value)
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and key.value in seen:
                duplicates.append((child, seen[key.value], line))
            else:
                seen[key.value] = line
            lines[child] = line
            _walk(value, child, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _walk(value, (*loc, i), lines, duplicates)


def read_text(path: Path, what: str = "file") -> str:
    """Read a UTF-8 text file, turning I/O and encoding failures into a ConfigError."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "", f"{what} not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([not_utf8(path, exc, whole=True)]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read {what}: {exc.strerror}")]) from None


def load_yaml(path: Path, what: str = "file") -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file; return the data and a map from key path to line number."""
    text = read_text(path, what)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError([Problem(str(path), "", f"YAML syntax error: {exc.problem}",
                                   line=mark.line + 1 if mark else None)]) from None
    except ValueError as exc:  # a scalar YAML reads as a date that is none: "2019-13-45"
        bad = _bad_date(node)
        raise ConfigError([Problem(str(path), ".".join(map(str, bad[2])) if bad else "", f"not a valid date: {exc}",
                                   line=bad[1] if bad else None, found=bad[0] if bad else None,
                                   expected="YYYY-MM-DD", hint="quote it if it is not a date")]) from None
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int, int]] = []
    if node is not None:
        _walk(node, (), lines, duplicates)
    if duplicates:  # YAML keeps the last silently: a second `gates:` would drop the first gates
        raise ConfigError([Problem(str(path), ".".join(map(str, loc)), f"key given twice (first at line {first})",
                                   line=again, expected="each key once", hint="merge the two into one")
                           for loc, first, again in duplicates])
    return data, lines


def _bad_date(node: yaml.Node | None, loc: Loc = ()) -> tuple[str, int, Loc] | None:
    """(text, line, key path) of the first timestamp scalar that is no date."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:timestamp":
            try:
                yaml.SafeLoader("").construct_yaml_timestamp(node)
            except ValueError:
                return node.value, node.start_mark.line + 1, loc
        return None
    if isinstance(node, yaml.MappingNode):
        children = [((*loc, key.value), value) for key, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*loc, i), value) for i, value in enumerate(node.value)]
    else:
        children = []
    for child_loc, child in children:
        if (bad := _bad_date(child, child_loc)) is not None:
            return bad
    return None


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None

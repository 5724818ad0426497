"""YAML loading that remembers where each key stands, so errors can give a line number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError, Problem, not_utf8

Loc = tuple[str | int, ...]


#: values a file may expand to through its aliases (`*name`), beyond ten times its own: nine
#: aliases nine deep (a "billion laughs") are 387 million values from eleven lines, and hung
#: validation until the machine ran out of memory
MAX_EXPANSION = 10
MIN_BUDGET = 100_000


class _TooLarge(Exception):
    pass


def _walk(root: yaml.Node, lines: dict[Loc, int], duplicates: list[tuple[Loc, int, int]]) -> None:
    """Every key path's line, and the keys given twice; iterative, within a budget of
    visits (an alias is visited again at each place it is used)."""
    budget = max(MIN_BUDGET, MAX_EXPANSION * _distinct_nodes(root))
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        budget -= 1
        if budget < 0:
            raise _TooLarge
        node, loc = stack.pop()
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
                stack.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((value, (*loc, i)) for i, value in enumerate(node.value)))


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return len(seen)


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
    loader = yaml.SafeLoader(text)
    node = None
    try:  # parsed once: the nodes give the lines, the same nodes the values
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        duplicates: list[tuple[Loc, int, int]] = []
        if node is not None:
            _walk(node, lines, duplicates)  # before the values are used: an alias bomb expands there
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError([Problem(str(path), "", f"YAML syntax error: {exc.problem}",
                                   line=mark.line + 1 if mark else None)]) from None
    except ValueError as exc:  # a scalar YAML reads as a date that is none: "2019-13-45"
        bad = _bad_date(node)
        raise ConfigError([Problem(str(path), ".".join(map(str, bad[2])) if bad else "", f"not a valid date: {exc}",
                                   line=bad[1] if bad else None, found=bad[0] if bad else None,
                                   expected="YYYY-MM-DD", hint="quote it if it is not a date")]) from None
    except RecursionError:
        raise ConfigError([Problem(str(path), "", "YAML nested too deeply to read", expected="at most ~300 levels",
                                   hint="is this the file you meant?")]) from None
    except _TooLarge:
        raise ConfigError([Problem(str(path), "", "YAML aliases (*name) expand to too many values",
                                   expected=f"at most {MAX_EXPANSION} times the values written in the file",
                                   hint="an alias of an alias of a list multiplies it: write the values once")],
                          ) from None
    finally:
        loader.dispose()
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

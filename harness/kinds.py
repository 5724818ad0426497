"""Task kinds: which fields an item needs, how it becomes a request, default scorers."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
import jinja2.runtime
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.config import TaskConfig
from harness.registry import Registry
from harness.types import Item, Request

# Task files come from others: templates run in Jinja2's immutable sandbox (no attribute
# starting with "_", no mutation, no globals but `range`), with only the filters a prompt needs.
# The sandbox guards access, not size: `{{ question * 10**9 }}`, `{{ 9 ** 9 ** 9 }}`, a loop in
# a loop of `range(100000)` or `"%999999999d" % 1` exhausted memory or never returned, at
# validation. Every way a template can make a large value is bounded here.
PROMPT_FILTERS = ("capitalize", "center", "count", "default", "d", "first", "float", "indent", "int",
                  "join", "last", "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse",
                  "round", "select", "selectattr", "slice", "sort", "string", "title", "tojson", "trim",
                  "truncate", "unique", "upper", "wordcount", "wordwrap", "batch")
#: characters a rendered prompt, or any value made on the way, may hold (a whole record of
#: several hundred pages is ~3 million; the largest model contexts hold ~8 million)
MAX_RENDERED = 10_000_000
#: loop turns over `range` in one rendering
MAX_RANGE_TURNS = 1_000_000
#: str methods a template may call: none of them makes a value much larger than its input
SAFE_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdecimal", "isdigit",
    "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip", "partition", "removeprefix",
    "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith",
    "strip", "swapcase", "title", "upper"})
_WIDTH = re.compile(r"%[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
_turns: ContextVar[int] = ContextVar("range_turns", default=MAX_RANGE_TURNS)


def _bounded(size: int, what: str) -> None:
    if size > MAX_RENDERED:
        raise SecurityError(f"{what} would make {size:,} characters or items (at most {MAX_RENDERED:,} in a prompt)")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 1


class _PromptSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    _bounded(len(seq) * n, "'*'")
        elif operator == "+" and isinstance(left, str | list | tuple):
            _bounded(_size(left) + _size(right), "'+'")
        elif operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            if abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > 4096:
                raise SecurityError(f"{left!r} ** {right!r} is too large a number for a prompt")
        elif operator == "%" and isinstance(left, str):
            args = right if isinstance(right, tuple) else (right,)
            widths = [int(n) for m in _WIDTH.finditer(left) for n in m.groups() if n and n != "*"]
            if "*" in left:  # widths given as arguments: "%*d" % (999999999, 1)
                widths += [a for a in args if isinstance(a, int)]
            _bounded(max(widths, default=0) + len(left) + sum(_size(a) for a in args), "'%'")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in SAFE_STR_METHODS:
            return False  # center, ljust, zfill, expandtabs, join, replace make values of any size
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
                getattr(value, "__self__", None), str):
            def refused(*_: Any, **__: Any) -> str:  # "{:>999999999}".format(1): a gigabyte
                raise SecurityError("str.format is not available in prompt templates: join values with ~")
            return refused
        return None

    def joined(self, parts: tuple[Any, ...]) -> str:
        """`a ~ b`: sized before it is made, as `*` is (a chain of `~` grows a value fourfold
        at each `set`)."""
        texts = [str(p) for p in parts]
        _bounded(sum(map(len, texts)), "'~'")
        return "".join(texts)


class _BoundedConcat(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _range(*args: int) -> range:
    turns = range(*args)
    left = _turns.get() - len(turns)
    if left < 0:
        raise SecurityError(f"the template's loops over range() turn more than {MAX_RANGE_TURNS:,} times")
    _turns.set(left)
    return turns


def _guard(name: str, check: Callable[..., int]) -> Callable[..., Any]:
    """Filter `name`, refused when `check(*args)` (the size it would make) is too large."""
    inner = _ENV.filters[name]
    skip = 1 if getattr(inner, "jinja_pass_arg", None) else 0  # the eval context Jinja passes first

    @functools.wraps(inner)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and not isinstance(args[skip], Sized):  # `map(...)|join`: a generator, read once
            args = (*args[:skip], list(args[skip]), *args[skip + 1:])
        _bounded(check(*args[skip:], **kwargs), f"filter '{name}'")
        return inner(*args, **kwargs)
    return guarded


def _width(value: Any, width: Any = 80, *_: Any, **__: Any) -> int:
    return _size(value) + (len(width) if isinstance(width, str) else int(width))


def _join(value: Any, d: str = "", *_: Any, **__: Any) -> int:
    return len(value) * (1 + len(str(d)))


def _replace(value: Any, old: Any = "", new: Any = "", count: Any = None) -> int:
    text = str(value)
    return len(text) + (text.count(str(old)) if count is None else int(count)) * len(str(new))


_PromptSandbox.code_generator_class = _BoundedConcat
_ENV = _PromptSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.filters = {name: _ENV.filters[name] for name in PROMPT_FILTERS}
_ENV.filters.update({
    "center": _guard("center", _width), "indent": _guard("indent", _width), "join": _guard("join", _join),
    "replace": _guard("replace", _replace),
    "slice": _guard("slice", lambda value, slices, *_, **__: int(slices)),
    "batch": _guard("batch", lambda value, linecount, *_, **__: int(linecount))})
_ENV.tests = {name: _ENV.tests[name] for name in ("defined", "undefined", "none", "number", "string", "in",
                                                   "eq", "ne", "lt", "gt", "le", "ge", "odd", "even")}
_ENV.globals = {"range": _range}


def render(source: str, fields: dict[str, Any]) -> str:
    """A prompt template rendered on an item's fields, within the bounds above."""
    compiled = template(source)
    if isinstance(compiled, _Substitution):
        return compiled.render(**fields)
    token = _turns.set(MAX_RANGE_TURNS)
    try:
        out, size = [], 0
        for chunk in compiled.generate(**fields):  # chunk by chunk: a loop's output is bounded as it grows
            size += len(chunk)
            _bounded(size, "the template")
            out.append(chunk)
        return "".join(out)
    finally:
        _turns.reset(token)


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _Substitution:
    """Plain `{{ name }}` placeholders rendered without building a Jinja context
    (~10× faster); anything else (filters, loops, conditions) goes to Jinja."""

    def __init__(self, source: str) -> None:
        self.parts = _PLACEHOLDER.split(source)

    def render(self, **fields: Any) -> str:
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(str(fields[parts[i]]))
            out.append(parts[i + 1])
        return "".join(out)


@lru_cache(maxsize=64)
def template(source: str) -> jinja2.Template | _Substitution:
    if not any(tok in _PLACEHOLDER.sub("", source) for tok in ("{{", "{%", "{#")):
        return _Substitution(source)
    return _ENV.from_string(source)


@lru_cache(maxsize=256)
def renders_with_jinja(prompt: str | None, system_prompt: str | None) -> bool:
    """Whether a task's templates go through Jinja (loops, filters): only those can run long,
    and need a time limit; plain `{{ name }}` substitution cannot."""
    return any(source and not isinstance(template(source), _Substitution) for source in (prompt, system_prompt))


def template_fields(source: str) -> set[str]:
    """Item fields a prompt template uses."""
    return set(jinja2.meta.find_undeclared_variables(_ENV.parse(source)))


@dataclass(frozen=True)
class TaskKind:
    name: str
    modality: str                   # what the adapter must accept: "audio" or "text"
    required: tuple[str, ...]       # logical item fields
    default_scorers: tuple[str, ...]
    needs_prompt: bool = False
    inputs: tuple[str, ...] = ()     # item fields an adapter may read besides the rendered prompt

    def fields_needed(self, task: TaskConfig) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.required + _prompt_fields(task.prompt, task.system_prompt)))

    def input_fields(self, task: TaskConfig) -> tuple[str, ...]:
        """Item fields an adapter may see: what the kind takes as input and what the prompt
        templates read. The reference is never among them unless a template names it."""
        return _input_fields(self.inputs, task.prompt, task.system_prompt,
                             task.dataset.fields.get("reference", "reference"))

    def build_request(self, task: TaskConfig, item: Item, repeat: int, seed: int) -> Request:
        inputs = {f: item.data[f] for f in self.input_fields(task) if f in item.data}
        if self.modality == "audio":
            return Request(task.name, item.id, repeat, seed, audio=item.audio, language=task.language, inputs=inputs)
        messages = []
        if task.system_prompt:
            messages.append({"role": "system", "content": render(task.system_prompt, item.data)})
        prompt = render(task.prompt, item.data) if task.prompt else str(item.data.get("input", ""))
        messages.append({"role": "user", "content": prompt})
        return Request(task.name, item.id, repeat, seed, messages=messages, language=task.language, inputs=inputs)


@lru_cache(maxsize=256)
def _prompt_fields(prompt: str | None, system_prompt: str | None) -> tuple[str, ...]:
    """Item fields the prompt templates read, prompt first."""
    out: tuple[str, ...] = ()
    for source in (prompt, system_prompt):
        if source:
            out += tuple(sorted(template_fields(source)))
    return out


@lru_cache(maxsize=256)
def _input_fields(inputs: tuple[str, ...], prompt: str | None, system_prompt: str | None,
                  reference: str) -> tuple[str, ...]:
    return tuple(sorted((set(inputs) - {"reference", reference}) | set(_prompt_fields(prompt, system_prompt))))


#: task kinds; third-party kinds register through the entry-point group "harness.kinds"
#: (a TaskKind instance), like adapters and scorers
KINDS: Registry[TaskKind] = Registry("task kind", "harness.kinds")


def register_kind(kind: TaskKind) -> TaskKind:
    """Register a task kind under its name."""
    return KINDS.register(kind.name)(kind)


register_kind(TaskKind("transcription", "audio", ("id", "audio", "reference"), ("wer", "cer")))
register_kind(TaskKind("qa", "text", ("id", "reference"), ("exact_match",), needs_prompt=True,
                       inputs=("input", "choices")))
register_kind(TaskKind("generation", "text", ("id", "source"), ("numeric_fidelity",), needs_prompt=True,
                       inputs=("input", "source")))
# patient information into another language (task `language` = the target language); the
# reference is a professional translation. Back-translation: `against: source` on the scorers.
register_kind(TaskKind("translation", "text", ("id", "source", "reference"), ("bleu", "chrf", "ter"),
                       needs_prompt=True, inputs=("source",)))
# a text with identifiers in, the same text de-identified out; the reference holds the gold spans
register_kind(TaskKind("deidentification", "text", ("id", "input", "reference"), ("deid",), needs_prompt=True,
                       inputs=("input",)))

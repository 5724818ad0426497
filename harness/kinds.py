"""Task kinds: which fields an item needs, how it becomes a request, default scorers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.config import TaskConfig
from harness.registry import Registry
from harness.types import Item, Request

# Task files come from others: templates run in Jinja2's immutable sandbox (no attribute
# starting with "_", no mutation, no globals but `range`), with only the filters a prompt needs.
PROMPT_FILTERS = ("capitalize", "center", "count", "default", "d", "first", "float", "format", "indent", "int",
                  "join", "last", "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse",
                  "round", "select", "selectattr", "slice", "sort", "string", "title", "tojson", "trim",
                  "truncate", "unique", "upper", "wordcount", "wordwrap", "batch")
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     keep_trailing_newline=False)
_ENV.filters = {name: _ENV.filters[name] for name in PROMPT_FILTERS}
_ENV.tests = {name: _ENV.tests[name] for name in ("defined", "undefined", "none", "number", "string", "in",
                                                   "eq", "ne", "lt", "gt", "le", "ge", "odd", "even")}
_ENV.globals = {"range": _ENV.globals["range"]}


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
            messages.append({"role": "system", "content": template(task.system_prompt).render(**item.data)})
        prompt = template(task.prompt).render(**item.data) if task.prompt else str(item.data.get("input", ""))
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

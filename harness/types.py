"""The records that flow one way through a run: item → request → response → score."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.segments import Segment


@dataclass(slots=True)
class Item:
    """One test case. `data` holds every column of the row, for prompt templates."""

    id: str
    data: dict[str, Any]
    reference: Any = None
    audio: Path | None = None
    cluster: str | None = None
    subgroup: str | None = None
    #: timed speaker turns of the reference, where the dataset gives them
    segments: list[Segment] | None = None


@dataclass(slots=True)
class Request:
    """What an adapter receives: chat messages or an audio file, the sampling seed, and the
    item's input fields (those the task kind and its templates read). Never the reference:
    the system under test must not be able to read the gold answer."""

    task: str
    item_id: str
    repeat: int
    seed: int
    messages: list[dict[str, str]] | None = None
    audio: Path | None = None
    language: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def prompt(self) -> str:
        """The text of the last user message (for adapters that take plain text)."""
        if not self.messages:
            return ""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")

    def content_hash(self, audio_hash: str | None = None) -> str:
        """Hash of exactly what is sent; identical requests hash alike across runs."""
        payload = {"messages": self.messages, "audio": audio_hash, "language": self.language,
                   "seed": self.seed}
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass(slots=True)
class Response:
    """What came back. `output` is None when the item errored or was missing."""

    output: str | None = None
    error: str | None = None
    missing: bool = False
    latency_s: float | None = None
    #: seconds to the first token, where the adapter streams
    ttft_s: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    #: estimated energy (Wh; EcoLogits' range centre) and emissions (gCO2eq), by the adapter's declared method
    energy_wh: float | None = None
    gwp_g: float | None = None
    model_id: str | None = None
    system_fingerprint: str | None = None
    audio_seconds: float | None = None
    #: timed pieces of a transcript, as the system returned them ({start, end, text[, speaker]})
    segments: list[dict[str, Any]] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    cache_hit: bool = False
    #: where it was computed under `executor: ray`: {node, actor, host}
    worker: dict[str, str] | None = None

    @property
    def status(self) -> str:
        if self.missing:
            return "missing"
        return "error" if self.error is not None else "ok"

    def to_dict(self) -> dict[str, Any]:
        # shallow on purpose: dataclasses.asdict deep-copies and costs ~80 µs a response
        return {name: getattr(self, name) for name in _RESPONSE_FIELDS}


_RESPONSE_FIELDS = tuple(Response.__dataclass_fields__)
_AMOUNTS = ("latency_s", "ttft_s", "cost", "energy_wh", "gwp_g", "audio_seconds")
_INF = float("inf")


def _amount(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        return None
    return float(value)


def _count(value: Any) -> int | None:
    number = _amount(value)
    return int(number) if number is not None and number == int(number) else None


def reported_figures_checked(response: Response) -> Response:
    """What a system reports about its answer (usage, model id, times) comes from the system
    under test, as the answer does: a proxy that sends token counts as strings failed every
    item, negative counts made costs negative (and a cost gate pass), a model id given as an
    object stopped the run. Numbers are kept when they are numbers, zero or more (numeric
    strings read); names when they are text; anything else reads as not reported."""
    r = response
    # the usual response, checked in 0.3 µs (a million-item replay calls this a million times)
    for value in (r.latency_s, r.ttft_s, r.cost, r.energy_wh, r.gwp_g, r.audio_seconds):
        if value is not None and not (type(value) is float and 0.0 <= value < _INF):
            return _coerced(r)
    for count in (r.tokens_in, r.tokens_out):
        if count is not None and not (type(count) is int and count >= 0):
            return _coerced(r)
    if (r.model_id is not None and type(r.model_id) is not str) or (
            r.system_fingerprint is not None and type(r.system_fingerprint) is not str):
        return _coerced(r)
    return r


def _coerced(response: Response) -> Response:
    for name in _AMOUNTS:
        value = getattr(response, name)
        if value is not None and type(value) is not float:
            setattr(response, name, _amount(value))
        elif value is not None and not 0 <= value < float("inf"):
            setattr(response, name, None)
    for name in ("tokens_in", "tokens_out"):
        value = getattr(response, name)
        if value is not None and (type(value) is not int or value < 0):
            setattr(response, name, _count(value))
    for name in ("model_id", "system_fingerprint"):
        value = getattr(response, name)
        if value is not None and not isinstance(value, str):
            setattr(response, name, str(value) if isinstance(value, int | float) else None)
    return response


@dataclass(slots=True)
class Score:
    """Per-item values from the scorers (numbers only) and details for reports."""

    values: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Sample:
    """What a scorer sees: the item (with its reference), the request that was sent (None for
    responses recorded before a resume) and the response."""

    item: Item
    request: Request | None
    response: Response
    adapter: str = ""

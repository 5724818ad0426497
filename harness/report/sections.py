"""The report section model: what a scorer contributes to every report format.

A scorer's `summarize` hook returns `Section`s built from the details it recorded; the
scorecard stores them as plain dicts, and the Markdown and HTML renderers draw every
section the same way, so the formats cannot drift and the report code holds nothing
scorer-specific. Cells are plain text; each renderer escapes them for its format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    #: rows to draw as errors (same length as rows, or empty)
    flagged: list[bool] = field(default_factory=list)


@dataclass
class Section:
    """One block of a report, for one task × adapter."""

    title: str
    task: str
    adapter: str
    scorer: str
    #: sections of one group are shown together, e.g. "Errors that matter in medicine"
    group: str = ""
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    #: the same content as figures, for programs reading scorecard.json
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def counts_text(counts: dict[str, int]) -> str:
    """'drug substitution 3, dose dropped 1' from {kind: count}."""
    return ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())

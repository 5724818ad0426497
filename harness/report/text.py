"""Formatting of values for reports, and escaping of untrusted text in Markdown.

Item ids, model outputs, references, provider declarations and model ids come from
others. Markdown passes raw HTML through, and CI job summaries, wikis and chat tools
render it: every such string is escaped before it reaches a Markdown report.
"""

from __future__ import annotations

import re
from typing import Any

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the characters that
# can open raw HTML, a link or image, an autolink, code, bold text or a table cell. Underscores
# stay as they are: metric names read better, and emphasis cannot run anything.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")
_SPACE = re.compile(r"\s+")


def fmt(value: Any, digits: int = 4) -> str:
    """A value as plain text: numbers to `digits` significant digits, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def md(value: Any, digits: int = 4) -> str:
    """A value as inert Markdown inline text: HTML, links, emphasis and cell breaks escaped,
    line breaks folded into spaces."""
    text = fmt(value, digits)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return text
    return _MD_SPECIAL.sub(r"\\\1", _SPACE.sub(" ", text))

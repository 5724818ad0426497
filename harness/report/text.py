"""Formatting of values for reports, and escaping of untrusted text in Markdown.

Item ids, model outputs, references, provider declarations and model ids come from
others. Markdown passes raw HTML through, and CI job summaries, wikis and chat tools
render it: every such string is escaped before it reaches a Markdown report.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the characters that
# can open raw HTML, a link or image, an autolink, code, bold text or a table cell. Underscores
# stay as they are: metric names read better, and emphasis cannot run anything.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")
_SPACE = re.compile(r"\s+")
#: C0 and C1 controls but tab and line breaks, and bidirectional overrides: a model id or an
#: answer holding ESC c resets the terminal that prints the scorecard, OSC 52 writes to its
#: clipboard, and U+202E shows "5 gm" as "mg 5" in a committee's report
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible_controls(text: str) -> str:
    """`text` with its control characters written as code points (`\\u001b`), inert in a
    terminal, a Markdown viewer and a browser."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def inert_html(value: Any) -> Any:
    """Jinja `finalize` for the HTML reports: every string printed with its controls visible
    (Markup keeps its type, so that it is not escaped twice)."""
    if isinstance(value, Markup):
        return Markup(visible_controls(str(value)))
    return visible_controls(value) if isinstance(value, str) else value


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
    return _MD_SPECIAL.sub(r"\\\1", _SPACE.sub(" ", visible_controls(text)))

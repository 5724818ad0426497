"""The bundled detector as a de-identification system under test (a `python` adapter):
every identifier it finds is replaced by its type in brackets."""

from __future__ import annotations

from harness.pii.detect import scan
from harness.types import Request


def redact_text(text: str) -> str:
    """`text` with each identifier replaced by `[TYPE]`."""
    out, last = [], 0
    for e in scan(text):
        out += [text[last:e.start], f"[{e.kind}]"]
        last = e.end
    out.append(text[last:])
    return "".join(out)


def redact(request: Request) -> str:
    """Adapter entry point: the item's `input` field (or the prompt) de-identified."""
    text = request.inputs.get("input")
    return redact_text(text if isinstance(text, str) else request.prompt)

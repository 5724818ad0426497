"""The pre-flight guard (HAS key 2.4): a request to a system not cleared for personal data is
scanned before it leaves the machine, and blocked or pseudonymised.

- `block`: the request is never sent; the item is recorded as an error saying which kinds of
  identifier were found (never the identifiers themselves).
- `pseudonymise`: each identifier is replaced by a consistent surrogate (`<NAME_1>` is the same
  person across the whole run), the request is sent, and the surrogates in the answer are put
  back, so that scorers compare it with the reference. The map lives in memory only: it is
  never written to the record, the cache or a log.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from harness.pii.detect import Entity, scan
from harness.textcache import text_cache
from harness.types import Request


@text_cache()
def _scanned(text: str, hospital_patterns: tuple[str, ...]) -> tuple[Entity, ...]:
    """A text's identifiers, scanned once however many adapters and repeats send it (a prompt
    costs 25-100 µs to scan, as much as a request to a local server)."""
    return tuple(scan(text, hospital_patterns))


class PIIGuard:
    def __init__(self, policy: str, kinds: frozenset[str] | None = None, hospital_patterns: tuple[str, ...] = ()):
        self.policy = policy
        self.kinds = kinds
        self.hospital_patterns = hospital_patterns
        self._surrogates: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self.checked = 0
        self.blocked = 0
        self.pseudonymised = 0
        self.by_type: Counter[str] = Counter()

    def _find(self, text: str) -> list[Entity]:
        return [e for e in _scanned(text, self.hospital_patterns) if self.kinds is None or e.kind in self.kinds]

    def _surrogate(self, e: Entity) -> str:
        key = (e.kind, e.text)
        if key not in self._surrogates:
            number = sum(1 for kind, _ in self._surrogates if kind == e.kind) + 1
            surrogate = f"<{e.kind}_{number}>"
            self._surrogates[key] = surrogate
            self._originals[surrogate] = e.text
        return self._surrogates[key]

    def _replace(self, text: str, found: list[Entity]) -> str:
        out, last = [], 0
        for e in found:
            out.append(text[last:e.start])
            out.append(self._surrogate(e))
            last = e.end
        out.append(text[last:])
        return "".join(out)

    def check(self, request: Request) -> tuple[Request | None, Counter[str]]:
        """(the request to send, or None when blocked; the kinds of identifier found)."""
        self.checked += 1
        texts: list[str] = [m.get("content", "") for m in request.messages or [] if isinstance(m.get("content"), str)]
        texts += [v for v in request.inputs.values() if isinstance(v, str)]
        found_kinds: Counter[str] = Counter()
        findings = {text: self._find(text) for text in set(texts)}
        for entities in findings.values():
            found_kinds.update(e.kind for e in entities)
        if not found_kinds:
            return request, found_kinds
        self.by_type.update(found_kinds)
        if self.policy == "block":
            self.blocked += 1
            return None, found_kinds
        self.pseudonymised += 1

        def clean(value: Any) -> Any:
            return self._replace(value, findings[value]) if isinstance(value, str) and findings.get(value) else value

        messages = [{**m, "content": clean(m.get("content"))} for m in request.messages] if request.messages else None
        inputs = {k: clean(v) for k, v in request.inputs.items()}
        return dataclasses.replace(request, messages=messages, inputs=inputs), found_kinds

    def restore(self, text: str | None) -> str | None:
        """The answer with the surrogates put back."""
        if not text or not self._originals or "<" not in text:
            return text
        for surrogate, original in self._originals.items():
            text = text.replace(surrogate, original)
        return text

    def summary(self) -> dict[str, Any]:
        return {"policy": self.policy, "checked": self.checked, "blocked": self.blocked,
                "pseudonymised": self.pseudonymised, "by_type": dict(sorted(self.by_type.items()))}

"""Precision and recall of the PII detector on the bundled annotated notes.

    python -m harness.pii.evaluate [--set dev|test] [--verbose]

Notes mark entities inline as `[TYPE:text]` (data/annotated/README.md). A found entity
matches a gold one of the same type whose characters it overlaps; each gold entity is
matched once. Recall first: a missed name is the costly error.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from harness.pii.detect import Entity, scan

ANNOTATED = Path(str(files("harness.pii") / "data" / "annotated"))
_MARK = re.compile(r"\[([A-Z_]+):([^\]]+)\]")


def parse(line: str) -> tuple[str, list[Entity]]:
    """The plain text of an annotated line and its gold entities."""
    text, gold, last = [], [], 0
    length = 0
    for m in _MARK.finditer(line):
        before = line[last:m.start()]
        text.append(before)
        length += len(before)
        gold.append(Entity(m[1], length, length + len(m[2]), m[2]))
        text.append(m[2])
        length += len(m[2])
        last = m.end()
    text.append(line[last:])
    return "".join(text), gold


@dataclass
class Scores:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def precision(self, kind: str | None = None) -> float:
        tp = self.tp[kind] if kind else sum(self.tp.values())
        fp = self.fp[kind] if kind else sum(self.fp.values())
        return tp / (tp + fp) if tp + fp else 1.0

    def recall(self, kind: str | None = None) -> float:
        tp = self.tp[kind] if kind else sum(self.tp.values())
        fn = self.fn[kind] if kind else sum(self.fn.values())
        return tp / (tp + fn) if tp + fn else 1.0


def evaluate(languages: tuple[str, ...] = ("fr", "en"), which: str = "test") -> Scores:
    scores = Scores()
    for lang in languages:
        for line in (ANNOTATED / f"{lang}-{which}.txt").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            text, gold = parse(line)
            found = scan(text)
            used: set[int] = set()
            for g in gold:
                k = next((k for k, f in enumerate(found) if k not in used and f.kind == g.kind
                          and f.start < g.end and g.start < f.end), None)
                if k is None:
                    scores.fn[g.kind] += 1
                    scores.errors.append(f"missed {g.kind} {g.text!r} in: {text}")
                else:
                    used.add(k)
                    scores.tp[g.kind] += 1
            for k, f in enumerate(found):
                if k not in used:
                    scores.fp[f.kind] += 1
                    scores.errors.append(f"extra {f.kind} {f.text!r} in: {text}")
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("dev", "test"), default="test")
    parser.add_argument("--lang", choices=("fr", "en"), action="append")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    s = evaluate(tuple(args.lang or ("fr", "en")), args.set)
    kinds = sorted(set(s.tp) | set(s.fn) | set(s.fp))
    print(f"{'type':14s} {'gold':>5s} {'precision':>9s} {'recall':>7s}")
    for kind in kinds:
        print(f"{kind:14s} {s.tp[kind] + s.fn[kind]:5d} {s.precision(kind):9.3f} {s.recall(kind):7.3f}")
    print(f"{'all':14s} {sum(s.tp.values()) + sum(s.fn.values()):5d} {s.precision():9.3f} {s.recall():7.3f}")
    if args.verbose:
        for e in s.errors:
            print("  ", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

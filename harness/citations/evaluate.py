"""Citation extraction precision and recall on the bundled annotated answers.

    python -m harness.citations.evaluate [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from importlib.resources import files
from pathlib import Path

from harness.citations.extract import extract_citations

ANNOTATED = Path(str(files("harness.citations") / "data" / "annotated.jsonl"))


def evaluate() -> tuple[int, int, int, list[str]]:
    tp = fp = fn = 0
    errors = []
    for line in ANNOTATED.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        gold = Counter(rec["citations"])
        found = Counter(c.key() for c in extract_citations(rec["text"]))
        tp += sum((gold & found).values())
        fp += sum((found - gold).values())
        fn += sum((gold - found).values())
        if gold != found:
            errors.append(f"{rec['id']}: missed {dict(gold - found)} extra {dict(found - gold)}")
    return tp, fp, fn, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    tp, fp, fn, errors = evaluate()
    print(f"citations: precision {tp / (tp + fp):.3f}  recall {tp / (tp + fn):.3f}  (tp {tp}, fp {fp}, fn {fn})")
    if args.verbose:
        print("\n".join(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate reports/examples/: the default suite's run record, its committee report in
English and French (with the plots as PNG and SVG) and a screenshot of each page.
tests/test_committee_report.py renders the pages again from the stored record and checks
that they match, so a change of the report code shows here.

Run: python scripts/make_example_reports.py [--run RUN_DIR]   (default: run suite.yaml now)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "reports" / "examples"
RECORD = ("manifest.json", "responses.jsonl", "scores.jsonl", "requests.jsonl")
HARNESS = [sys.executable, "-m", "harness"]


def render(lang: str) -> Path:
    """The page of the stored run, as the test renders it (paths relative to the project)."""
    out = Path("reports/examples") / f"report.{lang}.html"
    subprocess.run([*HARNESS, "report", "reports/examples/run", "--format", "html", "--lang", lang,
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    return ROOT / out


def screenshot(page: Path, target: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: no screenshot", file=sys.stderr)
        return
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--screenshot={target}", "--window-size=1280,2000", page.as_uri()],
                   check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing run of suite.yaml (default: run it now)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is not None:  # it may be the stored record itself, which is replaced below
            shutil.copytree(run, Path(tmp) / "given")
            run = Path(tmp) / "given"
        else:
            run = Path(tmp) / "run"
            subprocess.run([*HARNESS, "run", "suite.yaml", "--quiet", "--no-cache", "--out", str(run)], cwd=ROOT,
                           check=True)
        if EXAMPLES.exists():
            shutil.rmtree(EXAMPLES)
        (EXAMPLES / "run").mkdir(parents=True)
        for name in RECORD:
            if (run / name).exists():
                shutil.copy(run / name, EXAMPLES / "run" / name)
    for lang in ("en", "fr"):
        page = render(lang)
        screenshot(page, EXAMPLES / f"screenshot.{lang}.png")
        print(f"wrote {page.relative_to(ROOT)} and reports/examples/screenshot.{lang}.png")


if __name__ == "__main__":
    main()

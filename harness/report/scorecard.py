"""Write the reports of a run: scorecard.json, scorecard.md and report.html, rendered from
the figures the metrics layer computed (`harness.metrics.build_scorecard`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.store import write_json, write_text


def write_reports(run_dir: Path, scorecard: dict[str, Any]) -> None:
    """Render every report format from one scorecard."""
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    write_json(run_dir / "scorecard.json", scorecard)
    write_text(run_dir / "scorecard.md", render_markdown(scorecard))
    write_text(run_dir / "report.html", render_html(scorecard))

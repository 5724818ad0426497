"""Command line: thin wrappers over the engine. Exit codes: 0 gates pass, 1 a gate
failed, 2 usage or configuration error, 3 the run could not complete."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from harness.errors import ConfigError, RunIncomplete

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="avec-harness: evaluate generative-AI tools on health tasks (HAS A.V.E.C.).")


class Format(StrEnum):
    md = "md"
    json = "json"


def _fail(exc: Exception, code: int) -> None:
    typer.echo(str(exc) if isinstance(exc, ConfigError) else f"error: {exc}", err=True)
    raise typer.Exit(code)


@app.command()
def run(suite: Path = typer.Argument(..., help="suite.yaml"),
        out: Path = typer.Option(None, "--out", help="run directory (default: <output_dir>/<run-id>)"),
        resume: str = typer.Option(None, "--resume", help="run id or directory of a run to finish"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars")) -> None:
    """Run a suite: every task × adapter, then write the scorecard."""
    from harness.runner import run_suite

    try:
        result = run_suite(suite, out=out, quiet=quiet or not sys.stderr.isatty(), resume=resume)
    except ConfigError as exc:
        _fail(exc, 2)
    except RunIncomplete as exc:
        _fail(exc, 3)
    typer.echo((result.run_dir / "scorecard.md").read_text(encoding="utf-8"))
    typer.echo(f"run record: {result.run_dir}")
    if result.exit_code:
        typer.echo(f"{result.scorecard['gates_failed']} gate(s) failed", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite.yaml")) -> None:
    """Check a suite, its tasks, adapters and datasets without calling any model."""
    from harness.validate import load_suite

    try:
        v = load_suite(suite)
    except ConfigError as exc:
        _fail(exc, 2)
    for task, adapter in v.suite.pairs:
        typer.echo(f"ok  {task.name} ({v.item_counts[task.name]} items) × {adapter.name} ({adapter.profile.kind})")
    typer.echo(f"{suite}: valid, {len(v.suite.pairs)} task × adapter pairs")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="runs/<run-id>"),
           format: Format = typer.Option(Format.md, "--format", "-f"),
           out: Path = typer.Option(None, "--out", help="write to this file instead of stdout")) -> None:
    """Recompute the scorecard from a run record alone."""
    from harness.report.markdown import render_markdown
    from harness.report.scorecard import build_scorecard

    if not (run_dir / "manifest.json").is_file():
        _fail(Exception(f"{run_dir}: not a run record (no manifest.json)"), 2)
    card = build_scorecard(run_dir)
    text = render_markdown(card) if format == Format.md else json.dumps(card, indent=2, ensure_ascii=False)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

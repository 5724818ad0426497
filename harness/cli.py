"""Command line: thin wrappers over the engine. Exit codes: 0 gates pass, 1 a gate
failed, 2 usage or configuration error, 3 the run could not complete."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from harness.errors import ConfigError, Problem, RecordError, RunIncomplete
from harness.heap import use_lean_allocators
from harness.registry import RegistryClash

# markdown: a docstring's paragraph is reflowed, where rich kept its line breaks mid-sentence
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown",
                  help="avec-harness: evaluate generative-AI tools on health tasks (HAS A.V.E.C.).")


class Format(StrEnum):
    md = "md"
    json = "json"
    html = "html"
    junit = "junit"
    csv = "csv"
    parquet = "parquet"


def _fail(exc: Exception, code: int) -> None:
    typer.echo(str(exc) if isinstance(exc, ConfigError) else f"error: {exc}", err=True)
    raise typer.Exit(code)


@app.command()
def run(suite: Path = typer.Argument(..., help="suite.yaml"),
        out: Path = typer.Option(None, "--out", help="run directory (default: OUTPUT_DIR/RUN_ID)"),
        resume: str = typer.Option(None, "--resume", help="run id or directory of a run to finish, or 'latest'"),
        no_cache: bool = typer.Option(False, "--no-cache", help="neither read nor write the response cache"),
        shard: str = typer.Option(None, "--shard", help="i/n: run only this shard of the items"),
        junit: Path = typer.Option(None, "--junit", help="write the gates as JUnit XML"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
        executor: str = typer.Option(None, "--executor",
                                     help="local or ray: run local systems on Ray actors (overrides the suite)"),
        ray_address: str = typer.Option(None, "--ray-address",
                                        help="the Ray cluster: auto, HOST:PORT or ray://HOST:10001 (implies "
                                             "--executor ray; default: a local instance for the run)"),
        format: str = typer.Option("summary", "--format", "-f",
                                   help="summary: one screen of decisions and key figures; md: the whole "
                                        "Markdown scorecard (CI job summaries)")) -> None:
    """Run a suite: every task × adapter, then write the scorecard."""
    if format not in ("summary", "md"):
        _fail(Exception(f"--format: expected summary or md, found {format!r}"), 2)
    from harness.runner import run_suite

    try:
        result = run_suite(suite, out=out, quiet=quiet or not sys.stderr.isatty(), resume=resume,
                           cache=False if no_cache else None, shard=shard, executor=executor,
                           ray_address=ray_address)
    except ConfigError as exc:
        _fail(exc, 2)
    except RunIncomplete as exc:
        _fail(exc, 3)
    if junit:
        from harness.report.comparison import gate_cases, write_junit

        write_junit(junit, result.scorecard["suite"], gate_cases(result.scorecard))
    if format == "md":
        typer.echo((result.run_dir / "scorecard.md").read_text(encoding="utf-8"))
        typer.echo(f"run record: {result.run_dir}")
    else:
        from harness.report.terminal import colorize, render_summary

        summary = render_summary(result.scorecard, str(result.run_dir), result.exit_code, shard=bool(shard))
        if sys.stdout.isatty():
            colorize(summary)
        else:
            typer.echo(summary, nl=False)
    for row in result.scorecard["rows"]:
        if row["metric"] == "scoring_error_rate" and row["value"]:
            typer.echo(f"warning: {row['task']} × {row['adapter']}: a scorer failed on {row['value']:.1%} of "
                       f"{row['n']} items (error and traceback in scores.jsonl)", err=True)
    if result.exit_code:
        typer.echo(f"{result.scorecard['gates_failed']} gate(s) failed", err=True)
    elif shard and result.scorecard["gates_failed"]:
        typer.echo("gates are decided on the merged run (harness merge), not on a shard", err=True)
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
        count = v.item_counts[task.name]
        typer.echo(f"ok  {task.name} ({count} item{'' if count == 1 else 's'}) × {adapter.name} "
                   f"({adapter.profile.kind})")
    for note in v.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"{suite}: valid, {len(v.suite.pairs)} task × adapter pairs")


@app.command()
def report(runs: list[Path] = typer.Argument(..., help="runs/RUN_ID; with html, more runs are compared with "
                                                       "the first"),
           format: Format = typer.Option(Format.md, "--format", "-f"),
           lang: str = typer.Option("en", "--lang", help="html: en or fr"),
           out: Path = typer.Option(None, "--out", help="write to this file instead of stdout (html: default "
                                                         "RUN/report.LANG.html; csv, parquet: this folder, new "
                                                         "or written by it before, default RUN/tables)")) -> None:
    """Recompute the scorecard from a run record alone. html: the committee's page (decisions,
    every figure with CI, forest plots, details, declarations, methodology), in French or
    English, with its plots as PNG and SVG beside it; csv and parquet write its tables."""
    from harness.metrics import build_scorecard
    from harness.report.markdown import render_markdown

    for run_dir in runs:
        if not (run_dir / "manifest.json").is_file():
            _fail(Exception(f"{run_dir}: not a run record (no manifest.json)"), 2)
    if len(runs) > 1 and format != Format.html:
        _fail(Exception("several runs: only --format html compares them (or use harness compare)"), 2)
    run_dir = runs[0]
    if format == Format.html:
        from harness.report.committee import TEXT, write_committee_report

        if lang not in TEXT:
            _fail(Exception(f"--lang: expected one of {', '.join(TEXT)}, found {lang!r}"), 2)
        target = out or run_dir / f"report.{lang}.html"
        write_committee_report(runs, target, lang)
        typer.echo(f"wrote {target} (plots in {target.parent / (target.stem + '-plots')})")
        return
    if format in (Format.csv, Format.parquet):
        from harness.analysis import export_tables, load_run

        folder = out or run_dir / "tables"
        for path in export_tables(load_run(run_dir), folder, format.value):
            typer.echo(f"wrote {path}")
        return
    card = build_scorecard(run_dir)
    if format == Format.junit:
        import tempfile

        from harness.report.comparison import gate_cases, write_junit

        with tempfile.TemporaryDirectory() as tmp:
            write_junit(Path(tmp) / "gates.xml", card["suite"], gate_cases(card))
            text = (Path(tmp) / "gates.xml").read_text(encoding="utf-8")
    else:
        text = render_markdown(card) if format == Format.md else json.dumps(card, indent=2, ensure_ascii=False)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@app.command()
def compare(baseline: Path = typer.Argument(..., help="baseline run directory (A)"),
            candidate: Path = typer.Argument(..., help="candidate run directory (B)"),
            margin: float = typer.Option(None, "--margin", help="smallest change that matters, for every metric"),
            unpaired: bool = typer.Option(False, "--unpaired", help="compare as independent samples"),
            junit: Path = typer.Option(None, "--junit", help="write one JUnit test case per metric"),
            markdown: Path = typer.Option(None, "--markdown", help="write the table as Markdown (CI summary)"),
            as_json: bool = typer.Option(False, "--json", help="print JSON instead of the table")) -> None:
    """Paired comparison of two runs. Exit 1 on a regression (significant and beyond the
    margin), 0 otherwise, 2 when the runs are not comparable."""
    from harness.compare import compare_runs
    from harness.report.comparison import comparison_cases, render_comparison, write_junit

    for run_dir in (baseline, candidate):
        if not (run_dir / "manifest.json").is_file():
            _fail(Exception(f"{run_dir}: not a run record (no manifest.json)"), 2)
    if margin is not None and margin >= 1:  # rates are proportions: 5 points is 0.05
        typer.echo(f"warning: --margin {margin:g} is larger than any change of a rate (a proportion, 0 to 1): "
                   f"no rate can be a regression; {margin:g} points is {margin / 100:g}", err=True)
    result = compare_runs(baseline, candidate, margin=margin, unpaired=unpaired)
    text = render_comparison(result)
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else text)
    if markdown:
        markdown.write_text(text, encoding="utf-8")
    if junit:
        write_junit(junit, "harness compare", comparison_cases(result))
    raise typer.Exit(2 if not result.comparable else 1 if result.regressions else 0)


@app.command()
def plan(baseline: float = typer.Option(None, "--baseline", help="current rate of a 0/1 metric, e.g. accuracy 0.85"),
         drop: float = typer.Option(..., "--drop", help="the smallest drop to detect, e.g. 0.05"),
         discordance: float = typer.Option(None, "--discordance",
                                           help="share of items on which the two versions disagree, if known"),
         sd: float = typer.Option(None, "--sd", help="for a continuous metric: SD of per-item differences"),
         power: float = typer.Option(0.8, "--power"), alpha: float = typer.Option(0.05, "--alpha")) -> None:
    """How many items a paired comparison needs to detect a drop of DROP."""
    from harness.power import items_for_mean_drop, items_for_proportion_drop

    try:
        if sd is not None:
            n = items_for_mean_drop(sd, drop, alpha=alpha, power=power)
            what = f"a drop of {drop:g} in a mean whose per-item paired differences have SD {sd:g}"
        elif baseline is not None:
            n = items_for_proportion_drop(baseline, drop, alpha=alpha, power=power, discordance=discordance)
            what = f"a drop from {baseline:g} to {baseline - drop:g}" + (
                f" with {discordance:g} discordant items" if discordance is not None
                else " (discordance unknown: versions taken as independent, an upper bound)")
        else:
            _fail(Exception("give --baseline (a rate) or --sd (a continuous metric)"), 2)
    except ValueError as exc:
        _fail(exc, 2)
    typer.echo(f"{n} items to detect {what}, two-sided α = {alpha:g}, power {power:g}")


@app.command()
def init(folder: Path = typer.Argument(Path("."), help="where to write the new suite"),
         name: str = typer.Option(None, "--name", help="task name, e.g. discharge-letters"),
         kind: str = typer.Option(None, "--kind", help="qa, generation or translation"),
         objective: str = typer.Option(None, "--objective", help="what the tool must achieve, in one sentence"),
         metric: str = typer.Option(None, "--metric", help="the indicator (default: the kind's main metric)"),
         success: str = typer.Option(None, "--success", help="success criterion, e.g. '>= 0.9'"),
         stop: str = typer.Option(None, "--stop", help="stop criterion, e.g. '< 0.8' (empty: none)"),
         baseline: float = typer.Option(None, "--baseline", help="today's rate of the indicator, for the sample size"),
         drop: float = typer.Option(None, "--drop", help="the smallest change that matters, for the sample size"),
         language: str = typer.Option("en", "--language"),
         data_class: str = typer.Option("public", "--data-class", help="public, pseudonymised, personal or health")
         ) -> None:
    """Scaffold a suite that states its objective, indicator, success and stop criteria and
    sample size before anything runs (HAS 1.6); asks for what the options do not give."""
    from harness.errors import ConfigError
    from harness.scaffold import KIND_TEMPLATES, InitAnswers, scaffold

    ask = sys.stdin.isatty()

    def get(value: object, prompt: str, default: object) -> object:
        if value is not None:
            return value
        return typer.prompt(prompt, default=default) if ask else default

    kind = str(get(kind, f"Task kind ({', '.join(KIND_TEMPLATES)})", "qa"))
    default_metric, direction, _, _ = KIND_TEMPLATES.get(kind, ("accuracy", ">=", [], []))
    name = str(get(name, "Task name", f"my-{kind}"))
    objective = str(get(objective, "Objective (one sentence)", f"Measure {kind} quality on our own items"))
    metric = str(get(metric, "Indicator (metric)", default_metric))
    success = str(get(success, "Success criterion", f"{direction} 0.9" if default_metric == "accuracy"
                      else f"{direction} 0.5"))
    stop_criterion = str(get(stop, "Stop criterion (empty for none)", "")) or None
    if baseline is None and ask and typer.confirm("Compute the sample size now?", default=True):
        baseline = float(typer.prompt("Today's rate of the indicator (0-1)", default=0.85))
        drop = float(typer.prompt("Smallest change that matters", default=0.05))
    answers = InitAnswers(name, kind, objective, metric, success, stop_criterion, baseline, drop, language,
                          data_class)
    try:
        written = scaffold(answers, folder)
    except ConfigError as exc:
        _fail(exc, 2)
    except ValueError as exc:  # the power computation's bounds
        _fail(exc, 2)
    for path in written:
        typer.echo(f"wrote {path}")
    n = answers.sample_size()
    if n is not None:
        typer.echo(f"sample size: {n} items (paired, α 0.05, power 0.8)")
    typer.echo(f"next: harness validate {folder / 'suite.yaml'}")


@app.command()
def history(runs_dir: Path = typer.Argument(Path("runs"), help="folder of run records"),
            plots: bool = typer.Option(True, "--plots/--no-plots", help="draw one chart per task × metric"),
            plot_format: str = typer.Option("png", "--plot-format", help="png or svg")) -> None:
    """Index every run, show each metric over time, and report silent model changes."""
    from harness.history import index_runs, model_change_events, plot, series

    if not runs_dir.is_dir():
        _fail(Exception(f"{runs_dir}: no such folder"), 2)
    db = index_runs(runs_dir)
    data = series(db)
    for (task, metric), points in sorted(data.items()):
        trail = "  ".join(f"{p[0]}={p[2]:.4g}" for p in points[-6:])
        typer.echo(f"{task}/{metric}: {trail}")
    events = model_change_events(db)
    for event in events:
        typer.echo(f"EVENT {event}")
    if plots and data:
        written = plot(data, runs_dir / "history", plot_format)
        typer.echo(f"{len(written)} charts in {runs_dir / 'history'}")
    typer.echo(f"index: {db} ({len(events)} event(s))")


@app.command()
def merge(runs: list[Path] = typer.Argument(..., help="the shard run directories"),
          out: Path = typer.Option(..., "--out", help="directory of the merged run")) -> None:
    """Merge the records of a sharded run into one run and recompute its scorecard."""
    from harness.merge import merge_runs

    try:
        card = merge_runs(runs, out)
    except ConfigError as exc:
        _fail(exc, 2)
    typer.echo(f"merged {len(runs)} runs into {out}")
    raise typer.Exit(1 if card["gates_failed"] else 0)


cache_app = typer.Typer(help="The response cache (.harness-cache/ beside the suite, or $HARNESS_CACHE_DIR).")
app.add_typer(cache_app, name="cache")


def _open_cache(where: Path):  # type: ignore[no-untyped-def]
    from harness.cache import ResponseCache, default_cache_dir

    base = where.parent if where.is_file() else where
    return ResponseCache(default_cache_dir(base))


@cache_app.command("stats")
def cache_stats(where: Path = typer.Argument(Path("."), help="a suite file or its directory")) -> None:
    """Entries and size of the cache."""
    cache = _open_cache(where)
    typer.echo(json.dumps(cache.stats(), indent=2))
    cache.close()


@cache_app.command("clear")
def cache_clear(where: Path = typer.Argument(Path("."), help="a suite file or its directory")) -> None:
    """Delete every cached response."""
    cache = _open_cache(where)
    typer.echo(f"removed {cache.clear()} cached responses from {cache.path}")
    cache.close()


pii_app = typer.Typer(help="Personal and health identifiers (HAS key 2.4).")
app.add_typer(pii_app, name="pii")


@pii_app.command("scan")
def pii_scan(file: Path = typer.Argument(..., help="a text file: notes, a dataset, an export"),
             as_json: bool = typer.Option(False, "--json", help="one JSON object per identifier"),
             hospital_pattern: list[str] = typer.Option([], "--hospital-pattern",
                                                        help="a regular expression for this site's identifiers"),
             mask: bool = typer.Option(False, "--mask", help="print identifiers masked, not as written")) -> None:
    """List the identifiers in FILE (names, dates, addresses, phone numbers, e-mails, NIR, IBAN,
    hospital numbers), with line and column. Exit 1 when any is found, 0 when none, 2 when
    the file cannot be read."""
    import bisect
    import re

    from harness.pii.detect import scan

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(file), "", f"cannot read: {exc}", expected="a UTF-8 text file")]) from None
    try:
        found = scan(text, tuple(hospital_pattern))
    except re.error as exc:
        raise ConfigError([Problem("--hospital-pattern", "", f"not a regular expression: {exc}")]) from None
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    for e in found:
        line = bisect.bisect_right(starts, e.start)
        col = e.start - starts[line - 1] + 1
        shown = (e.text[:1] + "•" * (len(e.text) - 1)) if mask else e.text
        if as_json:
            typer.echo(json.dumps({"file": str(file), "line": line, "column": col, "type": e.kind, "text": shown,
                                   **({"detail": e.detail} if e.detail else {})}, ensure_ascii=False))
        else:
            typer.echo(f"{file}:{line}:{col}: {e.kind} {shown!r}" + (f" ({e.detail})" if e.detail else ""))
    if not as_json:
        counts: dict[str, int] = {}
        for e in found:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        typer.echo(f"{len(found)} identifiers in {file}: {summary}", err=True)
    raise typer.Exit(1 if found else 0)


def _exit_without_collecting() -> None:
    """At exit, Python's last full collections walk every object the command made (~90 ms
    after a run, on top of the run); the process is ending and its files are closed, so the
    objects are frozen out of them instead. atexit's last handler: the others run first."""
    import atexit
    import gc

    atexit.register(gc.freeze)


def main() -> None:
    """Entry point. Exit codes are a contract with CI: 1 means a gate failed or a regression
    was found, so an unexpected error must never exit 1; it exits 3 with a message."""
    _exit_without_collecting()
    use_lean_allocators()
    try:
        app()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)
    except (RegistryClash, RecordError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except RunIncomplete as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc}\n(this is a bug in avec-harness; the run "
                   "record, if any, is kept)", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()

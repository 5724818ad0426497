"""The committee's report: `harness report RUN [RUN...] --format html --lang fr|en`.

One self-contained page (no external request, no script: styles inline, plots as data-URI
images, the filter of the detail sections in CSS) in French or English: the decisions first, then every figure per
task × system with n and 95% CI (the best marked only when significantly better than every
other system), forest plots, the errors that matter in medicine and the other sections the
scorers contribute, the systems' declarations with "not declared" shown plainly, power,
stability and the methodology that lets anyone reproduce the run. Several runs: a side by
side comparison with paired differences and verdicts, as `harness compare` computes them.
The plots are also written as PNG and SVG beside the page.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

from harness.report.i18n import translate_section
from harness.report.labels import card_currency, figure, interval, key_metrics_first, metric_label
from harness.report.markdown import DECLARATION_COLUMNS, grouped_sections
from harness.report.templating import ENV as _ENV

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Evaluation report", "decisions": "Decisions", "objectives": "Objectives (HAS 1.6)",
        "gates": "Gates", "results": "Results", "cell": "Each cell: value [95% CI]; n items. ⚠ n < 30: too few "
        "items to conclude. ★ best, and significantly better than every other system (paired bootstrap).",
        "metric": "Metric", "forest": "Figures with their 95% CI", "systems": "Systems under test",
        "systems_note": "What each provider declares (HAS 1.4 / 4.1).", "not_declared": "not declared",
        "models": "Models returned", "power": "Power", "stability": "Stability across repeats",
        "method": "Methodology", "reproduce": "Reproduce", "comparison": "Comparison with the baseline run",
        "difference": "Difference", "verdict": "Verdict", "baseline": "Baseline", "candidate": "Candidate",
        "filter": "Show", "all": "all", "items": "items", "language": "language", "data_class": "data class",
        "status": "Status", "value": "Value", "success": "Success", "stop": "Stop", "result": "Result",
        "why": "Why", "margin": "Margin", "detectable": "Detectable", "ci_methods": "Confidence intervals",
        "normalization": "Normalization", "scorers": "Scorers and versions", "data": "Data digests",
        "harness": "Harness", "run": "Run", "yes": "yes", "no": "no", "sections": "Details",
        "underpowered": "too few items to conclude at this margin", "adapter": "System", "task": "Task",
        "lang_note": "Report in English.", "transcripts": "Transcriptions, word by word",
        "history": "Over time (runs indexed by harness history)",
        "transcripts_note": "Reference and output after normalization, aligned: struck out what the system "
        "missed or got wrong, underlined what it wrote instead or added. Items with a critical medical error "
        "first.", "shown": "shown", "of": "of", "with_errors": "with an error",
    },
    "fr": {
        "title": "Rapport d'évaluation", "decisions": "Décisions", "objectives": "Objectifs (HAS 1.6)",
        "gates": "Seuils bloquants", "results": "Résultats", "cell": "Chaque case : valeur [IC à 95 %] ; n "
        "items. ⚠ n < 30 : trop peu d'items pour conclure. ★ meilleur, et significativement meilleur que "
        "chacun des autres systèmes (bootstrap apparié).",
        "metric": "Indicateur", "forest": "Indicateurs et intervalles de confiance à 95 %",
        "systems": "Systèmes évalués", "systems_note": "Ce que déclare chaque fournisseur (HAS 1.4 / 4.1).",
        "not_declared": "non déclaré", "models": "Modèles renvoyés", "power": "Puissance",
        "stability": "Stabilité entre répétitions", "method": "Méthode", "reproduce": "Reproduire",
        "comparison": "Comparaison avec l'exécution de référence", "difference": "Différence",
        "verdict": "Verdict", "baseline": "Référence", "candidate": "Candidat", "filter": "Afficher",
        "all": "tout", "items": "items", "language": "langue", "data_class": "classe de données",
        "status": "Statut", "value": "Valeur", "success": "Succès", "stop": "Arrêt", "result": "Résultat",
        "why": "Motif", "margin": "Marge", "detectable": "Détectable", "ci_methods": "Intervalles de confiance",
        "normalization": "Normalisation", "scorers": "Évaluateurs et versions", "data": "Empreintes des données",
        "harness": "Banc d'essai", "run": "Exécution", "yes": "oui", "no": "non", "sections": "Détails",
        "underpowered": "trop peu d'items pour conclure à cette marge", "adapter": "Système", "task": "Tâche",
        "lang_note": "Rapport en français.", "transcripts": "Transcriptions, mot à mot",
        "history": "Au fil du temps (exécutions indexées par harness history)",
        "transcripts_note": "Référence et sortie après normalisation, alignées : barré ce que le système a "
        "manqué ou déformé, souligné ce qu'il a écrit à la place ou ajouté. Les items avec une erreur médicale "
        "critique d'abord.", "shown": "affichés", "of": "sur", "with_errors": "avec une erreur",
    },
}
DECLARATIONS_FR = {"provider": "Fournisseur", "version": "Version", "hosting": "Hébergement",
                   "hds_certified": "HDS", "ce_marking": "Marquage CE", "data_clearance": "Données autorisées",
                   "intended_use": "Usage prévu", "contact": "Contact", "current_practice": "Pratique actuelle"}
STATUS_FR = {"met": "atteint", "not met": "non atteint", "stop": "ARRÊT", "inconclusive": "non concluant",
             "no data": "pas de données"}
#: forest plots per task: every quality metric (key ones first), up to this many
PLOTS_PER_TASK = 24


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "x"


def _figure_bytes(fig: Any) -> tuple[bytes, bytes]:
    import matplotlib.pyplot as plt

    svg, png = io.BytesIO(), io.BytesIO()
    # no dates in the files: the same run gives the same bytes
    fig.savefig(svg, format="svg", metadata={"Date": None})
    fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return svg.getvalue(), png.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text as text (a third of the size of glyph outlines) and fixed ids: same run, same bytes
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "avec-harness"})
    return plt


def error_class_plot(by_kind: dict[str, int], title: str) -> tuple[bytes, bytes]:
    """How many errors of each class a system made (a medical scorer's `by_kind`)."""
    plt = _pyplot()
    kinds = sorted(by_kind, key=lambda k: (-by_kind[k], k))
    fig, ax = plt.subplots(figsize=(6.4, 0.4 * len(kinds) + 1.0))
    ax.barh(range(len(kinds)), [by_kind[k] for k in kinds], color="#a33")
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _figure_bytes(fig)


def forest_plot(rows: list[dict[str, Any]], label: str) -> tuple[bytes, bytes]:
    """One metric across systems: value and 95% CI per system (SVG, PNG)."""
    plt = _pyplot()
    shown = [r for r in rows if r["value"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(shown) + 1.0))
    for y, r in enumerate(shown):
        low = r["ci_low"] if r["ci_low"] is not None else r["value"]
        high = r["ci_high"] if r["ci_high"] is not None else r["value"]
        ax.errorbar([r["value"]], [y], xerr=[[r["value"] - low], [high - r["value"]]], fmt="o", color="#1f4e79",
                    capsize=4)
    ax.set_yticks(range(len(shown)), [f"{r['adapter']} (n={r['n']})" for r in shown])
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _figure_bytes(fig)


def _task_tables(card: dict[str, Any], lang: str, currency: str | None) -> list[dict[str, Any]]:
    best = {(b["task"], b["metric"]): b["best"] for b in card.get("best", [])}
    out = []
    for task, info in card["tasks"].items():
        rows = [r for r in card["rows"] if r["task"] == task]
        adapters = list(dict.fromkeys(r["adapter"] for r in rows))
        metrics = list(dict.fromkeys(r["metric"] for r in sorted(rows, key=lambda r: r["operational"])))
        lines = []
        for metric in metrics:
            cells = []
            arrow = ""
            for a in adapters:
                r = next((x for x in rows if x["adapter"] == a and x["metric"] == metric), None)
                if r is None or r["value"] is None:
                    cells.append({"text": "—", "best": False, "n": r["n"] if r else 0, "small": False})
                    continue
                arrow = "↑" if r["higher_is_better"] else "↓"
                cells.append({"text": f"{figure(r['value'])} {interval(r['ci_low'], r['ci_high'])}",
                              "n": r["n"], "small": r["small_n"], "best": best.get((task, metric)) == a})
            operational = next(x["operational"] for x in rows if x["metric"] == metric)
            lines.append({"label": f"{metric_label(metric, lang, currency)} {arrow}", "id": metric, "cells": cells,
                          "operational": operational})
        out.append({"task": task, "info": info, "adapters": adapters, "lines": lines})
    return out


def _plots(card: dict[str, Any], lang: str, folder: Path | None, currency: str | None) -> list[dict[str, Any]]:
    plots = []
    for task in card["tasks"]:
        rows = [r for r in card["rows"] if r["task"] == task]
        for metric in key_metrics_first(card, task)[:PLOTS_PER_TASK]:
            label = metric_label(metric, lang, currency)
            svg, png = forest_plot([r for r in rows if r["metric"] == metric], label)
            name = f"forest-{_slug(task)}-{_slug(metric)}"
            plots.append(_plot_entry(task, label, name, svg, png, folder))
    for sec in card.get("sections", []):
        by_kind = (sec.get("data") or {}).get("by_kind")
        if isinstance(by_kind, dict) and by_kind and all(isinstance(v, int) for v in by_kind.values()):
            title = f"{sec['title']} — {sec['adapter']}"
            svg, png = error_class_plot(by_kind, title)
            name = f"errors-{_slug(sec['task'])}-{_slug(sec['adapter'])}-{_slug(sec['scorer'])}"
            plots.append(_plot_entry(sec["task"], title, name, svg, png, folder))
    return plots


def _plot_entry(task: str, label: str, name: str, svg: bytes, png: bytes, folder: Path | None) -> dict[str, Any]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.svg").write_bytes(svg)
        (folder / f"{name}.png").write_bytes(png)
    return {"task": task, "label": label, "file": name,
            "data": "data:image/svg+xml;base64," + base64.b64encode(svg).decode()}


def _history_plots(run_dir: Path, card: dict[str, Any], lang: str, folder: Path | None,
                   currency: str | None) -> list[dict[str, Any]]:
    """Where `harness history` has indexed the runs beside this one: the key figures over time."""
    db = run_dir.parent / "history.sqlite"
    if not db.is_file():
        return []
    from harness.history import history_figure, series

    _pyplot()  # the same deterministic SVG settings as the other plots
    data = series(db)
    out = []
    for task in card["tasks"]:
        for metric in key_metrics_first(card, task)[:2]:
            points = [p for p in data.get((task, metric), []) if p[0] in card["adapters"]]
            if len({p[1] for p in points}) < 2:
                continue
            label = metric_label(metric, lang, currency)
            svg, png = _figure_bytes(history_figure(task, metric, points, label))
            out.append(_plot_entry(task, label, f"history-{_slug(task)}-{_slug(metric)}", svg, png, folder))
    return out


#: most items shown per task × system in the transcription view; the rest are in scores.jsonl
TRANSCRIPTS_SHOWN = 100
_MEDICAL = ("drug_names", "doses", "critical_terms")


def _aligned(ref: str, hyp: str) -> tuple[list[tuple[str, str, str]], set[str]]:
    """Reference and output aligned word by word: (class, reference words, output words) with
    class eq, sub, del or ins; and the error classes present."""
    from rapidfuzz.distance import Levenshtein

    r, h = ref.split(), hyp.split()
    out: list[tuple[str, str, str]] = []
    classes: set[str] = set()
    ops: list[tuple[str, int, int, int, int]] = Levenshtein.opcodes(r, h).as_list()  # type: ignore[assignment]
    for tag, i1, i2, j1, j2 in ops:
        cls = {"equal": "eq", "replace": "sub", "delete": "del", "insert": "ins"}[tag]
        if cls != "eq":
            classes.add(cls)
        out.append((cls, " ".join(r[i1:i2]), " ".join(h[j1:j2])))
    return out, classes


def _transcripts(run_dir: Path, card: dict[str, Any]) -> list[dict[str, Any]]:
    """The transcription view, from the record alone: the normalized reference and output the
    WER scorer kept, aligned; items with a critical medical error first, then the most errors."""
    from harness.record import ScoreLine, iter_lines
    from harness.store import SCORES

    tasks = {t for t, info in card["tasks"].items() if info["kind"] == "transcription"}
    if not tasks:
        return []
    entries: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in iter_lines(run_dir / SCORES, ScoreLine):
        if line.task not in tasks or not isinstance(line.details.get("wer"), dict):
            continue
        wer = line.details["wer"]
        if "ref_norm" not in wer:
            continue
        segments, classes = _aligned(wer["ref_norm"], wer.get("hyp_norm", ""))
        findings = [f for scorer in _MEDICAL for f in ((line.details.get(scorer) or {}).get("findings") or [])
                    if isinstance(f, dict)]
        classes |= {str(f.get("kind")) for f in findings}
        critical = sum(1 for f in findings if f.get("severity") == "critical")
        errors = sum(1 for c, _, _ in segments if c != "eq")
        entries.setdefault((line.task, line.adapter), []).append({
            "item": line.item_id + (f"#{line.repeat}" if line.repeat else ""), "segments": segments,
            "findings": findings, "classes": sorted(classes), "order": (-critical, -len(findings), -errors,
                                                                        line.item_id, line.repeat)})
    out = []
    for (task, adapter), items in entries.items():
        items.sort(key=lambda e: e["order"])
        shown = [e for e in items if e["classes"]][:TRANSCRIPTS_SHOWN]
        out.append({"task": task, "adapter": adapter, "items": shown, "total": len(items),
                    "with_errors": sum(1 for e in items if e["classes"]),
                    "classes": sorted({c for e in shown for c in e["classes"]})})
    return out


def _methodology(card: dict[str, Any], manifest: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    methods = sorted({r["ci_method"] for r in card["rows"] if r.get("ci_method")})
    return {
        "ci_methods": methods,
        "normalization": {t: i["normalization"] for t, i in card["tasks"].items()},
        "scorers": {t: i.get("scorers", {}) for t, i in manifest["tasks"].items()},
        "digests": {t: i.get("dataset_digest") for t, i in manifest["tasks"].items() if i.get("dataset_digest")},
        "files": len(manifest.get("file_hashes") or {}),
        "metric_methods": card.get("methods", []),
        "commands": [f"harness run {manifest['suite']['path']}",
                     f"harness report {run_dir} --format html --lang {{lang}}"],
    }


def render_committee(run_dirs: list[Path], lang: str = "en", plots_folder: Path | None = None) -> str:
    """The page for one run, or the first run compared with the others."""
    from harness.metrics import build_scorecard
    from harness.store import read_manifest

    if lang not in TEXT:
        raise ValueError(f"--lang: expected one of {', '.join(TEXT)}, found {lang!r}")
    card = build_scorecard(run_dirs[0])
    manifest = read_manifest(run_dirs[0])
    currency = card_currency(card)
    comparisons = []
    if len(run_dirs) > 1:
        from harness.compare import compare_runs

        for other in run_dirs[1:]:
            comparisons.append(compare_runs(run_dirs[0], other).to_dict())
    methodology = _methodology(card, manifest, run_dirs[0])
    methodology["commands"] = [c.replace("{lang}", lang) for c in methodology["commands"]]
    exit_code = 1 if card["gates_failed"] else 0
    sections = [translate_section(sec, lang) for sec in card.get("sections", [])]
    return _ENV.get_template("committee.html.j2").render(
        card=card, t=TEXT[lang], lang=lang, exit_code=exit_code,
        tables=_task_tables(card, lang, currency), plots=_plots(card, lang, plots_folder, currency),
        sections=grouped_sections(sections),
        groups=list(dict.fromkeys(sec["group"] or sec["title"] for sec in sections)),
        declaration_columns=[(k, DECLARATIONS_FR.get(k, title) if lang == "fr" else title)
                             for k, title in DECLARATION_COLUMNS],
        status_words=STATUS_FR if lang == "fr" else {}, comparisons=comparisons, methodology=methodology,
        transcripts=_transcripts(run_dirs[0], card),
        history=_history_plots(run_dirs[0], card, lang, plots_folder, currency),
        metric_label=lambda m: metric_label(m, lang, currency), figure=figure, interval=interval)


def write_committee_report(run_dirs: list[Path], out: Path, lang: str = "en") -> Path:
    """Write the page as `out` (a file) with its plots in `<out stem>-plots/`, PNG and SVG."""
    plots = out.parent / f"{out.stem}-plots"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_committee(run_dirs, lang, plots), encoding="utf-8")
    return out

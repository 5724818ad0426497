"""The scorecard as Markdown, readable by a committee without the code."""

from __future__ import annotations

from typing import Any

from harness.report.text import md

DECLARATION_COLUMNS = (("provider", "Provider"), ("version", "Version"), ("hosting", "Hosting"),
                       ("hds_certified", "HDS"), ("ce_marking", "CE marking"),
                       ("data_clearance", "Data clearance"), ("intended_use", "Intended use"),
                       ("contact", "Contact"), ("current_practice", "Current practice"))


def _ci(row: dict[str, Any]) -> str:
    if row["ci_low"] is None:
        return "—"
    return f"[{md(row['ci_low'])}, {md(row['ci_high'])}]"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (cells already formatted), followed by a blank line."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def grouped_sections(sections: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Sections under one heading per (group, task, adapter), in the scorecard's order."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for sec in sections:
        groups.setdefault((sec["group"] or sec["title"], sec["task"], sec["adapter"]), []).append(sec)
    return [(f"{g} — {t} × {a}", secs) for (g, t, a), secs in groups.items()]


def _sections(sections: list[dict[str, Any]]) -> list[str]:
    """Every scorer's sections, drawn the same way whatever the scorer."""
    out: list[str] = []
    for heading, secs in grouped_sections(sections):
        out += [f"## {md(heading)}", ""]
        for sec in secs:
            if len(secs) > 1:
                out += [f"### {md(sec['title'])}", ""]
            for paragraph in sec["paragraphs"]:
                out += [md(paragraph), ""]
            for table in sec["tables"]:
                out += _table([md(h) for h in table["headers"]], [[md(c) for c in row] for row in table["rows"]])
            out += [f"- {md(b)}" for b in sec["bullets"]]
            if sec["bullets"]:
                out.append("")
    return out


def _cache_line(card: dict[str, Any], task: str) -> list[str]:
    """How many answers came from the response cache: their latency and cost are those of
    the call that first produced them, not of this run."""
    out = []
    for r in card.get("responses", []):
        if r["task"] == task and r["from_cache"]:
            out.append(f"{md(r['adapter'])}: {r['from_cache']} of {r['responses']} answers from the response "
                       "cache (latency and cost are those of the original call).")
    return [*out, ""] if out else []


def render_markdown(card: dict[str, Any]) -> str:
    out = [f"# Scorecard — {md(card['suite'])}", ""]
    if card.get("description"):
        out += [md(card["description"]), ""]
    out += [f"Run {md(card['run_id'])} · status **{md(card['status'])}** · {md(card['started_at'])} → "
            f"{md(card['ended_at'])}",
            f"· avec-harness {md(card['harness_version'])}"
            + (f" · git {md(card['git_revision'][:10])}" if card.get("git_revision") else ""),
            ""]
    out += ["## Systems under test", "",
            "What each provider declares (HAS 1.4 / 4.1), and the model ids the systems returned.", "",
            "| Adapter | Kind | " + " | ".join(t for _, t in DECLARATION_COLUMNS) + " | Models returned |",
            "|" + "---|" * (len(DECLARATION_COLUMNS) + 3)]
    for name, a in card["adapters"].items():
        d = a["declarations"]
        out.append(f"| {md(name)} | {md(a['kind'])} | " + " | ".join(md(d.get(k)) for k, _ in DECLARATION_COLUMNS)
                   + f" | {md(', '.join(a['provider_models']) or None)} |")
    out += ["", "## Results", "",
            "Every figure with its 95% confidence interval and n (items × repeats scored). "
            "⚠ marks n < 30: too few items to conclude.", ""]
    for task, info in card["tasks"].items():
        out += [f"### {md(task)}", "",
                f"{md(info['kind'])} · language {md(info['language'])} · data class {md(info['data_class'])} · "
                f"{info['items']} items · normalization: {md(info.get('normalization'))}", "",
                *_cache_line(card, task),
                "| Metric | Adapter | Value | 95% CI | n | |", "|---|---|---|---|---|---|"]
        rows = [r for r in card["rows"] if r["task"] == task]
        for r in sorted(rows, key=lambda r: (r["operational"], r["metric"], r["adapter"])):
            arrow = "↑" if r["higher_is_better"] else "↓"
            flag = "⚠" if r["small_n"] else ""
            out.append(f"| {md(r['metric'])} {arrow} | {md(r['adapter'])} | {md(r['value'])} | {_ci(r)} "
                       f"| {r['n']} | {flag} |")
        out.append("")
    out += _sections(card.get("sections", []))
    if card["objectives"]:
        out += ["## Objectives (HAS 1.6: success and stop criteria set before the run)", ""]
        out += _table(["Metric", "Adapter", "Value", "Success", "Stop", "Status", "Conclusive"],
                      [[md(o["metric"]), md(o["adapter"]), md(o["value"]), md(o["success"]), md(o["stop"]),
                        f"**{md(o['status'])}**", md(o.get("conclusive"))] for o in card["objectives"]])
    if card["gates"]:
        verdict = "all passed" if not card["gates_failed"] else f"{card['gates_failed']} failed"
        out += [f"## Gates ({verdict})", ""]
        out += _table(["Metric", "Adapter", "Result", "Why"],
                      [[md(g["metric"]), md(g["adapter"]), "pass" if g["passed"] else "**FAIL**", md(g["reason"])]
                       for g in card["gates"]])
    if card.get("power"):
        out += ["## Power", "", "Smallest difference a paired comparison at this n detects (α 0.05, power 0.8), "
                "beside the margin that matters.", ""]
        out += _table(["Metric", "Adapter", "Margin", "Detectable", "n", ""],
                      [[md(p["metric"]), md(p["adapter"]), md(p["margin"]), md(p["mdd"]), p["n"],
                        "⚠ too few items to conclude at this margin" if p["underpowered"] else "ok"]
                       for p in card["power"]])
    if card.get("stability"):
        out += ["## Stability across repeats", ""]
        out += _table(["Task", "Metric", "Adapter", "Repeats", "Items", "Agreement", "Flip rate", "Run-to-run SD"],
                      [[md(s["task"]), md(s["metric"]), md(s["adapter"]), s["repeats"], s["items"], md(s["agreement"]),
                        md(s["flip_rate"]), md(s["run_to_run_sd"])] for s in card["stability"]])
    out += ["## Method", "",
            "- Ratios (WER, CER) are corpus-level: total errors / total reference units.",
            "- Proportions: Wilson interval; when items share a cluster (a consultation, the repeats of an item), "
            "Wilson on the effective sample size (Kish). Means and ratios: bootstrap (2,000 resamples of whole "
            "clusters), delta method from 1,000 clusters on.",
            "- Quality metrics are computed on the items that returned an output; `error_rate` and "
            "`missing_rate` count the others and must be read beside them.",
            "- Corpus metrics (BLEU, chrF, TER) reduce statistics summed over items, as sacrebleu does; "
            "their CIs resample items (1 bootstrap resample = a new corpus).",
            *(f"- {md(m['task'])} / {md(m['metric'])}: {md(m['method'])}" for m in card.get("methods") or []), ""]
    return "\n".join(out)

"""The scorecard as Markdown, readable by a committee without the code."""

from __future__ import annotations

from typing import Any

DECLARATION_COLUMNS = (("provider", "Provider"), ("version", "Version"), ("hosting", "Hosting"),
                       ("hds_certified", "HDS"), ("ce_marking", "CE marking"),
                       ("data_clearance", "Data clearance"), ("intended_use", "Intended use"),
                       ("contact", "Contact"))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _ci(row: dict[str, Any]) -> str:
    if row["ci_low"] is None:
        return "—"
    return f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (cells already formatted), followed by a blank line."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())


def render_markdown(card: dict[str, Any]) -> str:
    out = [f"# Scorecard — {card['suite']}", ""]
    if card.get("description"):
        out += [card["description"], ""]
    out += [f"Run `{card['run_id']}` · status **{card['status']}** · {card['started_at']} → {card['ended_at']}",
            f"· avec-harness {card['harness_version']}"
            + (f" · git {card['git_revision'][:10]}" if card.get("git_revision") else ""),
            ""]
    out += ["## Systems under test", "",
            "What each provider declares (HAS 1.4 / 4.1), and the model ids the systems returned.", "",
            "| Adapter | Kind | " + " | ".join(t for _, t in DECLARATION_COLUMNS) + " | Models returned |",
            "|" + "---|" * (len(DECLARATION_COLUMNS) + 3)]
    for name, a in card["adapters"].items():
        d = a["declarations"]
        out.append(f"| {name} | {a['kind']} | " + " | ".join(fmt(d.get(k)) for k, _ in DECLARATION_COLUMNS)
                   + f" | {fmt(', '.join(a['provider_models']) or None)} |")
    out += ["", "## Results", "",
            "Every figure with its 95% confidence interval and n (items × repeats scored). "
            "⚠ marks n < 30: too few items to conclude.", ""]
    for task, info in card["tasks"].items():
        out += [f"### {task}", "",
                f"{info['kind']} · language {info['language']} · data class {info['data_class']} · "
                f"{info['items']} items", "",
                "| Metric | Adapter | Value | 95% CI | n | |", "|---|---|---|---|---|---|"]
        rows = [r for r in card["rows"] if r["task"] == task]
        for r in sorted(rows, key=lambda r: (r["operational"], r["metric"], r["adapter"])):
            arrow = "↑" if r["higher_is_better"] else "↓"
            flag = "⚠" if r["small_n"] else ""
            out.append(f"| {r['metric']} {arrow} | {r['adapter']} | {fmt(r['value'])} | {_ci(r)} "
                       f"| {r['n']} | {flag} |")
        out.append("")
    for m in card.get("medical_findings", []):
        out += [f"## Errors that matter in medicine — {m['task']} × {m['adapter']}", "", _counts(m["by_kind"]), ""]
        if m["top_drug_errors"]:
            out += _table(["Reference drug", "Heard / written", "Times", "Why flagged"],
                          [[fmt(e["reference"]), fmt(e["output"]), e["count"], fmt(e["detail"])]
                           for e in m["top_drug_errors"]])
        for kind, examples in m["examples"].items():
            shown = "; ".join(f"{fmt(e['reference'])} → {fmt(e['output'])} ({e['item_id']})" for e in examples)
            out.append(f"- {kind.replace('_', ' ')}: {shown}")
        out.append("")
    for c in card.get("citations", []):
        out += [f"## Cited sources — {c['task']} × {c['adapter']}", "", _counts(c["counts"]), ""]
        if c["flagged"]:
            out += _table(["Item", "Cited", "Verdict", "Why", "Outdated"],
                          [[f["item_id"], fmt(f["cited"]), f"**{f['status']}**", fmt(f["reason"]),
                            fmt(f["outdated"])] for f in c["flagged"]])
    if card["objectives"]:
        out += ["## Objectives (HAS 1.6: success and stop criteria set before the run)", ""]
        out += _table(["Metric", "Adapter", "Value", "Success", "Stop", "Status", "Conclusive"],
                      [[o["metric"], o["adapter"], fmt(o["value"]), fmt(o["success"]), fmt(o["stop"]),
                        f"**{o['status']}**", fmt(o.get("conclusive"))] for o in card["objectives"]])
    if card["gates"]:
        verdict = "all passed" if not card["gates_failed"] else f"{card['gates_failed']} failed"
        out += [f"## Gates ({verdict})", ""]
        out += _table(["Metric", "Adapter", "Result", "Why"],
                      [[g["metric"], g["adapter"], "pass" if g["passed"] else "**FAIL**", fmt(g["reason"])]
                       for g in card["gates"]])
    if card.get("power"):
        out += ["## Power", "", "Smallest difference a paired comparison at this n detects (α 0.05, power 0.8), "
                "beside the margin that matters.", ""]
        out += _table(["Metric", "Adapter", "Margin", "Detectable", "n", ""],
                      [[p["metric"], p["adapter"], fmt(p["margin"]), fmt(p["mdd"]), p["n"],
                        "⚠ too few items to conclude at this margin" if p["underpowered"] else "ok"]
                       for p in card["power"]])
    if card.get("stability"):
        out += ["## Stability across repeats", ""]
        out += _table(["Task", "Metric", "Adapter", "Repeats", "Items", "Agreement", "Flip rate", "Run-to-run SD"],
                      [[s["task"], s["metric"], s["adapter"], s["repeats"], s["items"], fmt(s["agreement"]),
                        fmt(s["flip_rate"]), fmt(s["run_to_run_sd"])] for s in card["stability"]])
    out += ["## Method", "",
            "- Ratios (WER, CER) are corpus-level: total errors / total reference units.",
            "- Proportions: Wilson interval; when items share a cluster (a consultation, the repeats of an item), "
            "Wilson on the effective sample size (Kish). Means and ratios: bootstrap (2,000 resamples of whole "
            "clusters), delta method from 1,000 clusters on.",
            "- Quality metrics are computed on the items that returned an output; `error_rate` and "
            "`missing_rate` count the others and must be read beside them.", ""]
    return "\n".join(out)

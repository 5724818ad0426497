"""`harness compare` output: Markdown (terminal and CI job summary) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.compare import Comparison
from harness.report.text import fmt, md

MAX_FLIPS = 20


def _diff(m: Any) -> str:
    if m.difference is None:
        return "—"
    return f"{m.difference:+.4g} [{m.ci_low:+.4g}, {m.ci_high:+.4g}]"


def render_comparison(c: Comparison) -> str:
    out = ["# Comparison", "", f"Baseline {md(c.baseline)} → candidate {md(c.candidate)}", ""]
    if not c.comparable:
        out += ["**Not comparable:**", ""] + [f"- {md(p)}" for p in c.problems] + [""]
        return "\n".join(out)
    regressions = c.regressions
    verdict = (f"**{len(regressions)} regression(s)**: " + ", ".join(f"{md(r.task)}/{md(r.metric)} ({md(r.adapter)})"
                                                                     for r in regressions)
               if regressions else "No regression.")
    out += [verdict, ""]
    out += [f"- warning: {md(w)}" for w in c.warnings]
    if c.warnings:
        out.append("")
    out += ["| Task | Metric | Adapter | Baseline | Candidate | Δ [95% CI] | p (Holm) | Test | Margin | n | Verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in c.metrics:
        arrow = "↑" if m.higher_is_better else "↓"
        mark = f"**{m.verdict}**" if m.verdict in ("regression", "improvement") else m.verdict
        out.append(f"| {md(m.task)} | {md(m.metric)} {arrow} | {md(m.adapter)} | {md(m.baseline)} | "
                   f"{md(m.candidate)} | {_diff(m)} | {md(m.p_adjusted, 3)} | {md(m.test)} | {md(m.margin)} | "
                   f"{m.n_paired} | {mark} |")
    flips = [m for m in c.metrics if m.flips and (m.flips["passed_to_failed"] or m.flips["failed_to_passed"])]
    if flips:
        out += ["", "## Items that flipped", ""]
        for m in flips:
            for label, ids in (("passed → failed", m.flips["passed_to_failed"]),
                               ("failed → passed", m.flips["failed_to_passed"])):
                if ids:
                    more = f" … and {len(ids) - MAX_FLIPS} more" if len(ids) > MAX_FLIPS else ""
                    out.append(f"- {md(m.task)}/{md(m.metric)}, {label} ({len(ids)}): "
                               + ", ".join(md(i) for i in ids[:MAX_FLIPS]) + more)
    out += ["", "A regression is significant after Holm's correction (α = 0.05) and its whole 95% CI is worse "
            "than the margin; an improvement likewise. Paired on the shared items.", ""]
    return "\n".join(out)


def write_junit(path: Path, suite_name: str, cases: list[dict[str, Any]]) -> None:
    """cases: {name, classname, failure (message or None), details}."""
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if c["failure"])))
    for case in cases:
        tc = ET.SubElement(ts, "testcase", name=case["name"], classname=case["classname"])
        if case["failure"]:
            f = ET.SubElement(tc, "failure", message=case["failure"])
            f.text = case.get("details") or case["failure"]
        elif case.get("details"):
            ET.SubElement(tc, "system-out").text = case["details"]
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def comparison_cases(c: Comparison) -> list[dict[str, Any]]:
    if not c.comparable:
        return [{"name": "comparable", "classname": "harness.compare", "failure": "; ".join(c.problems)}]
    return [{"name": f"{m.task}/{m.metric} [{m.adapter}]", "classname": "harness.compare",
             "failure": f"regression: {_diff(m)}, p={m.p_adjusted:.3g}, margin {m.margin:g}"
             if m.verdict == "regression" else None,
             "details": f"{m.verdict}: {_diff(m)}, p (Holm) = {fmt(m.p_adjusted, 3)}"} for m in c.metrics]


def gate_cases(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": f"{g['metric']} [{g['adapter']}]", "classname": "harness.gates",
             "failure": None if g["passed"] else str(g["reason"]), "details": str(g["reason"])}
            for g in card["gates"]]

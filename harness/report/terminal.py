"""What `harness run` prints: one screen (≤ 40 lines, ≤ 100 columns) that says what was
decided — objectives, gates, the exit code's reason — then the key figures of each task
with their CI and n, and where the full report is. The Markdown scorecard stays in
`scorecard.md` and `harness run --format md` prints it (CI summaries)."""

from __future__ import annotations

from typing import Any

from harness.report.labels import card_currency, figure, interval, key_metrics_first, metric_label

WIDTH = 100
MAX_LINES = 40
STATUS_MARK = {"met": "✔ met", "not met": "✘ not met", "stop": "■ STOP", "inconclusive": "? inconclusive",
               "no data": "– no data"}


def _clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _key_metrics(card: dict[str, Any], task: str, limit: int) -> list[str]:
    named = [r["metric"].split("/", 1)[1] for r in card["objectives"] + card["gates"]
             if r["metric"].split("/", 1)[0] == task]
    return key_metrics_first(card, task, named)[:limit]


def decision_lines(card: dict[str, Any], exit_code: int, shard: bool = False) -> list[str]:
    """Objectives, gates and the exit code's reason."""
    out = []
    if card["objectives"]:
        out.append("Objectives (HAS 1.6)")
        for o in card["objectives"]:
            criteria = ", ".join(x for x in (f"success {o['success']}" if o.get("success") else "",
                                             f"stop {o['stop']}" if o.get("stop") else "") if x)
            line = f"  {STATUS_MARK.get(o['status'], o['status']):<15} {o['metric']} ({o['adapter']}) = " \
                   f"{figure(o['value'])}"
            # the criteria on the same line when they fit, else on the next: never cut
            out += [f"{line}; {criteria}"] if len(line) + len(criteria) + 2 <= WIDTH else \
                [_clip(line), " " * 18 + criteria]
    if card["gates"]:
        out.append("Gates")
        for g in card["gates"]:
            out.append(_clip(f"  {'✔ pass' if g['passed'] else '✘ FAIL':<15} {g['metric']} ({g['adapter']}): "
                             f"{g['reason']}"))
    failed = card["gates_failed"]
    if shard:
        reason = "a shard: gates are decided on the merged run (harness merge)"
    elif exit_code:
        reason = f"{failed} gate(s) failed"
    else:
        reason = "every gate passed" if card["gates"] else "no gate declared"
    out.append(f"Exit {exit_code}: {reason}")
    return out


def task_lines(card: dict[str, Any], task: str, limit: int, currency: str | None) -> list[str]:
    """One compact table: key metrics × systems, value [95% CI], n, ⚠ for small n."""
    info = card["tasks"][task]
    rows = [r for r in card["rows"] if r["task"] == task]
    adapters = list(dict.fromkeys(r["adapter"] for r in rows))
    metrics = _key_metrics(card, task, limit)
    # failed and missing answers whenever there are some: "Accuracy —" alone hid that every
    # request had failed
    metrics += [m for m in ("error_rate", "missing_rate")
                if m not in metrics and any(r["metric"] == m and r["value"] for r in rows)]
    # latency and cost when the screen has room for them after the quality figures
    if limit >= 4:
        metrics += [m for m in ("latency_s", "cost") if m not in metrics and any(r["metric"] == m for r in rows)]
    hidden = len({r["metric"] for r in rows}) - len(metrics)
    items = f"{info['items']} item" + ("" if info["items"] == 1 else "s")
    header = f"{task} · {info['kind']} · {info['language']} · {items}" + (
        f" (+{hidden} figures in the report)" if hidden > 0 else "")
    label_width = 32
    cell_width = (WIDTH - label_width) // max(1, len(adapters))
    # n once per system when every figure of the table has the same (the usual case)
    shown = [r for r in rows if r["metric"] in metrics and r["value"] is not None]
    common_n = {a: {r["n"] for r in shown if r["adapter"] == a} for a in adapters}
    n_text = [f"n = {next(iter(ns))}" + (" ⚠" if next(iter(ns)) < 30 else "") if len(ns) == 1 else ""
              for ns in common_n.values()]
    names = [f"{a} ({n})" if n else a for a, n in zip(adapters, n_text, strict=True)]
    if all(len(name) < cell_width for name in names):  # name and n on one line when they fit
        lines = [_clip(header), _clip(" " * label_width + "".join(n.ljust(cell_width) for n in names)).rstrip()]
    else:
        lines = [_clip(header),
                 _clip(" " * label_width + "".join(a[: cell_width - 1].ljust(cell_width) for a in adapters)).rstrip(),
                 _clip(" " * label_width + "".join(n.ljust(cell_width) for n in n_text)).rstrip()]
    for metric in metrics:
        arrow = ""
        cells = []
        for adapter in adapters:
            r = next((x for x in rows if x["adapter"] == adapter and x["metric"] == metric), None)
            if r is None or r["value"] is None:
                cells.append("—".ljust(cell_width))
                continue
            arrow = "↑" if r["higher_is_better"] else "↓"
            scale = 1000 if metric == "cost" else 1  # a cost per item is a string of zeros
            low, high = (None if x is None else x * scale for x in (r["ci_low"], r["ci_high"]))
            text = f"{figure(r['value'] * scale)} {interval(low, high)}"
            if len(text) >= cell_width:  # no room for the CI: the value alone, never a cut number
                text = figure(r["value"] * scale)
            if len(common_n[adapter]) != 1:
                text += f" n={r['n']}" + (" ⚠" if r["small_n"] else "")
            cells.append(text[: cell_width - 1].ljust(cell_width))
        label = ("Cost per 1,000 items" + (f", {currency}" if currency else "") if metric == "cost"
                 else metric_label(metric, currency=currency))[: label_width - 3] + f" {arrow}"
        lines.append(_clip(label.ljust(label_width) + "".join(cells)).rstrip())
    return lines


def render_summary(card: dict[str, Any], run_dir: str, exit_code: int, shard: bool = False) -> str:
    """The one-screen summary of a run (plain text)."""
    head = [_clip(f"avec-harness · {card['suite']} · run {card['run_id']} · {card['status']}"), ""]
    decision = decision_lines(card, exit_code, shard)
    # the legend warns only when a figure is marked: on a million-item run it read as an alarm
    small = any(r["small_n"] for r in card["rows"])
    tail = ["", _clip(f"Full report: {run_dir}/report.html · scorecard.md · scorecard.json"),
            ("⚠ n < 30: too few items to conclude; e" if small else "E") + "very figure has its 95% CI in [ ]."]
    tasks = list(card["tasks"])
    currency = card_currency(card)
    budget = MAX_LINES - len(head) - len(decision) - len(tail) - 1
    # as many key metrics per task as fit on the screen
    for limit in (6, 5, 4, 3, 2, 1):
        blocks = [task_lines(card, t, limit, currency) for t in tasks]
        if sum(len(b) + 1 for b in blocks) <= budget:
            break
    body: list[str] = []
    for shown, block in enumerate(blocks):
        if len(body) + len(block) + 2 > budget:
            body.append(f"… {len(tasks) - shown} more task(s) in the report")
            break
        body += [*block, ""]
    return "\n".join(head + decision + [""] + body + tail[1:]).rstrip() + "\n"


def colorize(text: str) -> None:
    """Print the summary with colours on a terminal (rich); the words stay the same."""
    from rich.console import Console
    from rich.markup import escape

    styles = {"✔": "green", "✘": "red", "■": "bold red", "?": "yellow", "⚠": "yellow"}
    console = Console(highlight=False, soft_wrap=True)
    for line in text.splitlines():
        stripped = line.lstrip()
        style = next((s for mark, s in styles.items() if stripped.startswith(mark)), None)
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))

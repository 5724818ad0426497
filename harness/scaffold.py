"""`harness init`: a new evaluation written down before it runs (HAS 1.6: state the
objective, the indicators, the success and stop criteria and the sample size first).

Writes a suite, a task with a few example rows, and a replay system with example outputs,
so that `harness validate` and `harness run` work at once; the user then replaces the rows
and the system. The sample size comes from the paired power computation of `harness plan`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.errors import ConfigError, Problem
from harness.power import items_for_proportion_drop

#: kind → (default indicator, its direction, example rows, example outputs)
KIND_TEMPLATES: dict[str, tuple[str, str, list[dict[str, str]], list[str]]] = {
    "qa": ("accuracy", ">=", [
        {"id": "q1", "question": "Which drug is a look-alike of hydroxyzine? A) hydralazine B) ibuprofen",
         "answer": "A"},
        {"id": "q2", "question": "5 µg is: A) 0.005 mg B) 5 mg", "answer": "A"},
        {"id": "q3", "question": "Methotrexate for arthritis is taken: A) daily B) weekly", "answer": "B"},
    ], ["A", "B", "A"]),
    "generation": ("rouge_l", ">=", [
        {"id": "g1", "source": "Pneumopathie droite traitée par amoxicilline 1 g trois fois par jour pendant 7 "
                               "jours. Apyrexie à J3.",
         "reference": "Pneumopathie droite, amoxicilline 1 g trois fois par jour 7 jours, apyrexie à J3."},
        {"id": "g2", "source": "Chute sans fracture. Kinésithérapie prescrite.",
         "reference": "Chute sans fracture, kinésithérapie."},
    ], ["Pneumopathie droite traitée par amoxicilline 1 g trois fois par jour pendant 7 jours.",
        "Chute sans fracture ; kinésithérapie prescrite."]),
    "translation": ("chrf", ">=", [
        {"id": "t1", "source": "Prenez un comprimé matin et soir.",
         "reference": "Take one tablet in the morning and one in the evening."},
        {"id": "t2", "source": "Ne conduisez pas pendant 24 heures.", "reference": "Do not drive for 24 hours."},
    ], ["Take one tablet morning and evening.", "Do not drive for 24 hours."]),
}
SCORERS = {"qa": ["exact_match"], "generation": ["rouge_l", "chrf", "numeric_fidelity", "doses"],
           "translation": ["chrf", "bleu", "ter", "doses", "numeric_fidelity"]}
PROMPTS = {"qa": "{{ question }}\nAnswer with the letter only.", "generation": "{{ source }}",
           "translation": "{{ source }}"}


@dataclass
class InitAnswers:
    """What `harness init` asks (HAS 1.6)."""

    name: str
    kind: str
    objective: str
    metric: str
    success: str
    stop: str | None
    baseline: float | None = None     # today's rate of a 0/1 indicator
    drop: float | None = None         # the smallest change that matters
    language: str = "en"
    data_class: str = "public"

    def sample_size(self) -> int | None:
        """Items for a paired comparison to detect `drop` from `baseline` (α 0.05, power 0.8)."""
        if self.baseline is None or self.drop is None:
            return None
        return items_for_proportion_drop(self.baseline, self.drop)


def scaffold(answers: InitAnswers, folder: Path) -> list[Path]:
    """Write the suite, task, example data and replay system under `folder`; refuse to
    overwrite anything (ConfigError, exit 2)."""
    if answers.kind not in KIND_TEMPLATES:
        raise ConfigError([Problem("--kind", "", f"expected one of {', '.join(KIND_TEMPLATES)}",
                                   found=answers.kind,
                                   hint="transcription: start from examples/consultation (audio files are needed)")])
    _, _, rows, outputs = KIND_TEMPLATES[answers.kind]
    task_dir = folder / "tasks" / answers.name
    files = {
        folder / "suite.yaml": None, task_dir / "task.yaml": None, task_dir / "items.jsonl": None,
        folder / "systems" / "first-system.yaml": None, folder / "systems" / "first-system.jsonl": None,
    }
    existing = [p for p in files if p.exists()]
    if existing:
        raise ConfigError([Problem(str(p), "", "already exists; harness init never overwrites",
                                   hint="choose an empty folder") for p in existing])
    n = answers.sample_size()
    task: dict[str, object] = {
        "name": answers.name, "kind": answers.kind, "description": answers.objective,
        "language": answers.language, "data_class": answers.data_class,
        "dataset": {"path": "items.jsonl", **({"fields": {"reference": "answer"}} if answers.kind == "qa" else {})},
        "prompt": PROMPTS[answers.kind],
        "scorers": SCORERS[answers.kind],
    }
    if answers.kind == "qa":
        task["choices"] = ["A", "B", "C", "D"]
    objective: dict[str, object] = {"metric": f"{answers.name}/{answers.metric}", "success": answers.success}
    if answers.stop:
        objective["stop"] = answers.stop
    suite: dict[str, object] = {
        "name": answers.name,
        "description": answers.objective,
        "tasks": [f"tasks/{answers.name}/task.yaml"],
        "adapters": ["systems/first-system.yaml"],
        "objectives": [objective],
        "output_dir": "runs",
    }
    plan = (f"# Sample size: {n} items to detect a drop of {answers.drop:g} from {answers.baseline:g} "
            f"(paired, α 0.05, power 0.8; `harness plan`).\n" if n is not None else
            "# Sample size: run `harness plan --baseline RATE --drop DELTA` and put that many items in the task.\n")
    header = (f"# Objective (HAS 1.6): {answers.objective}\n# Indicator: {answers.metric}; success {answers.success}"
              f"{'; stop ' + answers.stop if answers.stop else ''}.\n{plan}"
              "# Replace tasks/*/items.jsonl with your items and systems/ with the tools to compare.\n")
    folder.mkdir(parents=True, exist_ok=True)
    task_dir.mkdir(parents=True, exist_ok=True)
    (folder / "systems").mkdir(exist_ok=True)
    (folder / "suite.yaml").write_text(header + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True),
                                       encoding="utf-8")
    (task_dir / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (task_dir / "items.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                          encoding="utf-8")
    (folder / "systems" / "first-system.yaml").write_text(yaml.safe_dump({
        "name": "first-system", "kind": "replay",
        "description": "outputs exported from the tool under evaluation (replace with yours, or an openai-chat "
                       "adapter)",
        "settings": {"path": "first-system.jsonl"},
        "declarations": {"provider": "undeclared", "data_clearance": "public"}}, sort_keys=False),
        encoding="utf-8")
    (folder / "systems" / "first-system.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "output": o}, ensure_ascii=False) + "\n"
                for r, o in zip(rows, outputs, strict=True)), encoding="utf-8")
    return list(files)

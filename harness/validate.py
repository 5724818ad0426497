"""Load a suite and check everything a run needs, without calling any model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.adapters.base import ADAPTERS
from harness.config import (
    DATA_CLASSES,
    AdapterProfile,
    LoadedAdapter,
    LoadedSuite,
    LoadedTask,
    ScorerEntry,
    SuiteConfig,
    TaskConfig,
    parse_file,
    problems_from_validation,
    resolve,
)
from harness.data import scan_dataset
from harness.errors import ConfigError, Problem, did_you_mean
from harness.heap import release_freed_memory
from harness.kinds import KINDS, renders_with_jinja
from harness.paths import Roots
from harness.registry import Registry
from harness.scoring.base import OPERATIONAL_METRICS, SCORERS, CheckContext, MetricSpec
from harness.watchdog import TimeLimitExceeded, Watchdog


@dataclass
class Validation:
    suite: LoadedSuite
    item_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth knowing, not errors (recorded in the manifest)
    #: audio tasks → whether some adapter reads the audio (False: every adapter replays outputs)
    audio_read: dict[str, bool] = field(default_factory=dict)
    #: data sent above an adapter's declared clearance under a written override (HAS 2.4)
    clearance_overrides: list[dict[str, Any]] = field(default_factory=list)


def task_scorers(task: TaskConfig) -> list[str]:
    """Names of the task's scorers, in order."""
    entries = task.scorers if task.scorers is not None else KINDS[task.kind].default_scorers
    return [e if isinstance(e, str) else e.name for e in entries]


def task_metrics(task: LoadedTask) -> list[MetricSpec]:
    """Every metric a task reports: its scorers' (which may depend on their settings, e.g.
    one WER per named speaker) and the operational ones."""
    specs: list[MetricSpec] = []
    for name, settings in task.scorers:
        specs.extend(SCORERS.get(name).metrics_for(settings))
    return specs + list(OPERATIONAL_METRICS)


def _load_task(path: Path, problems: list[Problem], roots: Roots, notes: list[str]) -> LoadedTask | None:
    try:
        config, lines = parse_file(path, TaskConfig, "task file")
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    task = LoadedTask(config, path, lines)
    file = str(path)

    def confine(target: Path, field: str) -> None:
        problem = roots.problem(target, file, field, lines.get(tuple(field.split("."))))
        if problem is not None:
            problems.append(problem)

    if config.dataset.path is not None:
        confine(resolve(path.parent, config.dataset.path), "dataset.path")
    if config.kind not in KINDS:
        problems.append(_unknown(KINDS, config.kind, file, "kind", lines.get(("kind",))))
        return task
    kind = KINDS[config.kind]
    template_problems = _check_templates(config, file, lines)
    problems.extend(template_problems)
    if template_problems:
        return None
    if kind.needs_prompt and not config.prompt:
        problems.append(Problem(file, "prompt", f"a '{config.kind}' task needs a prompt template",
                                expected="a template such as '{{ question }}'"))
    task.scorers = _load_scorers(task, roots, problems, notes)
    return task


_DEPRECATED = {"citations": ("citations",), "formulary": ("drug_names", "doses", "critical_terms", "numeric_fidelity"),
               "critical_terms": ("drug_names", "doses", "critical_terms", "numeric_fidelity")}


def _load_scorers(task: LoadedTask, roots: Roots, problems: list[Problem],
                  notes: list[str]) -> list[tuple[str, BaseModel]]:
    """Each scorer's settings, validated by its own model and checked (files exist, inside the
    suite, parse); the task-level options of earlier versions are read into their scorers'
    settings with a deprecation note."""
    config, file, lines = task.config, str(task.path), task.lines
    entries: list[str | ScorerEntry] = (list(config.scorers) if config.scorers is not None
                                        else list(KINDS[config.kind].default_scorers))
    legacy: dict[str, dict[str, Any]] = {}
    for key, owners in _DEPRECATED.items():
        value = getattr(config, key)
        if value:
            data = value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else {key: value}
            for owner in owners:
                legacy.setdefault(owner, {}).update(data)
            notes.append(f"{file}: `{key}:` at task level is deprecated; write it as an option of its scorer, "
                         f"e.g. scorers: [{{name: {owners[0]}, ...}}]")
    out: list[tuple[str, BaseModel]] = []
    for i, entry in enumerate(entries):
        name, options = (entry, {}) if isinstance(entry, str) else (entry.name, entry.options())
        field = f"scorers[{i}]"
        line = lines.get(("scorers", i)) or lines.get(("scorers", i, "name"))
        if name not in SCORERS:
            problems.append(_unknown(SCORERS, name, file, field, line))
            continue
        cls = SCORERS.get(name)
        if config.kind not in cls.kinds:
            problems.append(Problem(file, field, f"scorer '{name}' does not apply to '{config.kind}' tasks",
                                    line, expected="a scorer for kinds " + ", ".join(sorted(cls.kinds))))
            continue
        try:
            settings = cls.Settings.model_validate({**legacy.get(name, {}), **options})
        except ValidationError as exc:
            found = problems_from_validation(exc, cls.Settings, file, lines, prefix=("scorers", i), owner=name)
            for p in found:
                p.line = p.line or line
            problems.extend(found)
            continue
        if name in legacy and not options:  # report problems where the user wrote them
            field = "citations" if name == "citations" else ""
            line = lines.get(("citations",)) if name == "citations" else lines.get(("formulary",))
        ctx = CheckContext(file, task.base_dir, field, line, roots, notes, lines)
        problems.extend(cls.check(settings, ctx))
        out.append((name, settings))
    return out


def _unknown(registry: Registry[Any], name: str, file: str, field: str, line: int | None) -> Problem:
    """A name the registry does not hold: a plugin that failed to load says why; a typo gets
    a suggestion."""
    if name in registry.broken:
        return Problem(file, field, f"the {registry.what} plugin '{name}' could not be loaded: "
                                    f"{registry.broken[name]}", line)
    return Problem(file, field, f"unknown {registry.what}", line, expected="one of: " + ", ".join(registry.names()),
                   found=repr(name), hint=did_you_mean(name, registry.names()))


def _check_templates(config: TaskConfig, file: str, lines: dict) -> list[Problem]:
    """Prompt templates must parse in the sandbox; the line given is the template's own."""
    import jinja2

    from harness.kinds import template, template_fields

    out = []
    for name in ("system_prompt", "prompt"):
        source = getattr(config, name)
        if not source:
            continue
        try:
            template_fields(source)
            template(source)  # compiled here: what does not compile is found before the run
        except jinja2.TemplateSyntaxError as exc:
            out.append(Problem(file, name, f"template syntax error: {exc.message} (line {exc.lineno} of the template)",
                               lines.get((name,)), expected="a Jinja2 template such as '{{ question }}'"))
        except RecursionError:
            out.append(Problem(file, name, "template nested too deeply to compile", lines.get((name,)),
                               expected="a Jinja2 template such as '{{ question }}'"))
    return out


#: longest the first item's prompt may take to render at validation
RENDER_LIMIT_S = 10.0


def _first_request_problems(task: LoadedTask) -> list[Problem]:
    """Render the first item's request: a template that reaches for something the sandbox
    forbids, or a field the data lacks, is a configuration error found before any call."""
    import jinja2

    from harness.data import iter_items

    kind = KINDS[task.config.kind]
    for item in iter_items(task):
        try:
            # a template whose loops never end is found here, not in the run (main thread only);
            # a plain `{{ name }}` substitution cannot loop, and starts no watchdog thread
            if renders_with_jinja(task.config.prompt, task.config.system_prompt):
                with Watchdog(RENDER_LIMIT_S) as watchdog, watchdog.limit("rendering the template"):
                    kind.build_request(task.config, item, 0, 0)
            else:
                kind.build_request(task.config, item, 0, 0)
        except (jinja2.TemplateError, KeyError, TypeError, ValueError, TimeLimitExceeded) as exc:
            field = "prompt" if task.config.prompt else "system_prompt"
            return [Problem(str(task.path), field, f"template cannot render item '{item.id}': "
                            f"{type(exc).__name__}: {exc}", task.lines.get((field,)))]
        break
    return []


def _load_adapter(path: Path, ref_index: int, suite: SuiteConfig, problems: list[Problem],
                  roots: Roots) -> LoadedAdapter | None:
    try:
        profile, lines = parse_file(path, AdapterProfile, "adapter profile")
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    file = str(path)
    if profile.kind not in ADAPTERS:
        problems.append(_unknown(ADAPTERS, profile.kind, file, "kind", lines.get(("kind",))))
        return None
    cls = ADAPTERS.get(profile.kind)
    try:
        settings = cls.Settings.model_validate(profile.settings)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, cls.Settings, file, lines, prefix=("settings",),
                                                owner=f"adapter kind '{profile.kind}'"))
        return None
    for name, target in cls.read_paths(settings, path.parent).items():
        problem = roots.problem(target, file, name, lines.get(tuple(name.split("."))))
        if problem is not None:
            problems.append(problem)
    checked = cls.check(settings, path.parent, file)
    for p in checked:
        p.line = p.line or lines.get(tuple(p.field.split(".")))
    problems.extend(checked)
    return LoadedAdapter(profile, path, suite.adapters[ref_index], settings, lines)


def load_suite(path: str | Path, *, scan: bool = True) -> Validation:
    """Parse and check a suite, its tasks, adapters and datasets. Raises ConfigError."""
    suite_path = Path(path)
    config, lines = parse_file(suite_path, SuiteConfig, "suite file")
    base = suite_path.parent
    problems: list[Problem] = []
    file = str(suite_path)
    roots = Roots([base, *(resolve(base, r) for r in config.data_roots)])
    notes: list[str] = []

    tasks: list[LoadedTask] = []
    for i, rel in enumerate(config.tasks):
        p = resolve(base, rel)
        if (outside := roots.problem(p, file, f"tasks[{i}]", lines.get(("tasks", i)))) is not None:
            problems.append(outside)  # before looking: whether a file exists out there is not the suite's to learn
            continue
        if not p.is_file():
            problems.append(Problem(file, f"tasks[{i}]", "task file not found", lines.get(("tasks", i)), found=str(p)))
            continue
        task = _load_task(p, problems, roots, notes)
        if task is not None:
            tasks.append(task)
    adapters: list[LoadedAdapter] = []
    for i, ref in enumerate(config.adapters):
        p = resolve(base, ref.path)
        if (outside := roots.problem(p, file, f"adapters[{i}]", lines.get(("adapters", i)))) is not None:
            problems.append(outside)
            continue
        if not p.is_file():
            problems.append(Problem(file, f"adapters[{i}]", "adapter profile not found",
                                    lines.get(("adapters", i)), found=str(p)))
            continue
        adapter = _load_adapter(p, i, config, problems, roots)
        if adapter is not None:
            adapters.append(adapter)
    _unique([t.name for t in tasks], "task", file, problems)
    _unique([a.name for a in adapters], "adapter", file, problems)
    if problems:
        raise ConfigError(problems)

    overrides: list[dict[str, Any]] = []
    pairs = _pairs(config, file, lines, tasks, adapters, problems, overrides)
    _check_metric_refs(config, file, lines, tasks, adapters, problems)
    if config.baseline and not resolve(base, config.baseline).is_dir():
        problems.append(Problem(file, "baseline", "baseline run not found", lines.get(("baseline",)),
                                found=str(resolve(base, config.baseline))))
    if any(g.non_inferior_to for g in config.gates) and not config.baseline:
        problems.append(Problem(file, "baseline", "a 'non_inferior_to: baseline' gate needs a baseline run",
                                expected="baseline: runs/<run-id>"))
    suite = LoadedSuite(config, suite_path, tasks, adapters, pairs, lines)
    result = Validation(suite, notes=notes, clearance_overrides=overrides)
    if scan and not problems:
        for task in tasks:
            if task.config.kind in KINDS:
                # audio is decoded at validation only when some adapter will read it (not a replay)
                reads_audio = any(t is task and ADAPTERS.get(a.profile.kind).sends_requests for t, a in pairs)
                if KINDS[task.config.kind].modality == "audio":
                    result.audio_read[task.name] = reads_audio
                checks_ids = [a for t, a in pairs if t is task and ADAPTERS.get(a.profile.kind).checks_items]
                needed = KINDS[task.config.kind].fields_needed(task.config)
                needed += tuple(dict.fromkeys(f for name, _ in task.scorers for f in SCORERS.get(name).needs_fields
                                              if f not in needed))
                if not reads_audio:  # every adapter replays stored outputs: the audio is optional
                    needed = tuple(f for f in needed if f != "audio")
                checks = [(name, check) for name, settings in task.scorers
                          if (check := SCORERS.get(name).reference_check(task.config, settings)) is not None]
                item_checks = [(name, item_check) for name, settings in task.scorers
                               if (item_check := SCORERS.get(name).item_check(task.config, settings)) is not None]
                summary = scan_dataset(task, needed, roots,
                                       max_field_bytes=config.max_field_bytes, decode_audio=reads_audio,
                                       keep_ids=bool(checks_ids), reference_checks=checks, item_checks=item_checks)
                problems.extend(summary.problems)
                result.item_counts[task.name] = summary.count
                release_freed_memory(summary.count)  # a row's dict each: a million items leave ~50 MB free
                if not summary.problems:
                    problems.extend(_first_request_problems(task))
                    for adapter in checks_ids:
                        found, notes = ADAPTERS.get(adapter.profile.kind).check_items(
                            adapter.settings, adapter.base_dir, str(adapter.path), task.name, summary.ids)
                        problems.extend(found)
                        result.notes.extend(f"{adapter.name} × {task.name}: {n}" for n in notes)
                        release_freed_memory(summary.count)  # the export's hash tables
    if problems:
        raise ConfigError(problems)
    return result


def _unique(names: list[str], what: str, file: str, problems: list[Problem]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            problems.append(Problem(file, f"{what}s", f"two {what}s are named '{name}'", expected="unique names"))
        seen.add(name)


def _pairs(config: SuiteConfig, file: str, lines: dict, tasks: list[LoadedTask], adapters: list[LoadedAdapter],
           problems: list[Problem], overrides: list[dict[str, Any]]) -> list[tuple[LoadedTask, LoadedAdapter]]:
    """Task × adapter pairs to run: the adapter accepts the task's modality and, where
    the suite says which tasks an adapter takes, only those. Data classes are checked here,
    before anything is sent: a task's data may go only to an adapter cleared for it."""
    task_names = [t.name for t in tasks]
    pairs = []
    for i, adapter in enumerate(adapters):
        wanted = adapter.ref.tasks
        for j, name in enumerate(wanted or []):
            if name not in task_names:
                problems.append(Problem(file, f"adapters[{i}].tasks[{j}]", "unknown task", None,
                                        expected="one of: " + ", ".join(task_names), found=repr(name),
                                        hint=did_you_mean(name, task_names)))
        modalities = ADAPTERS.get(adapter.profile.kind).modalities
        for task in tasks:
            if wanted is not None and task.name not in wanted:
                continue
            if KINDS[task.config.kind].modality not in modalities:
                if wanted is not None:
                    problems.append(Problem(file, f"adapters[{i}].tasks",
                                            f"adapter '{adapter.name}' ({adapter.profile.kind}) cannot take "
                                            f"'{task.config.kind}' task '{task.name}'"))
                continue
            problem = _clearance_problem(task, adapter, overrides)
            if problem is not None:
                problems.append(problem)
                continue
            pairs.append((task, adapter))
    covered = {t.name for t, _ in pairs}
    for task in tasks:
        if task.name not in covered and not problems:
            problems.append(Problem(file, "adapters", f"no adapter can run task '{task.name}' ({task.config.kind})"))
    return pairs


_LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def _clearance_problem(task: LoadedTask, adapter: LoadedAdapter, overrides: list[dict[str, Any]]) -> Problem | None:
    """HAS 2.4: data goes only to a system cleared for it (or under a written override), and
    data above public only over encrypted transport."""
    declarations = adapter.profile.declarations
    level = DATA_CLASSES.index(task.config.data_class)
    cleared = declarations.data_clearance
    override = adapter.ref.clearance_override
    if level > DATA_CLASSES.index(cleared) and (override is None or level > DATA_CLASSES.index(override.up_to)):
        return Problem(
            str(adapter.path), "declarations.data_clearance",
            f"task '{task.name}' holds '{task.config.data_class}' data ({task.path}) but adapter "
            f"'{adapter.name}' is cleared for '{cleared}' only; nothing was sent",
            adapter.lines.get(("declarations", "data_clearance")),
            expected=f"data_clearance >= {task.config.data_class}", found=cleared,
            hint=f"an exception needs `clearance_override: {{up_to: {task.config.data_class}, justification: "
                 "..., approved_by: ...}}` on the adapter in the suite")
    if level == 0:
        return None
    url = str(getattr(adapter.settings, "base_url", "") or "")
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0] if url else ""
    if declarations.encrypted_transport is False or (url.startswith("http://") and not host.startswith(_LOOPBACK)):
        return Problem(str(adapter.path), "settings.base_url" if url.startswith("http://") else
                       "declarations.encrypted_transport",
                       f"task '{task.name}' holds '{task.config.data_class}' data and adapter '{adapter.name}' "
                       "would send it unencrypted; nothing was sent", adapter.lines.get(("settings", "base_url")),
                       expected="an https:// endpoint (or a loopback one) and encrypted_transport not false",
                       found=url or "encrypted_transport: false")
    if level > DATA_CLASSES.index(cleared) and override is not None:  # allowed above: recorded, printed
        overrides.append({"adapter": adapter.name, "task": task.name, "data_class": task.config.data_class,
                          "declared_clearance": cleared, **override.model_dump()})
    return None


def _margin_problem(file: str, field: str, metric: str, value: float, line: int | None) -> Problem:
    """A margin of 1 or more on a proportion: no change of a rate is that large, so nothing
    could ever be a regression (`5` meant as 5 points)."""
    return Problem(file, field, f"{metric} is a proportion: a margin of {value:g} hides every regression", line,
                   expected="a margin below 1", found=f"{value:g}",
                   hint=f"{value:g} points is {value / 100:g}" if value <= 100 else None)


def _check_metric_refs(config: SuiteConfig, file: str, lines: dict, tasks: list[LoadedTask],
                       adapters: list[LoadedAdapter], problems: list[Problem]) -> None:
    specs = {f"{t.name}/{m.name}": m for t in tasks if t.config.kind in KINDS for m in task_metrics(t)}
    known = set(specs)
    adapter_names = [a.name for a in adapters]
    def unknown_metric(field: str, metric: str, line: int | None) -> Problem:
        return Problem(file, field, "unknown metric", line, expected="task/metric, one of: " + ", ".join(sorted(known)),
                       found=repr(metric), hint=did_you_mean(metric, known))

    for metric, value in config.margins.items():
        if metric not in known:
            problems.append(unknown_metric(f"margins.{metric}", metric, lines.get(("margins", metric))))
        elif specs[metric].aggregation == "proportion" and value >= 1:
            problems.append(_margin_problem(file, f"margins.{metric}", metric, value, lines.get(("margins", metric))))
    for section in ("objectives", "gates"):
        for i, rule in enumerate(getattr(config, section)):
            spec = specs.get(rule.metric)
            if spec is not None and spec.aggregation == "proportion":
                # a rate written as a percentage: `max: 5` on error_rate could never fail
                for name, value in rule.thresholds():
                    if not 0 <= value <= 1:
                        problems.append(Problem(
                            file, f"{section}[{i}].{name}", f"{rule.metric} is a proportion, from 0 to 1",
                            lines.get((section, i, name)), expected="a number from 0 to 1", found=f"{value:g}",
                            hint=f"{value:g}% is {value / 100:g}" if 1 < value <= 100 else None))
                if getattr(rule, "margin", 0) >= 1:  # gates have one, objectives not
                    problems.append(_margin_problem(file, f"{section}[{i}].margin", rule.metric, rule.margin,
                                                    lines.get((section, i, "margin"))))
            if rule.metric not in known:
                problems.append(unknown_metric(f"{section}[{i}].metric", rule.metric,
                                               lines.get((section, i, "metric"))))
            if rule.adapter is not None and rule.adapter not in adapter_names:
                problems.append(Problem(file, f"{section}[{i}].adapter", "unknown adapter",
                                        lines.get((section, i, "adapter")),
                                        expected="one of: " + ", ".join(adapter_names),
                                        found=repr(rule.adapter), hint=did_you_mean(rule.adapter, adapter_names)))

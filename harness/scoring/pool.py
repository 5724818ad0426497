"""Scoring on every core: CPU-bound text scorers run in worker processes.

The event loop stays in one process (requests, the record); the scorers a class marks
`cpu_bound` (word alignment, clinical analysis of whole consultations) run in a process
pool beside it, one item per call. Workers are forked after the scorers are built, so the
drug lexicon and the normalizers are shared, not loaded again; each worker applies the same
per-item time limit and turns a scorer's exception into that item's error, as in-process
scoring does (`score_texts`). Results do not depend on the number of workers (tested).
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from harness.config import TaskConfig
from harness.scoring.base import SCORERS, Scorer
from harness.types import Item, Score
from harness.watchdog import TimeLimitExceeded, Watchdog

#: fewer items than this, and the pool's start costs more than it saves
AUTO_MIN_ITEMS = 400
AUTO_MAX_WORKERS = 4


def is_text_scorer(scorer: Scorer) -> bool:
    """Scores from the output text alone (`score_text`), so it can run anywhere."""
    return type(scorer).score is Scorer.score


def error_detail(exc: BaseException) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc, limit=-8))[-4000:]}


def score_texts(scorers: Iterable[Scorer], item: Item, output: str, watchdog: Watchdog, score: Score) -> None:
    """Run text scorers on one output into `score`; a scorer that raises or runs past the
    limit costs the item that scorer's values, with the error kept in the details."""
    for scorer in scorers:
        result: Score | BaseException
        try:
            with watchdog.limit():
                result = scorer.score_text(item, output)
        except (Exception, TimeLimitExceeded) as exc:
            result = exc
        merge_result(score, scorer.name, result)


def merge_result(score: Score, name: str, result: Score | BaseException) -> None:
    """One scorer's values and details into the item's score, or its error."""
    if isinstance(result, BaseException):
        score.values["scoring_error"] = 1
        score.details[name] = error_detail(result)
        return
    score.values.update(result.values)
    if result.details:
        score.details[name] = result.details


def workers_for(setting: int | None, items: int, has_cpu_scorers: bool) -> int:
    """Worker processes for a run: the suite's `scoring_workers`, or automatically every core
    (at most 4) when there is enough CPU-bound scoring to repay starting them; 0 = in-process."""
    if setting is not None:
        return 0 if setting <= 1 else setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not has_cpu_scorers or items < AUTO_MIN_ITEMS or cores < 2:
        return 0
    return min(cores, AUTO_MAX_WORKERS)


_SCORERS: dict[str, list[Scorer]] = {}
_WATCHDOG: Watchdog | None = None


def _init(specs: dict[str, tuple[TaskConfig, list[tuple[str, BaseModel]]]], timeout_s: float | None) -> None:
    global _WATCHDOG
    # Ctrl-C is the parent's to handle (it shuts the pool down); an inherited wake-up fd would
    # make the parent's event loop see this worker's signals as its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for task, (config, entries) in specs.items():
        _SCORERS[task] = [SCORERS.get(name)(config, settings) for name, settings in entries]
    _WATCHDOG = Watchdog(timeout_s).__enter__()


def _score(task: str, item: Item, output: str) -> Score:
    assert _WATCHDOG is not None
    score = Score()
    score_texts(_SCORERS[task], item, output, _WATCHDOG, score)
    return score


class ScoringPool:
    """Worker processes holding the CPU-bound text scorers of each task."""

    def __init__(self, specs: dict[str, tuple[TaskConfig, list[tuple[str, BaseModel]]]], workers: int,
                 timeout_s: float | None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: the workers inherit the loaded lexicon; elsewhere (macOS, Windows) they load it
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        self.workers = workers
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                            initializer=_init, initargs=(specs, timeout_s))
        # start every worker now, before the event loop starts threads of its own
        for future in [self.executor.submit(os.getpid) for _ in range(workers)]:
            future.result()

    def submit(self, task: str, item: Item, output: str) -> Any:
        return self.executor.submit(_score, task, item, output)

    async def score(self, task: str, item: Item, output: str) -> Score:
        """One item's pooled scores (BrokenProcessPool when a worker died)."""
        import asyncio

        return await asyncio.wrap_future(self.submit(task, item, output))  # type: ignore[no-any-return]

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def runs_in_pool(cls: type[Scorer]) -> bool:
    """A scorer class that goes to the pool: CPU-bound, and scoring from the text alone."""
    return cls.cpu_bound and cls.score is Scorer.score


def cpu_bound_entries(entries: list[tuple[str, BaseModel]]) -> list[tuple[str, BaseModel]]:
    """The scorers of a task that go to the pool."""
    return [(name, settings) for name, settings in entries if runs_in_pool(SCORERS.get(name))]

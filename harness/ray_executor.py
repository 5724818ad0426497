"""`executor: ray`: local systems on a pool of Ray actors, the run itself in the driver.

Ray is the distributed engine the ML ecosystem uses for batch inference; the harness uses
its actors and nothing of its own making. Only what computes is moved:

- each local adapter (faster-whisper, `python`, `command`: `Adapter.runs_on_actors`) gets
  `actors` Ray actors, each building the adapter and running its `setup` once (the model
  loaded once per actor), then answering batches of `batch_size` requests;
- the driver keeps everything that makes a run a run: the one append-only record, the
  response cache, resume, retries and their log, the PII guard, scoring and the progress
  bars. To the runner a Ray-backed adapter is an adapter like any other (`RayAdapter`), so
  a Ray run and a local run of a suite give the same record and scorecard;
- an actor that dies (killed, out of memory, its node lost) has the requests it held
  queued again for the others, and a replacement is started (`max_restarts`): no item is
  lost, and since only the driver writes the record, none is recorded twice;
- `scoring: ray` moves the CPU-bound text scorers (those `scoring/pool.py` would run in
  local processes) to Ray actors too (`RayScoringPool`).

Ray is an optional dependency (`pip install 'avec-harness[ray]'`), imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.adapters.base import ADAPTERS, CPUS_ENV, Adapter
from harness.config import AdapterRef, Declarations, LoadedAdapter, RayActors, RaySettings, TaskConfig
from harness.errors import AdapterError, ConfigError, Problem, RunIncomplete
from harness.scoring.pool import error_detail, score_texts
from harness.types import Item, Request, Response, Score

#: an actor holds at most this many of its batches at once (one computing, one waiting):
#: enough to keep it busy while the driver records the previous one
PIPELINE_DEPTH = 2
#: items a scoring actor takes in one call, at most (it takes what is waiting)
SCORING_BATCH = 32
MAX_SCORING_ACTORS = 8


def _ray() -> Any:
    import ray

    return ray


def require_ray() -> None:
    """ConfigError (exit 2) when the suite asks for Ray and it is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError([Problem("executor", "", "Ray is not installed",
                                   expected="pip install 'avec-harness[ray]'")])


def takes(cls: type[Adapter], ref: AdapterRef) -> bool:
    """Whether an adapter runs on actors: local systems do; remote APIs (HTTP adapters, whose
    bottleneck is the server and whose key is in the driver's environment) and replays stay
    in the driver, whatever the suite says; another third-party kind goes to actors when its
    suite entry says `ray:`."""
    from harness.adapters.http import HTTPAdapter

    if issubclass(cls, HTTPAdapter) or not cls.sends_requests:
        return False
    return cls.runs_on_actors or ref.ray is not None


@contextlib.contextmanager
def _lean_instance() -> Iterator[None]:
    """A local instance without the two Python processes it does not use: the autoscaler's
    monitor (its size is fixed) and the log monitor (actors' output is not sent to the
    driver). On 2 cores that makes `ray.init` about 0.5 s and `ray.shutdown` about 1 s
    shorter (shutdown waits for them). `ray.init` has no option for it: the parameters it
    builds are given both defaults here, and where a Ray version lacks them, nothing changes."""
    import inspect

    import ray._private.parameter as parameter

    params = getattr(parameter, "RayParams", None)
    try:
        accepted = inspect.signature(params).parameters if params is not None else {}
    except (TypeError, ValueError):
        accepted = {}
    if params is None or not {"no_monitor", "include_log_monitor"} <= set(accepted):
        yield
        return
    parameter.RayParams = functools.partial(params, no_monitor=True, include_log_monitor=False)  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        parameter.RayParams = params  # type: ignore[misc]


#: Ray's authentication settings: where the user set any of them, theirs are used
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _private_token() -> None:
    """Token authentication for the run's local instance, with a token of its own held in the
    environment of this process and those it starts: not in `~/.ray/auth_token`, which Ray
    writes readable by every user of the machine, and whose holder can run code on the
    instance. (Its ports listen on every interface.) Where Ray lacks token authentication,
    the variables are ignored. Set once for the process, before Ray is imported: the driver
    reads its mode at import, and an instance whose processes disagree with it refuses it."""
    import secrets
    import sys

    if any(name in os.environ for name in AUTH_ENV) or "ray" in sys.modules:
        return  # the user's settings, or Ray's defaults as already read
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))


class RaySession:
    """The run's connection to Ray: a local instance it starts (and stops), or a cluster."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.address = settings.address
        self.started = False
        self.nodes: list[dict[str, Any]] = []

    def __enter__(self) -> RaySession:
        # no usage reports leave the machine, whatever Ray's defaults become
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address is None:
            _private_token()
        ray = _ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"namespace": self.settings.namespace, "include_dashboard": False,
                                       "log_to_driver": False, "configure_logging": False}
            if self.address is None:  # a local instance, on the loopback only
                options.update(num_cpus=self.settings.num_cpus, _node_ip_address="127.0.0.1")
            else:
                options["address"] = self.address
            try:
                with _lean_instance() if self.address is None else contextlib.nullcontext():
                    ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RunIncomplete(f"could not connect to Ray at {self.address or 'a new local instance'}: "
                                    f"{exc}") from None
            self.started = True
        self.nodes = [{"node": n["NodeID"], "host": n.get("NodeManagerHostname"),
                       "cpus": n.get("Resources", {}).get("CPU"), "gpus": n.get("Resources", {}).get("GPU")}
                      for n in ray.nodes() if n.get("Alive")]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            _ray().shutdown()
            self.started = False

    def check_fits(self, pools: dict[str, RayActors]) -> None:
        """Actors that ask for more than a local instance has would wait for ever: say so at
        once (a cluster may scale up to them: there, `ray.start_timeout_s` decides)."""
        if self.address is not None:
            return
        for resource, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
            wanted = {name: spec.actors * getattr(spec, key) for name, spec in pools.items()}
            total = sum(wanted.values())
            have = sum(n["cpus" if resource == "CPU" else "gpus"] or 0 for n in self.nodes)
            if total > have + 1e-9:
                asked = ", ".join(f"{name} {n:g}" for name, n in wanted.items() if n)
                raise ConfigError([Problem("suite", f"adapters[].ray.{key}",
                                           f"the actor pools ask for {total:g} {resource}s ({asked}) and the Ray "
                                           f"cluster has {have:g}: they would wait for ever",
                                           hint="fewer actors, or a fraction of a CPU each (num_cpus: 0.5)")])

    def cpus(self) -> int:
        return max(1, int(sum(n["cpus"] or 0 for n in self.nodes)))

    def free_cpus(self, pools: dict[str, RayActors]) -> float | None:
        """CPUs a local instance has left once the actor pools have theirs; None on a cluster
        (it may scale up: there, `ray.start_timeout_s` decides)."""
        if self.address is not None:
            return None
        return max(0.0, sum(n["cpus"] or 0 for n in self.nodes) - sum(s.actors * s.num_cpus for s in pools.values()))

    def describe(self) -> dict[str, Any]:
        """For the manifest: the engine, where it ran, on how many nodes."""
        return {"kind": "ray", "ray_version": _ray().__version__,
                "address": self.address or "local instance", "nodes": self.nodes}


# --- actors -----------------------------------------------------------------

def _where() -> dict[str, str]:
    ctx = _ray().get_runtime_context()
    return {"node": ctx.get_node_id(), "actor": ctx.get_actor_id() or "", "host": socket.gethostname()}


def _failure(exc: BaseException) -> dict[str, Any]:
    """An adapter's error as plain data, raised again as an AdapterError in the driver (the
    driver's retry policy decides, as for any adapter)."""
    if isinstance(exc, AdapterError):
        return {"message": str(exc), "retryable": exc.retryable, "status": exc.status,
                "retry_after": exc.retry_after}
    detail = error_detail(exc)
    return {"message": detail["error"], "retryable": False, "status": None, "retry_after": None,
            "traceback": detail["traceback"]}


class AdapterActor:
    """One replica of a system: the adapter built and set up once, answering batches."""

    def __init__(self, kind: str, name: str, settings: BaseModel, declarations: Declarations, base_dir: str,
                 cpus: float) -> None:
        if cpus >= 1:  # threads sized to what Ray reserved, not to the whole node
            os.environ[CPUS_ENV] = str(int(cpus))
        cls = ADAPTERS.get(kind)
        self.adapter = cls(name, cls.actor_settings(settings, cpus), declarations, Path(base_dir))

    async def start(self) -> dict[str, str]:
        await self.adapter.setup()
        gc.freeze()  # the actor's modules and model out of each full collection's scan (see Runner.run)
        return _where()

    async def generate_batch(self, requests: list[Request]) -> list[tuple[bool, Any]]:
        async def one(request: Request) -> tuple[bool, Any]:
            try:
                return True, await self.adapter.generate(request)
            except Exception as exc:  # any failure of one request is that request's error
                return False, _failure(exc)
        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.adapter.close()


@dataclass
class _Slot:
    """An actor of the pool and where it runs."""

    handle: Any
    where: dict[str, str] = field(default_factory=dict)


class RayAdapter(Adapter):
    """The runner's view of an adapter whose requests are answered by Ray actors: same
    identity, prices, secrets and cache key as the adapter itself; `generate` queues the
    request for the pool."""

    kind = "ray"

    def __init__(self, inner: Adapter, spec: RayActors, adapter: LoadedAdapter, start_timeout_s: float = 600) -> None:
        super().__init__(inner.name, inner.settings, inner.declarations, inner.base_dir)
        self.inner = inner
        self.spec = spec if spec.batch_size else spec.model_copy(update={"batch_size": inner.ray_batch_size})
        self.loaded = adapter
        self.actor_batch: int = self.spec.batch_size or 1
        self.start_timeout_s = start_timeout_s
        # what the runner reads of the adapter's class, kept from the real one
        self.sends_requests = inner.sends_requests  # type: ignore[misc]
        self.queue: asyncio.Queue[tuple[Request, asyncio.Future[Response]]] = asyncio.Queue()
        self.slots: list[_Slot] = []
        self.locks: list[asyncio.Lock] = []
        self.dispatchers: list[asyncio.Task[None]] = []
        self.restarts = 0
        self.deaths: list[str] = []
        self.failure: str | None = None

    # the adapter's own answers to everything but generating
    def cache_identity(self) -> dict[str, Any]:
        return self.inner.cache_identity()

    def secrets(self) -> list[str]:
        return self.inner.secrets()

    def cost(self, response: Response) -> float | None:
        return self.inner.cost(response)

    def energy(self, response: Response) -> tuple[float, float] | None:
        return self.inner.energy(response)

    def concurrency(self) -> int:
        """Requests in flight: every actor holding PIPELINE_DEPTH full batches."""
        return self.spec.actors * self.actor_batch * PIPELINE_DEPTH

    async def _start_actor(self, index: int) -> _Slot:
        ray = _ray()
        actor_cls = ray.remote(AdapterActor).options(
            num_cpus=self.spec.num_cpus, num_gpus=self.spec.num_gpus,
            max_concurrency=PIPELINE_DEPTH + 1)  # batches + close
        a = self.loaded
        handle = actor_cls.remote(a.profile.kind, self.name, a.settings, a.profile.declarations, str(a.base_dir),
                                  self.spec.num_cpus)
        try:
            where = await asyncio.wait_for(handle.start.remote(), self.start_timeout_s)
        except TimeoutError:
            ray.kill(handle)
            raise RunIncomplete(f"adapter '{self.name}': Ray actor {index} not started after "
                                f"{self.start_timeout_s:g} s (no node with {self.spec.num_cpus:g} CPU and "
                                f"{self.spec.num_gpus:g} GPU free?)") from None
        except ray.exceptions.RayError as exc:
            ray.kill(handle)
            raise RunIncomplete(f"adapter '{self.name}' could not start on Ray (actor {index}): "
                                f"{_cause(exc)}") from None
        return _Slot(handle, where)

    async def setup(self) -> None:
        self.slots = list(await asyncio.gather(*(self._start_actor(i) for i in range(self.spec.actors))))
        self.locks = [asyncio.Lock() for _ in self.slots]
        self.dispatchers = [asyncio.create_task(self._dispatch(i)) for i in range(len(self.slots))
                            for _ in range(PIPELINE_DEPTH)]

    async def generate(self, request: Request) -> Response:
        if self.failure is not None:
            raise RunIncomplete(self.failure)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((request, future))
        return await future

    async def _batch(self) -> list[tuple[Request, asyncio.Future[Response]]]:
        """The next batch: the first waiting request, and those queued by the time the
        workers that are ready have run (a batch is never held back to fill up)."""
        batch = [await self.queue.get()]
        await asyncio.sleep(0)
        while len(batch) < self.actor_batch and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return [(r, f) for r, f in batch if not f.done()]  # a timed-out request is not sent

    async def _dispatch(self, index: int) -> None:
        ray = _ray()
        while True:
            batch = await self._batch()
            if not batch:
                continue
            slot = self.slots[index]
            try:
                results = await slot.handle.generate_batch.remote([r for r, _ in batch])
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                for pending in batch:  # to the other actors (or this one's replacement)
                    self.queue.put_nowait(pending)
                if not await self._replace(index, slot, exc):
                    return
                continue
            except ray.exceptions.RayError as exc:  # the batch could not be carried (not picklable, say)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AdapterError(f"Ray: {_cause(exc)}"))
                continue
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    value.worker = slot.where
                    future.set_result(value)
                else:
                    err = AdapterError(value["message"], retryable=value["retryable"], status=value["status"],
                                       retry_after=value["retry_after"])
                    if value.get("traceback"):
                        err.traceback = value["traceback"]  # type: ignore[attr-defined]
                    future.set_exception(err)

    async def _replace(self, index: int, dead: _Slot, exc: BaseException) -> bool:
        """A dead actor is replaced while restarts remain; False when this dispatcher stops.
        Both dispatchers of an actor see it die: the lock makes one replacement of it."""
        async with self.locks[index]:
            if self.slots[index] is not dead:  # the other dispatcher of this actor saw to it
                return self.slots[index].handle is not None
            self.deaths.append(f"{dead.where.get('actor', '?')} on {dead.where.get('host', '?')}: {_cause(exc)}")
            with contextlib.suppress(Exception):  # unreachable rather than dead: it must not linger
                _ray().kill(dead.handle)
            if self.restarts < self.spec.max_restarts:
                self.restarts += 1
                try:
                    self.slots[index] = await self._start_actor(index)
                    return True
                except RunIncomplete as failure:
                    self.deaths.append(str(failure))
            self.slots[index] = _Slot(None, {})
        if all(s.handle is None for s in self.slots):
            self.failure = (f"every Ray actor of adapter '{self.name}' died ({len(self.deaths)} in all, "
                            f"{self.restarts} restarted); the last: {self.deaths[-1]}")
            while not self.queue.empty():
                _, future = self.queue.get_nowait()
                if not future.done():
                    future.set_exception(RunIncomplete(self.failure))
        return False

    async def close(self) -> None:
        for task in self.dispatchers:
            task.cancel()
        ray = _ray()
        live = [s.handle for s in self.slots if s.handle is not None]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(h.close.remote() for h in live), return_exceptions=True), 10)
        for handle in live:
            with contextlib.suppress(Exception):
                ray.kill(handle)

    def summary(self) -> dict[str, Any]:
        """For the manifest: the pool as configured, where its actors ran, what died."""
        return {**self.spec.model_dump(), "hosts": sorted({s.where["host"] for s in self.slots if s.where}),
                "restarts": self.restarts, "deaths": self.deaths}


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --- scoring ------------------------------------------------------------------

class ScoringActor:
    """The CPU-bound text scorers of every task, built once per actor."""

    def __init__(self, specs: dict[str, tuple[TaskConfig, list[tuple[str, BaseModel]]]],
                 timeout_s: float | None) -> None:
        from harness.scoring.base import SCORERS
        from harness.watchdog import Watchdog

        self.scorers = {task: [SCORERS.get(name)(config, settings) for name, settings in entries]
                        for task, (config, entries) in specs.items()}
        self.watchdog = Watchdog(timeout_s).__enter__()

    def ready(self) -> bool:
        return True

    def score(self, task: str, item: Item, output: str) -> Score:
        score = Score()
        score_texts(self.scorers[task], item, output, self.watchdog, score)
        return score

    def score_batch(self, entries: list[tuple[str, Item, str]]) -> list[Score]:
        return [self.score(task, item, output) for task, item, output in entries]


class RayScoringPool:
    """`scoring: ray`: the pooled scorers on Ray actors. Items queue in the driver; each actor
    takes what is waiting (up to SCORING_BATCH) in one call, PIPELINE_DEPTH calls at a time,
    so the driver spends Ray's ~1 ms per call on a batch, not on every item. The items of an
    actor that dies go back to the queue for the others; when none is left, the driver scores
    them itself."""

    def __init__(self, specs: dict[str, tuple[TaskConfig, list[tuple[str, BaseModel]]]], actors: int,
                 cpus_each: float, timeout_s: float | None, fallback: Any, start_timeout_s: float = 600) -> None:
        ray = _ray()
        actor_cls = ray.remote(ScoringActor).options(num_cpus=cpus_each)  # one call at a time; the next waits there
        self.actors = [actor_cls.remote(specs, timeout_s) for _ in range(actors)]
        self.cpus_each = cpus_each
        self.start_timeout_s = start_timeout_s
        self.fallback = fallback
        self.lost = 0
        self.queue: asyncio.Queue[tuple[str, Item, str, asyncio.Future[Score]]] = asyncio.Queue()
        self.dispatchers: list[asyncio.Task[None]] = []

    async def ready(self) -> None:
        """Wait for every actor to start, then dispatch: an actor that cannot be placed would
        otherwise leave the first item's scores (and the run) waiting for ever."""
        try:
            await asyncio.wait_for(asyncio.gather(*(a.ready.remote() for a in self.actors)), self.start_timeout_s)
        except TimeoutError:
            raise RunIncomplete(f"scoring: ray — {len(self.actors)} scoring actor(s) of {self.cpus_each:g} CPU not "
                                f"started after {self.start_timeout_s:g} s (no room on the cluster?); set "
                                "ray.scoring_actors, or scoring: local") from None
        self.dispatchers = [asyncio.create_task(self._dispatch(actor))
                            for actor in self.actors for _ in range(PIPELINE_DEPTH)]

    async def score(self, task: str, item: Item, output: str) -> Score:
        if not self.actors:
            return self.fallback(task, item, output)  # type: ignore[no-any-return]
        future: asyncio.Future[Score] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((task, item, output, future))
        return await future

    async def _dispatch(self, actor: Any) -> None:
        ray = _ray()
        while actor in self.actors:
            batch = [await self.queue.get()]
            while len(batch) < SCORING_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                scores = await actor.score_batch.remote([(task, item, output) for task, item, output, _ in batch])
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                if actor in self.actors:
                    self.actors.remove(actor)
                    self.lost += 1
                for entry in batch:
                    self.queue.put_nowait(entry)
                if not self.actors:  # no actor left: the driver scores what waits
                    while not self.queue.empty():
                        task, item, output, future = self.queue.get_nowait()
                        if not future.done():
                            future.set_result(self.fallback(task, item, output))
                return
            for (_, _, _, future), score in zip(batch, scores, strict=True):
                if not future.done():
                    future.set_result(score)

    def close(self) -> None:
        ray = _ray()
        for task in self.dispatchers:
            task.cancel()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)


def scoring_actors(session: RaySession, pools: dict[str, RayActors]) -> tuple[int, float]:
    """(actors, CPUs each) for `scoring: ray`: `ray.scoring_actors` or one per CPU (at most 8);
    on a local instance, each takes its share of the CPUs the adapters' actors leave (a
    fraction, or none: they then share the CPUs), never more than there is, which would leave
    them unplaced for ever."""
    actors = session.settings.scoring_actors or min(session.cpus(), MAX_SCORING_ACTORS)
    free = session.free_cpus(pools)
    return actors, 1.0 if free is None else min(1.0, free / actors)

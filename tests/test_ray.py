"""`executor: ray` (issue 14) against a real local Ray instance started here: loopback only,
2 CPUs, no dashboard. The Ray run's scorecard equals the local run's; an actor killed mid-run
(SIGKILL, as the out-of-memory killer does) loses no item and records none twice; a driver
killed mid-run resumes; `scoring: ray` gives the same scores as in-process scoring."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from conftest import ROOT, run_cli, write_jsonl, write_yaml

from harness import run_suite
from harness.errors import RunIncomplete
from harness.store import iter_jsonl

#: figures that depend on timing, not on what was answered
TIMING = {"latency_s", "ttft_s", "tokens_per_s"}

SYSTEM = '''
import os, signal, time

def answer(request, die_on=None, marker=None, die_while=None, sleep=0.0):
    """A deterministic system: right on most items, wrong on every fifth. It kills its own
    process (SIGKILL, like the out-of-memory killer) on item `die_on` once (`marker` says it
    did), or on every item while the file `die_while` exists."""
    item = request.item_id
    if die_while and os.path.exists(die_while):
        os.kill(os.getpid(), signal.SIGKILL)
    if item == die_on and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if sleep:
        time.sleep(sleep)
    number = int(item[1:])
    right = request.inputs["question"].rsplit("=", 1)[1]
    return ("D" if right != "D" else "A") if number % 5 == 0 else right
'''


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="avec-harness-tests",
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _suite(root: Path, *, executor: str = "local", audio: int = 0, items: int = 40,
           kwargs: dict[str, Any] | None = None, ray_actors: dict[str, Any] | None = None,
           whisper_actors: dict[str, Any] | None = None, **suite: Any) -> Path:
    """A QA task answered by a `python` system and, with `audio`, the first dictations
    transcribed by faster-whisper (one thread per replica)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "system.py").write_text(SYSTEM, encoding="utf-8")
    write_jsonl(root / "qa.jsonl", [{"id": f"q{i}", "question": f"Question {i}? ANSWER={'ABCD'[i % 4]}",
                                     "answer": "ABCD"[i % 4], "group": f"g{i // 4}"} for i in range(items)])
    write_yaml(root / "qa.yaml", {"name": "qa", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                  "choices": ["A", "B", "C", "D"],
                                  "dataset": {"path": "qa.jsonl",
                                              "fields": {"reference": "answer", "cluster": "group"}}})
    write_yaml(root / "system.yaml", {"name": "scripted", "kind": "python",
                                      "settings": {"callable": "system:answer", "path": ["."],
                                                   "kwargs": kwargs or {}}})
    tasks, adapters = ["qa.yaml"], [{"path": "system.yaml", "tasks": ["qa"],
                                     **({"ray": ray_actors} if ray_actors else {})}]
    if audio:
        source = ROOT / "tasks" / "dictation-en"
        rows = [json.loads(line) for line in (source / "items.jsonl").read_text().splitlines()[:audio]]
        (root / "audio").mkdir(exist_ok=True)
        for row in rows:
            shutil.copy(source / row["audio"], root / row["audio"])
        write_jsonl(root / "dictation.jsonl", rows)
        write_yaml(root / "dictation.yaml", {
            "name": "dictation", "kind": "transcription", "language": "en", "data_class": "public",
            "dataset": {"path": "dictation.jsonl", "fields": {"audio": "audio", "reference": "text",
                                                              "cluster": "consultation"}},
            "scorers": ["wer", "drug_names", "doses", "critical_terms"],
            "normalizer": {"lowercase": True, "punctuation": True, "numbers": True, "units": True}})
        write_yaml(root / "whisper.yaml", {"name": "whisper", "kind": "faster-whisper",
                                           "settings": {"model": "tiny.en", "beam_size": 1, "cpu_threads": 1}})
        tasks.append("dictation.yaml")
        adapters.append({"path": "whisper.yaml", "tasks": ["dictation"],
                         **({"ray": whisper_actors} if whisper_actors else {})})
    return write_yaml(root / "suite.yaml", {"name": "ray-suite", "tasks": tasks, "adapters": adapters,
                                            "executor": executor, "cache": False, **suite})


def _figures(run_dir: Path) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    card = json.loads((run_dir / "scorecard.json").read_text())
    return {(r["task"], r["adapter"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"], r["n"])
            for r in card["rows"] if r["metric"] not in TIMING}


def _responses(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(run_dir / "responses.jsonl"))


def _once_each(run_dir: Path, expected: int) -> None:
    keys = Counter((r["task"], r["adapter"], r["item_id"], r["repeat"]) for r in _responses(run_dir))
    assert len(keys) == expected and set(keys.values()) == {1}, keys.most_common(3)
    scored = Counter((r["task"], r["adapter"], r["item_id"], r["repeat"]) for r in iter_jsonl(run_dir / "scores.jsonl"))
    assert scored == keys


@pytest.mark.parametrize("layout", [{"actors": 2, "num_cpus": 1}, {"actors": 4, "num_cpus": 0.5, "batch_size": 3}],
                         ids=["2-actors", "4-half-cpu-actors"])
def test_a_ray_run_gives_the_scorecard_of_a_local_run(tmp_path: Path, local_ray: None,
                                                      layout: dict[str, Any]) -> None:
    local = run_suite(_suite(tmp_path / "local", audio=6), quiet=True)
    # the trivial system reserves no CPU: the whisper replicas take the instance's two
    on_ray = run_suite(_suite(tmp_path / "ray", executor="ray", audio=6, whisper_actors=layout,
                              ray_actors={"actors": 2, "num_cpus": 0}), quiet=True)
    assert _figures(on_ray.run_dir) == _figures(local.run_dir)
    accuracy = _figures(local.run_dir)[("qa", "scripted", "accuracy")]
    assert accuracy[0] == pytest.approx(0.8) and accuracy[3] == 40  # the system is wrong on every fifth item
    _once_each(on_ray.run_dir, 46)
    manifest = json.loads((on_ray.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["executor"]["kind"] == "ray"
    pools = manifest["executor"]["adapters"]
    assert set(pools) == {"scripted", "whisper"} and pools["whisper"]["actors"] == layout["actors"]
    # every response says where it was computed; the work was spread over the actors
    workers = [r["worker"] for r in _responses(on_ray.run_dir)]
    assert all(w and w["node"] and w["actor"] and w["host"] for w in workers)
    by_adapter = {name: {r["worker"]["actor"] for r in _responses(on_ray.run_dir) if r["adapter"] == name}
                  for name in ("scripted", "whisper")}
    assert len(by_adapter["scripted"]) == 2 and 2 <= len(by_adapter["whisper"]) <= layout["actors"]
    assert all(r["worker"] is None for r in _responses(local.run_dir))


def test_an_actor_killed_mid_run_loses_no_item_and_records_none_twice(tmp_path: Path, local_ray: None) -> None:
    marker = tmp_path / "killed"
    suite = _suite(tmp_path, executor="ray", items=60, kwargs={"die_on": "q17", "marker": str(marker)},
                   ray_actors={"actors": 2, "batch_size": 4})
    result = run_suite(suite, quiet=True)
    assert marker.exists()  # the actor did die
    _once_each(result.run_dir, 60)
    responses = _responses(result.run_dir)
    assert all(r["status"] == "ok" for r in responses)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    pool = manifest["executor"]["adapters"]["scripted"]
    assert pool["restarts"] == 1 and len(pool["deaths"]) == 1
    # the item the dead actor held was answered by another (the survivor or the replacement)
    answered_by = next(r["worker"]["actor"] for r in responses if r["item_id"] == "q17")
    assert not pool["deaths"][0].startswith(answered_by)
    assert _figures(result.run_dir)[("qa", "scripted", "accuracy")][0] == pytest.approx(0.8)


def test_when_every_actor_dies_the_run_stops_and_resumes(tmp_path: Path, local_ray: None) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    suite = _suite(tmp_path, executor="ray", items=12, kwargs={"die_while": str(broken)},
                   ray_actors={"actors": 1, "max_restarts": 1})
    with pytest.raises(RunIncomplete, match="every Ray actor of adapter 'scripted' died"):
        run_suite(suite, quiet=True, out=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["executor"]["adapters"]["scripted"]["restarts"] == 1
    assert _responses(tmp_path / "run") == []  # nothing recorded as answered
    broken.unlink()  # the system is mended: the run resumes where it stopped
    resumed = run_suite(suite, quiet=True, resume=tmp_path / "run")
    _once_each(resumed.run_dir, 12)


def test_scoring_on_ray_gives_the_scores_of_local_scoring(tmp_path: Path, local_ray: None) -> None:
    source = ROOT / "examples" / "consultation" / "suite.yaml"
    config = yaml.safe_load(source.read_text())
    runs = {}
    for scoring in ("local", "ray"):
        suite = source.parent / f".ray-scoring-{scoring}.yaml"  # beside the original: its relative paths hold
        write_yaml(suite, {**config, "scoring": scoring, "scoring_workers": 0})
        try:
            result = run_suite(suite, out=tmp_path / scoring, quiet=True, cache=False)
        finally:
            suite.unlink()
        runs[scoring] = {(r["task"], r["item_id"]): (r["values"], r["details"])
                         for r in iter_jsonl(result.run_dir / "scores.jsonl")}
        manifest = json.loads((result.run_dir / "manifest.json").read_text())
        assert (manifest["scoring_workers"] == 2) == (scoring == "ray")  # one actor per CPU of the instance
    assert runs["ray"] == runs["local"] and len(runs["local"]) == 12


@pytest.mark.timeout(240)
def test_scoring_actors_fit_beside_adapter_actors_that_hold_every_cpu(tmp_path: Path, local_ray: None) -> None:
    """Local adapters on actors holding both CPUs of the instance, and `scoring: ray`: scoring
    actors asking a CPU each were never placed, and the run waited for ever on its first
    score. They now take what is left (here nothing: they share the CPUs) and the scores are
    the local scorers'."""
    layout = {"ray_actors": {"actors": 1, "num_cpus": 1}, "whisper_actors": {"actors": 1, "num_cpus": 1}}
    local = run_suite(_suite(tmp_path / "local", audio=2, items=8), quiet=True)
    on_ray = run_suite(_suite(tmp_path / "ray", executor="ray", audio=2, items=8, scoring="ray", **layout),
                       quiet=True)
    manifest = json.loads((on_ray.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["executor"]["scoring_actor_cpus"] == 0
    assert manifest["scoring_workers"] == 2
    assert _figures(on_ray.run_dir) == _figures(local.run_dir)


def test_scoring_actors_that_cannot_be_placed_stop_the_run_instead_of_waiting(local_ray: None) -> None:
    """On a cluster (which may scale up) scoring actors keep a CPU each; one that is never
    placed stops the run after `ray.start_timeout_s`, with what to change."""
    import asyncio

    from harness.ray_executor import RayScoringPool

    pool = RayScoringPool({}, 1, 64.0, None, fallback=None, start_timeout_s=2)
    try:
        with pytest.raises(RunIncomplete, match=r"scoring actor.*not started after 2 s"):
            asyncio.run(pool.ready())
    finally:
        pool.close()


def test_the_cli_runs_on_ray_and_a_killed_driver_resumes(tmp_path: Path) -> None:
    """The real CLI, which starts (and stops) its own local Ray instance: SIGKILL the driver
    mid-run, then `--resume` finishes with every item recorded once."""
    suite = _suite(tmp_path, items=80, kwargs={"sleep": 0.05}, ray_actors={"actors": 2, "batch_size": 2},
                   ray={"num_cpus": 2})
    env = {**os.environ, "PYTHONUTF8": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--executor", "ray",
                             "--out", str(tmp_path / "run"), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    responses = tmp_path / "run" / "responses.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not responses.exists() or len(responses.read_bytes().splitlines()) < 10):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and what it started
    proc.wait()
    done_before = len(_responses(tmp_path / "run"))
    assert 10 <= done_before < 80
    res = run_cli("run", str(suite), "--resume", str(tmp_path / "run"), "--executor", "ray", "-q", timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    _once_each(tmp_path / "run", 80)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
    assert manifest["executor"]["address"] == "local instance"


LEAN_AND_PRIVATE = """
import json, os, subprocess, sys
from harness.config import RaySettings
from harness.ray_executor import RaySession

PROBE = ("import sys\\nfrom ray._raylet import GcsClient\\n"
         "GcsClient(address=sys.argv[1], cluster_id=sys.argv[2]).internal_kv_get(b'k', None, timeout=5)")
with RaySession(RaySettings(num_cpus=1)):
    import ray
    node = ray._private.worker._global_node
    print(json.dumps(sorted(node.all_processes)))
    codes = [subprocess.run([sys.executable, "-c", PROBE, node.address, node.cluster_id.hex()], env=env,
                            capture_output=True, timeout=60).returncode
             for env in ({**os.environ, "RAY_AUTH_TOKEN": "0" * 64}, os.environ)]
    print(json.dumps(codes))
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
print(json.dumps(sorted(ray._private.worker._global_node.all_processes)))
ray.shutdown()
"""


def test_a_local_instance_is_lean_and_takes_only_its_own_token(tmp_path: Path) -> None:
    """The run's own local instance has no autoscaler monitor and no log monitor (fixed size,
    actors' output not sent to the driver): start-up and shutdown are shorter; a plain
    ray.init still has both. It requires a token of its own, kept in the environment: none
    written under the home folder (where Ray would leave it readable by every user); a
    client with another token is refused, one with the run's is let in. In a fresh
    interpreter, where Ray is not imported yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    res = subprocess.run([sys.executable, "-c", LEAN_AND_PRIVATE], capture_output=True, text=True, timeout=180,
                         env={**env, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    lean, refused, plain = (json.loads(line) for line in res.stdout.splitlines()[-3:])
    assert {"gcs_server", "raylet"} <= set(lean) and not set(lean) & {"monitor", "log_monitor"}
    assert {"monitor", "log_monitor"} <= set(plain)
    assert refused[0] != 0 and refused[1] == 0, res.stdout  # another token refused; the run's own accepted
    assert not (tmp_path / ".ray" / "auth_token").exists()
    assert "Token authentication is enabled" not in res.stderr  # Ray's notice when it picks the default


def test_bad_ray_settings_are_a_clear_error_before_anything_runs(tmp_path: Path) -> None:
    suite = _suite(tmp_path, ray_actors={"actors": 0})
    res = run_cli("run", str(suite))
    assert res.returncode == 2 and "ray.actors" in res.stderr and "greater than or equal to 1" in res.stderr
    suite = _suite(tmp_path)
    res = run_cli("run", str(suite), "--executor", "spark")
    assert res.returncode == 2 and "--executor" in res.stderr and "'local' or 'ray'" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_actors_that_cannot_fit_are_refused_instead_of_waiting_for_ever(tmp_path: Path, local_ray: None) -> None:
    from harness.errors import ConfigError

    suite = _suite(tmp_path, executor="ray", audio=1, ray_actors={"actors": 2, "num_cpus": 1},
                   whisper_actors={"actors": 1, "num_cpus": 1})
    with pytest.raises(ConfigError, match=r"ask for 3 CPUs \(scripted 2, whisper 1\) and the Ray cluster has 2"):
        run_suite(suite, quiet=True)


def test_remote_apis_and_replays_stay_in_the_driver() -> None:
    from harness.adapters.base import ADAPTERS
    from harness.config import AdapterRef
    from harness.ray_executor import takes

    asked = AdapterRef.model_validate({"path": "x.yaml", "ray": {"actors": 4}})
    for kind in ("openai-chat", "openai-transcription", "replay"):
        assert not takes(ADAPTERS.get(kind), asked) and not takes(ADAPTERS.get(kind), AdapterRef(path="x.yaml"))
    for kind in ("faster-whisper", "python", "command"):
        assert takes(ADAPTERS.get(kind), AdapterRef(path="x.yaml"))


def test_an_actor_runs_one_whisper_replica_per_cpu_it_holds(tmp_path: Path) -> None:
    """The default profile's `num_workers: 2` on a 1-CPU actor would load two models and
    share one CPU between them: the actor fits the replicas to its CPUs (the profile, the
    record and the cache key keep the user's settings)."""
    from harness.adapters.base import CPUS_ENV
    from harness.adapters.faster_whisper import FasterWhisper
    from harness.ray_executor import AdapterActor
    from harness.validate import load_suite

    profile = next(a for a in load_suite(ROOT / "suite.yaml").suite.adapters if a.name == "whisper-tiny-local")
    settings: Any = profile.settings
    assert settings.num_workers == 2
    fits = {cpus: FasterWhisper.actor_settings(settings, cpus).num_workers for cpus in (0.5, 1, 2, 4, 0)}
    assert fits == {0.5: 1, 1: 1, 2: 2, 4: 2, 0: 2}
    before = os.environ.get(CPUS_ENV)
    try:
        actor = AdapterActor("faster-whisper", profile.name, profile.settings, profile.profile.declarations,
                             str(profile.base_dir), 1)
        assert actor.adapter.settings.num_workers == 1 and actor.adapter.concurrency() == 1
        assert actor.adapter.cache_identity() == FasterWhisper(
            profile.name, profile.settings, profile.profile.declarations, profile.base_dir).cache_identity()
    finally:
        os.environ.pop(CPUS_ENV, None) if before is None else os.environ.__setitem__(CPUS_ENV, before)


def test_a_scoring_actor_that_dies_loses_no_score(tmp_path: Path, local_ray: None) -> None:
    """Items queued for a scoring actor that dies go to the other; when none is left, the
    driver scores them. Every score equals the local scorers' (chrF, BLEU, TER statistics)."""
    import asyncio

    from harness.data import iter_items
    from harness.ray_executor import RayScoringPool, ScoringActor
    from harness.scoring.pool import cpu_bound_entries
    from harness.validate import load_suite

    write_jsonl(tmp_path / "items.jsonl", [{"id": f"t{i}", "source": f"take the tablet {i} twice a day",
                                            "reference": f"take one tablet {i} two times a day"} for i in range(90)])
    write_yaml(tmp_path / "task.yaml", {"name": "tr", "kind": "translation", "data_class": "public",
                                        "prompt": "{{ source }}", "dataset": {"path": "items.jsonl"}})
    write_yaml(tmp_path / "system.yaml", {"name": "s", "kind": "replay",
                                          "settings": {"path": "items.jsonl", "output_column": "reference"}})
    task = load_suite(write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                           "adapters": ["system.yaml"]})).suite.tasks[0]
    specs = {task.name: (task.config, cpu_bound_entries(task.scorers))}
    here = ScoringActor(specs, None)
    items = list(iter_items(task))
    output = {i.id: f"take the tablet {i.id[1:]} two times daily" for i in items}

    async def scenario() -> list[Any]:
        pool = RayScoringPool(specs, 2, 0, None, lambda t, item, out: here.score(t, item, out))
        await pool.ready()
        try:
            done = list(await asyncio.gather(*(pool.score(task.name, i, output[i.id]) for i in items[:30])))
            for lost in (1, 2):
                ray.kill(pool.actors[0])
                # one at a time until a batch has met the dead actor (whichever dispatcher waits first)
                while pool.lost < lost:
                    done.append(await pool.score(task.name, items[len(done)], output[items[len(done)].id]))
                assert len(pool.actors) == 2 - lost
                done += await asyncio.gather(*(pool.score(task.name, i, output[i.id])
                                               for i in items[len(done):len(done) + 15]))
            return done + list(await asyncio.gather(*(pool.score(task.name, i, output[i.id])
                                                      for i in items[len(done):])))
        finally:
            pool.close()

    scores = asyncio.run(scenario())
    assert [s.values for s in scores] == [here.score(task.name, i, output[i.id]).values for i in items]

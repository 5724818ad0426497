"""The adapter contract: a system under test that turns a Request into a Response."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.config import Declarations
from harness.errors import Problem
from harness.registry import Registry
from harness.types import Request, Response


class Settings(BaseModel):
    """Base of every adapter's settings schema."""

    model_config = ConfigDict(extra="forbid")


class Adapter(ABC):
    """Subclass, give `kind`, `modalities` and a `Settings` model, and register it.

    `setup` runs once per run (load a model, open a session); `generate` may be
    called concurrently up to the adapter's concurrency.
    """

    kind: ClassVar[str]
    modalities: ClassVar[frozenset[str]] = frozenset({"text"})
    Settings: ClassVar[type[Settings]] = Settings
    default_concurrency: ClassVar[int | None] = None
    #: bump when a change to the adapter's code can change its outputs: it is part of the cache key
    version: ClassVar[str] = "1"
    #: settings that cannot change an output (timeouts, where the key is read from); every
    #: other setting is part of the cache key, the endpoint and headers included
    cache_ignores: ClassVar[tuple[str, ...]] = ()
    #: False for adapters whose answers are already stored (replay): caching them gains nothing
    cacheable: ClassVar[bool] = True
    #: False for adapters that send nothing anywhere (replay): their calls are not logged as requests
    sends_requests: ClassVar[bool] = True
    #: True for adapters that compute on this machine (a local model, a script): under
    #: `executor: ray` they run on a pool of Ray actors; remote APIs stay in the driver's loop
    runs_on_actors: ClassVar[bool] = False
    #: requests sent to one Ray actor in one call: more amortises Ray's per-call cost (about a
    #: millisecond), fewer balances slow items across actors at the end of a run
    ray_batch_size: ClassVar[int] = 8
    #: requests the runner hands `generate_batch` in one call (0: one `generate` call each).
    #: For systems that answer faster in bulk: a lookup in an export, a local model's batched
    #: inference. Each answer is then checked, scored and recorded as if `generate` gave it.
    batch_size: ClassVar[int] = 0
    #: True when the answers are read from a file (replay): a record line lost in a crash costs
    #: nothing to read again, so answers are not flushed to disk one by one
    stored_answers: ClassVar[bool] = False

    @classmethod
    def actor_settings(cls, settings: Any, cpus: float) -> Any:
        """The settings one Ray actor holding `cpus` CPUs runs with (`executor: ray`): by default
        the profile's; an adapter whose parallelism is a setting fits it to the actor."""
        return settings

    def __init__(self, name: str, settings: Any, declarations: Declarations, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.declarations = declarations
        self.base_dir = base_dir

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        """Static checks on settings (files exist, callable importable); no model call."""
        return []

    @classmethod
    def read_paths(cls, settings: Any, base_dir: Path) -> dict[str, Path]:
        """Local files the adapter reads, by settings field: validation confines them to the
        suite's folder tree, since an adapter profile may come from someone else."""
        return {}

    #: True for adapters whose answers are keyed by item id (replay): `check_items` is called
    checks_items: ClassVar[bool] = False

    @classmethod
    def check_items(cls, settings: Any, base_dir: Path, file: str, task: str,
                    ids: Any) -> tuple[list[Problem], list[str]]:
        """Check the adapter against the task's item ids (a pyarrow string array, in dataset
        order): (problems, notes)."""
        return [], []

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models, open sessions. Runs once per run."""

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """Answer one request; raise `AdapterError` on failure."""

    async def generate_batch(self, requests: list[Request]) -> list[Response]:
        """Answer several requests at once (see `batch_size`), one response each, in order.
        If it raises, each request of the batch is asked again alone through `generate`,
        under the retry policy, so that only an item that fails there is an error."""
        return [await self.generate(request) for request in requests]

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what `setup` took."""

    def cache_identity(self) -> dict[str, Any]:
        """Everything that can change this adapter's output, for the response cache key.

        Defaults to the kind, the adapter's version and every setting not listed in
        `cache_ignores`; adapters add what the settings do not show (resolved headers,
        the code of a callable)."""
        data = self.settings.model_dump(mode="json")
        return {"kind": self.kind, "version": self.version,
                "settings": {k: v for k, v in data.items() if k not in self.cache_ignores}}

    def concurrency(self) -> int | None:
        """Requests this adapter takes at once unless the suite says otherwise (None: the
        suite's `concurrency`); a local model may depend on its settings."""
        return self.default_concurrency

    def secrets(self) -> list[str]:
        """Secret values this adapter holds, scrubbed from every error message."""
        return []

    def cost(self, response: Response) -> float | None:
        """Cost of a response from the declared prices; None if undeclared, or if a quantity
        priced is not known (a server that reports no usage): counted as zero, its tokens
        made the system look free."""
        prices = self.declarations.prices
        if prices is None:
            return None
        for price, quantity in ((prices.input_per_million_tokens, response.tokens_in),
                                (prices.output_per_million_tokens, response.tokens_out),
                                (prices.per_audio_minute, response.audio_seconds)):
            if price and quantity is None:
                return None
        total = prices.per_request
        total += (response.tokens_in or 0) * prices.input_per_million_tokens / 1e6
        total += (response.tokens_out or 0) * prices.output_per_million_tokens / 1e6
        total += (response.audio_seconds or 0) / 60 * prices.per_audio_minute
        return round(total, 8)

    def energy(self, response: Response) -> tuple[float, float] | None:
        """(Wh, gCO2eq) of a response by the declared method (harness.energy), or None."""
        decl = self.declarations.energy
        if decl is None:
            return None
        from harness.energy import estimate

        est = estimate(decl, response.tokens_out, response.latency_s)
        return None if est is None else (est.wh, est.g_co2)


ADAPTERS: Registry[type[Adapter]] = Registry(
    "adapter kind", "harness.adapters",
    builtins={"faster-whisper": "harness.adapters.faster_whisper", "openai-chat": "harness.adapters.openai_chat",
              "openai-transcription": "harness.adapters.openai_transcription", "replay": "harness.adapters.replay",
              "command": "harness.adapters.command", "python": "harness.adapters.python_callable"},
    name_attr="kind",
)


def register_adapter(kind: str) -> Any:
    """Class decorator: `@register_adapter("my-kind")`."""
    def deco(cls: type[Adapter]) -> type[Adapter]:
        cls.kind = kind
        return ADAPTERS.register(kind)(cls)
    return deco


#: set in a Ray actor to the CPUs Ray reserved for it: a local model sizes its threads by it
CPUS_ENV = "AVEC_HARNESS_CPUS"


def available_cores() -> int:
    """Cores this process may use: those a Ray actor was given, else the CPU affinity."""
    given = os.environ.get(CPUS_ENV)
    if given and given.isdigit() and int(given) > 0:
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: URL query parameters that carry credentials (`?key=` of Google APIs, `?sig=` of Azure SAS
#: URLs, `?access_token=`): their values are secrets like an Authorization header's
_CREDENTIAL_PARAM = re.compile(r"auth|key|token|secret|passw|cookie|sig|credential", re.IGNORECASE)


def url_credentials(url: str) -> list[str]:
    """The secrets written into a URL: the password of `user:password@host` (and the Basic
    credential it is sent as, which a gateway may quote in an error) and the values of
    credential-like query parameters."""
    import base64
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out = []
    if parts.password:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
        out += [unquote(parts.password), base64.b64encode(pair.encode()).decode()]
    out += [value for name, value in parse_qsl(parts.query) if value and _CREDENTIAL_PARAM.search(name)]
    return out


def redacted_url(url: str) -> str:
    """`url` with its credentials (see `url_credentials`) replaced by `<redacted>`, for the
    record: the endpoint stays readable, the password does not travel with the manifest."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.password:
        netloc = f"{parts.username or ''}:<redacted>@{netloc.rsplit('@', 1)[1]}"
    query = urlencode([(name, "<redacted>" if value and _CREDENTIAL_PARAM.search(name) else value)
                       for name, value in parse_qsl(parts.query, keep_blank_values=True)], safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


def env_secret(var: str | None, file: str, field: str) -> tuple[str | None, list[Problem]]:
    """Read an API key from the environment by name; never from a file."""
    if var is None:
        return None, []
    value = os.environ.get(var)
    if not value:
        return None, [Problem(file, field, f"environment variable {var} is not set",
                              expected="the API key in the environment")]
    return value, []

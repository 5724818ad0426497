"""What the HTTP adapters share: session, API key from the environment, error mapping."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from harness.adapters.base import Adapter, Settings, env_secret, url_credentials
from harness.errors import AdapterError, Problem

if TYPE_CHECKING:
    import aiohttp

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CREDENTIAL = re.compile(r"auth|key|token|secret|password|cookie|signature", re.IGNORECASE)


class HTTPSettings(Settings):
    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: str
    api_key_env: str | None = Field(default=None, description="name of the variable holding the key")
    headers: dict[str, str] = Field(default_factory=dict, description="values may use ${ENV_VAR}")
    connect_timeout_s: float = 10.0
    max_response_mb: float = Field(default=64, gt=0, description="a larger answer is the item's error, not read "
                                                                  "into memory (an endpoint's output is untrusted)")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds or as an HTTP-date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPAdapter(Adapter):
    """Base of adapters that talk to an HTTP API."""

    settings: HTTPSettings
    default_concurrency = None  # the suite decides: a remote API is not bound by this machine
    cache_ignores = ("connect_timeout_s", "api_key_env", "max_response_mb")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: aiohttp.ClientSession | None = None
        self._key: str | None = None
        self._headers: dict[str, str] = {}

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        _, problems = env_secret(settings.api_key_env, file, "settings.api_key_env")
        if settings.api_key_env and any(k.lower() == "authorization" for k in settings.headers):
            problems.append(Problem(file, "settings.headers.Authorization",
                                    "both an Authorization header and api_key_env are given; which key to send "
                                    "is ambiguous", expected="one of them"))
        for name, value in settings.headers.items():
            for var in _ENV_REF.findall(value):
                if var not in os.environ:
                    problems.append(Problem(file, f"settings.headers.{name}",
                                            f"environment variable {var} is not set"))
        return problems

    async def setup(self) -> None:
        self._key, _ = env_secret(self.settings.api_key_env, "", "")
        self._headers = {k: _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), v)
                         for k, v in self.settings.headers.items()}
        if self._key:
            self._headers["Authorization"] = f"Bearer {self._key}"

    def _client(self) -> aiohttp.ClientSession:
        """The connection pool, made at the first request: aiohttp is imported there, not with
        the adapter. Its import reads the system's certificates (~0.15 s in all), which a run
        answered from the cache, or `harness validate`, then does not pay."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout_s),
                headers=self._headers,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def secrets(self) -> list[str]:
        """The key, and the header values that carry credentials: those read from the
        environment or under a credential-like name. Other header values (a deployment name)
        are not secrets, and scrubbing them would rewrite ordinary words in the answers."""
        out = [self._key] if self._key else []
        out += url_credentials(self.settings.base_url)
        for name, value in self._headers.items():
            written = self.settings.headers.get(name, "")
            if value and (_ENV_REF.search(written) or _CREDENTIAL.search(name) or name.lower() == "authorization"):
                out.append(value)
                out.extend(part for part in value.split() if len(part) >= 8)  # "Bearer <token>": the token alone
        return out

    def cache_identity(self) -> dict[str, Any]:
        """The endpoint, the model and every header (a deployment or API version is often
        chosen by a header) are part of the key; header values only as hashes, since they
        may hold secrets."""
        identity = super().cache_identity()
        identity["settings"]["headers"] = {
            k.lower(): hashlib.sha256(v.encode()).hexdigest() for k, v in sorted(self._headers.items())
            if k.lower() != "authorization"}
        return identity

    def clock(self) -> float:
        """`time.perf_counter()` once the connection pool exists: a request's latency starts
        here. Making the pool the first time imports aiohttp (~0.15 s): this process's time,
        which the first answer of a 50 ms server counted (165-247 ms recorded)."""
        self._client()
        return time.perf_counter()

    def url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    async def post_stream(self, path: str, **kwargs: Any) -> AsyncIterator[dict[str, Any] | None]:
        """POST and yield each server-sent event's JSON (`data: {...}` lines), then None for
        `[DONE]` (a stream that ends without it may have been cut); failures map to
        AdapterError like `post`."""
        session = self._client()
        import aiohttp  # for its exceptions below; imported by now

        try:
            async with session.post(self.url(path), allow_redirects=False, **kwargs) as resp:
                _refuse_redirect(resp)
                if resp.status >= 400:
                    body = await self._read_capped(resp)
                    raise AdapterError(f"HTTP {resp.status}: {body[:300].decode('utf-8', 'replace')}",
                                       status=resp.status, retryable=resp.status in RETRYABLE_STATUS,
                                       retry_after=parse_retry_after(resp.headers.get("Retry-After")))
                limit, size = self._max_bytes(), 0
                if resp.content_length is not None and resp.content_length > limit:
                    raise self._too_large(resp.content_length, declared=True)
                async for raw in resp.content:
                    size += len(raw)
                    if size > limit:
                        raise self._too_large(size)
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, `event:` lines
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        yield None
                        return
                    try:
                        event = orjson.loads(payload)
                    except ValueError:
                        raise AdapterError(f"malformed event in stream: {payload[:120]!r}", retryable=True) from None
                    if isinstance(event, dict):
                        yield event
        except aiohttp.http_exceptions.LineTooLong:
            raise AdapterError("malformed event stream: a line longer than the client reads (128 KB)",
                               retryable=False) from None
        except aiohttp.ClientPayloadError as exc:
            raise AdapterError(f"truncated stream: {exc}", retryable=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise AdapterError(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None

    def _max_bytes(self) -> int:
        return int(self.settings.max_response_mb * 2**20)

    def _too_large(self, size: int, declared: bool = False) -> AdapterError:
        return AdapterError(f"response larger than max_response_mb ({self.settings.max_response_mb:g} MB): "
                            + (f"{size:,} bytes declared" if declared else f"stopped after {size:,} bytes"),
                            retryable=False)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, up to max_response_mb: refused at once when its declared length is larger;
        a body without one (chunked), or a compressed one, is read in pieces and stopped at the
        limit. A compressed body declares its compressed length: 1 MB of gzip can hold 1 GB,
        which aiohttp decompresses as it reads (read whole, it held 4.3 GB)."""
        limit = self._max_bytes()
        length = resp.content_length
        if length is not None:
            if length > limit:
                raise self._too_large(length, declared=True)
            if "Content-Encoding" not in resp.headers:
                return await resp.read()  # the usual case: one read, nothing more on the hot path
        pieces, size = [], 0
        async for piece in resp.content.iter_chunked(1 << 16):
            size += len(piece)
            if size > limit:
                raise self._too_large(size)
            pieces.append(piece)
        return b"".join(pieces)

    async def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """POST and return the JSON body; map failures to AdapterError with retry hints."""
        session = self._client()
        import aiohttp  # for its exceptions below; imported by now

        try:
            async with session.post(self.url(path), allow_redirects=False, **kwargs) as resp:
                _refuse_redirect(resp)
                body = await self._read_capped(resp)
                if resp.status >= 400:
                    snippet = body[:300].decode("utf-8", "replace")
                    raise AdapterError(f"HTTP {resp.status}: {snippet}", status=resp.status,
                                       retryable=resp.status in RETRYABLE_STATUS,
                                       retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        except aiohttp.ClientPayloadError as exc:
            raise AdapterError(f"truncated response body: {exc}", retryable=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise AdapterError(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None
        try:
            data = orjson.loads(body)
        except ValueError:
            raise AdapterError(f"malformed JSON in response: {body[:120]!r}", retryable=True) from None
        if not isinstance(data, dict):
            raise AdapterError("response JSON is not an object", retryable=True)
        return data


def _refuse_redirect(resp: aiohttp.ClientResponse) -> None:
    """Redirects are not followed: a 307 or 308 resends the request, prompt and patient data
    included, to whatever host the endpoint names, where the adapter's clearance and the
    suite's data class were decided for this one."""
    if 300 <= resp.status < 400:
        raise AdapterError(f"HTTP {resp.status}: the endpoint redirects to {resp.headers.get('Location', '?')!r}, "
                           "not followed (a redirect would send the request, its data and its key to another "
                           "address); set base_url to the address you mean", status=resp.status, retryable=False)


def usage_of(data: dict[str, Any]) -> dict[str, Any]:
    """A response's `usage` object, or {} where a server sends something else there."""
    usage = data.get("usage")
    return usage if isinstance(usage, dict) else {}

"""Any OpenAI-compatible chat completions endpoint."""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import Field

from harness.adapters.base import register_adapter
from harness.adapters.http import HTTPAdapter, HTTPSettings
from harness.errors import AdapterError
from harness.types import Request, Response


class ChatSettings(HTTPSettings):
    temperature: float | None = 0.0
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = None
    seed: int | None = Field(default=None, description="fixed seed; default: the run's per-repeat seed")
    extra_body: dict[str, Any] = Field(default_factory=dict)


@register_adapter("openai-chat")
class OpenAIChat(HTTPAdapter):
    """POST /chat/completions; records the model id and system fingerprint returned."""

    Settings = ChatSettings
    settings: ChatSettings

    async def generate(self, request: Request) -> Response:
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "messages": request.messages,
                                "seed": s.seed if s.seed is not None else request.seed}
        for key in ("temperature", "max_tokens", "top_p"):
            if getattr(s, key) is not None:
                body[key] = getattr(s, key)
        body.update(s.extra_body)
        start = time.perf_counter()
        # orjson instead of aiohttp's json=: the request body is on the hot path
        data = await self.post("/chat/completions", data=orjson.dumps(body),
                               headers={"Content-Type": "application/json"})
        latency = time.perf_counter() - start
        choices = data.get("choices")
        if not choices:
            raise AdapterError("response has no choices", retryable=True)
        message = (choices[0] or {}).get("message") or {}
        content = message.get("content")
        if content is None:
            raise AdapterError(f"no message content (finish_reason={choices[0].get('finish_reason')})")
        usage = data.get("usage") or {}
        return Response(output=content, latency_s=latency, tokens_in=usage.get("prompt_tokens"),
                        tokens_out=usage.get("completion_tokens"), model_id=data.get("model"),
                        system_fingerprint=data.get("system_fingerprint"))

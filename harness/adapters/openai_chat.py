"""Any OpenAI-compatible chat completions endpoint."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import orjson
from pydantic import Field

from harness.adapters.base import register_adapter
from harness.adapters.http import HTTPAdapter, HTTPSettings, usage_of
from harness.errors import AdapterError
from harness.types import Request, Response


class ChatSettings(HTTPSettings):
    temperature: float | None = 0.0
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = None
    seed: int | None = Field(default=None, description="fixed seed; default: the run's per-repeat seed")
    send_seed: bool = Field(default=True, description="false: send no seed, for endpoints that refuse the field "
                                                      "(Mistral models on Azure AI Foundry: 'extra_forbidden')")
    extra_body: dict[str, Any] = Field(default_factory=dict)
    stream: bool = Field(default=False, description="stream the answer: records the time to first token")
    thinking: Literal["strip", "keep"] = Field(
        default="strip", description="a leading <think>…</think> block (reasoning models served without a "
                                     "reasoning parser) is not the answer: strip it, or keep it in the output")


#: the reasoning that Qwen3, DeepSeek-R1 and their distills write before the answer, when the
#: server (vLLM, llama.cpp, Ollama) leaves it in `content`
_THINKING = re.compile(r"\A\s*<(think|thinking|reasoning)>.*?</\1>\s*", re.DOTALL | re.IGNORECASE)
_UNCLOSED = re.compile(r"\A\s*<(think|thinking|reasoning)>", re.IGNORECASE)


def without_thinking(text: str) -> str:
    """`text` less its leading thinking block; AdapterError when the text is all thinking (the
    model ran out of tokens before it answered)."""
    stripped = _THINKING.sub("", text, count=1)
    if stripped is text and _UNCLOSED.match(text):
        raise AdapterError("the answer is all thinking: no closing tag (raise max_tokens?)", retryable=False)
    return stripped


def message_text(content: Any) -> str | None:
    """A message's answer: its `content` text, or, where a compatible API answers in a list of
    parts (reasoning models: thinking, then text), the text parts joined; None when there is none.
    The thinking is not the answer: scored, its "The answer might be D" would count."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content
                 if isinstance(part, dict) and part.get("type") in ("text", "output_text")]
        return "".join(t for t in texts if isinstance(t, str)) if texts else None
    return str(content)


@register_adapter("openai-chat")
class OpenAIChat(HTTPAdapter):
    """POST /chat/completions; records the model id and system fingerprint returned."""

    Settings = ChatSettings
    settings: ChatSettings

    async def generate(self, request: Request) -> Response:
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "messages": request.messages}
        if s.send_seed:
            body["seed"] = s.seed if s.seed is not None else request.seed
        for key in ("temperature", "max_tokens", "top_p"):
            if getattr(s, key) is not None:
                body[key] = getattr(s, key)
        body.update(s.extra_body)
        if s.stream:
            return await self._generate_streamed(body)
        start = self.clock()
        # orjson instead of aiohttp's json=: the request body is on the hot path
        data = await self.post("/chat/completions", data=orjson.dumps(body),
                               headers={"Content-Type": "application/json"})
        latency = time.perf_counter() - start
        choices = data.get("choices")
        if not choices:
            raise AdapterError("response has no choices", retryable=True)
        message = (choices[0] or {}).get("message") or {}
        content = message_text(message.get("content"))
        if content is None:
            raise AdapterError(f"no message content (finish_reason={choices[0].get('finish_reason')})")
        usage = usage_of(data)
        return Response(output=self._answer(content), latency_s=latency, tokens_in=usage.get("prompt_tokens"),
                        tokens_out=usage.get("completion_tokens"), model_id=data.get("model"),
                        system_fingerprint=data.get("system_fingerprint"))

    def _answer(self, content: str) -> str:
        """The answer the scorers see: without its thinking block, unless `thinking: keep`."""
        return without_thinking(content) if self.settings.thinking == "strip" else content

    async def _generate_streamed(self, body: dict[str, Any]) -> Response:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        start = self.clock()
        parts: list[str] = []
        arrived: list[float] = []  # when each part came: the time to first token is the answer's
        usage: dict[str, Any] = {}
        model_id = fingerprint = None
        finished = done = False
        async for event in self.post_stream("/chat/completions", data=orjson.dumps(body),
                                            headers={"Content-Type": "application/json"}):
            if event is None:
                done = True
                break
            if isinstance(event.get("error"), dict | str):  # a failure reported inside the stream
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise AdapterError(f"error in stream: {str(message)[:300]}", retryable=True)
            model_id = event.get("model") or model_id
            fingerprint = event.get("system_fingerprint") or fingerprint
            usage = usage_of(event) or usage
            for choice in event.get("choices") or []:
                piece = message_text((choice.get("delta") or {}).get("content"))
                if piece:
                    arrived.append(time.perf_counter() - start)
                    parts.append(piece)
                finished = finished or choice.get("finish_reason") is not None
        if not finished and not parts:
            raise AdapterError("stream ended without content", retryable=True)
        if not finished and not done:  # the connection ended mid-answer: a cut answer is not an answer
            raise AdapterError("stream ended before the answer did (no finish_reason, no [DONE]): the answer "
                               "was cut", retryable=True)
        output = self._answer("".join(parts))
        return Response(output=output, latency_s=time.perf_counter() - start,
                        ttft_s=_first_token_of(output, parts, arrived),
                        tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"),
                        model_id=model_id, system_fingerprint=fingerprint)


def _first_token_of(answer: str, parts: list[str], arrived: list[float]) -> float | None:
    """When the part holding the answer's first character came: the first part, unless a
    thinking block was stripped from the front, whose tokens come long before the answer."""
    if not answer:
        return None
    skipped = sum(map(len, parts)) - len(answer)  # the stripped block's characters
    seen = 0
    for part, when in zip(parts, arrived, strict=True):
        seen += len(part)
        if seen > skipped:
            return when
    return None  # not reached: a non-empty answer ends in the last part

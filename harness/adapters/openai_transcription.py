"""`/audio/transcriptions` on any OpenAI-compatible server."""

from __future__ import annotations

import time

from harness.adapters.base import register_adapter
from harness.adapters.http import HTTPAdapter, HTTPSettings, usage_of
from harness.errors import AdapterError
from harness.types import Request, Response


class TranscriptionSettings(HTTPSettings):
    language: str | None = None
    temperature: float | None = 0.0
    prompt: str | None = None


@register_adapter("openai-transcription")
class OpenAITranscription(HTTPAdapter):
    Settings = TranscriptionSettings
    settings: TranscriptionSettings
    modalities = frozenset({"audio"})

    async def generate(self, request: Request) -> Response:
        import aiohttp  # with the adapter's first request (see HTTPAdapter._client)

        assert request.audio is not None
        s = self.settings
        form = aiohttp.FormData()
        # the file object, not its bytes: aiohttp streams it from a thread, where reading an
        # hour of WAV (~115 MB) blocked the event loop and held it in memory per request
        audio = request.audio.open("rb")
        form.add_field("file", audio, filename=request.audio.name)
        form.add_field("model", s.model)
        form.add_field("response_format", "json")
        language = s.language or request.language
        if language:
            form.add_field("language", language)
        if s.temperature is not None:
            form.add_field("temperature", str(s.temperature))
        if s.prompt:
            form.add_field("prompt", s.prompt)
        start = self.clock()
        try:
            data = await self.post("/audio/transcriptions", data=form)
        finally:
            audio.close()
        latency = time.perf_counter() - start
        text = data.get("text")
        if not isinstance(text, str):
            raise AdapterError("response has no 'text'", retryable=True)
        usage = usage_of(data)
        return Response(output=text, latency_s=latency, model_id=data.get("model") or s.model,
                        audio_seconds=data.get("duration") or usage.get("seconds"),
                        tokens_in=usage.get("input_tokens"), tokens_out=usage.get("output_tokens"))

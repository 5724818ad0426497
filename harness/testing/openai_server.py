"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks `/v1/chat/completions`, `/v1/audio/transcriptions` and `/v1/models`
over real sockets (stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive), counts the
requests it receives, and answers through a replaceable `responder`. It binds
only to loopback addresses.

    with OpenAIServer() as server:
        server.base_url  # http://127.0.0.1:PORT/v1
        server.count("chat")
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import gzip
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ChatResponder = Callable[[dict[str, Any]], str]
#: (request key, attempt number from 1) → a fault mode or None; the key is the last user message
FaultPlan = Callable[[str, int], str | None]
FAULT_MODES = ("429", "429-date", "500", "502", "503", "400", "401-echo", "reset", "slow", "malformed", "truncated",
               "empty_choices", "oversized", "endless")


def default_chat_responder(body: dict[str, Any]) -> str:
    """Echo the answer a prompt asks for ('... ANSWER=B ...'), else 'The answer is A.'"""
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    m = re.search(r"ANSWER=(\w+)", text)
    return f"The answer is {m.group(1) if m else 'A'}."


def send_endless(handler: BaseHTTPRequestHandler, start: bytes) -> None:
    """A 200 whose chunked body (`start`, then 64 KB pieces) never ends, until the client
    hangs up: what a client that reads a whole body would hold in memory without limit."""
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = start + b"x" * 65536
    with contextlib.suppress(OSError):
        while True:
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops connections when 32 clients connect at once
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or are killed mid-request are expected in fault tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0,
                 responder: ChatResponder = default_chat_responder,
                 transcripts: dict[str, str] | None = None, model: str = "local-test-model") -> None:
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError("the test server binds to loopback only")
        self.latency_s = latency_s
        self.responder = responder
        self.transcripts = transcripts or {}
        self.model = model
        self.fingerprint = "fp_local_1"
        self.fault: FaultPlan | None = None
        self.slow_s = 2.0
        self.stream_delay_s = 0.0  # between streamed chunks
        self.retry_after_s = 0.05
        self.oversized_bytes = 4 << 20
        self.redirect_to = ""  # where the "redirect" fault sends the client (scheme://host:port)
        self.content_parts = False  # answer `content` as a list of parts
        #: request fields refused as a strict (pydantic) server refuses them: 422 extra_forbidden
        self.forbidden_fields: set[str] = set()
        self.attempts: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.httpd = _QuietServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"  # type: ignore[str-bytes-safe]

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(self.counts.values()) if kind is None else self.counts[kind]

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, kind: str, auth: str | None, body: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.auth_headers.append(auth)
            if body is not None and len(self.bodies) < 10_000:
                self.bodies.append(body)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        content = self.responder(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        # as reasoning models on some compatible APIs answer: a list of parts, thinking first
        message: Any = ([{"type": "thinking", "thinking": "Let me think. The answer might be D."},
                         {"type": "text", "text": content}] if self.content_parts else content)
        return {"id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()),
                "model": self.model, "system_fingerprint": self.fingerprint,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": message},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                          "total_tokens": prompt_tokens + len(content.split())}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every keep-alive response
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
                      declared_length: int | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(declared_length or len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, completion: dict[str, Any], cut: str | None = None) -> None:
                """Server-sent events as OpenAI streams them: one chunk per word, `stream_delay_s`
                apart, then a usage chunk and [DONE]. `cut`: after the first word, end the body
                there ("stream_cut") or send an error event and [DONE] ("stream_error")."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def event(payload: dict[str, Any] | str) -> None:
                    data = ("data: " + (payload if isinstance(payload, str) else json.dumps(payload)) + "\n\n").encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
                content = completion["choices"][0]["message"]["content"]
                parts = isinstance(content, list)
                words = (content[-1]["text"] if parts else content).split(" ")
                if parts:  # the thinking part first, as a delta of its own
                    event({**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": {"content": content[:1]}, "finish_reason": None}]})
                for i, word in enumerate(words):
                    if i:
                        time.sleep(server.stream_delay_s)
                    piece = word if i == 0 else " " + word
                    event({**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": {"content": [{"type": "text", "text": piece}] if parts else piece},
                         "finish_reason": None}]})
                    if cut == "stream_error":
                        event({"error": {"message": "The server had an error while processing your request."}})
                        event("[DONE]")
                    if cut:
                        self.wfile.write(b"0\r\n\r\n")
                        return
                event({**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop"}]})
                event({**base, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]})
                event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")

            def _fault(self, mode: str) -> bool:
                """Apply a fault; True when the request has been answered (or dropped)."""
                if mode in ("429", "429-date"):
                    after = (str(server.retry_after_s) if mode == "429" else
                             email.utils.formatdate(time.time() + server.retry_after_s, usegmt=True))
                    self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": after})
                elif mode in ("500", "502", "503", "400"):
                    self._send(int(mode), {"error": {"message": f"injected {mode}"}})
                elif mode == "401-echo":  # some gateways quote the credential they refused
                    self._send(401, {"error": {"message": f"invalid credential: {self.headers.get('Authorization')}"}})
                elif mode == "reset":
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                elif mode == "slow":
                    time.sleep(server.slow_s)
                    return False
                elif mode == "malformed":
                    self._send(200, b'{"choices": [{"message": ')
                elif mode == "truncated":
                    self.close_connection = True
                    self._send(200, b'{"choices": [', declared_length=400)
                elif mode == "empty_choices":
                    self._send(200, {"id": "x", "model": server.model, "choices": []})
                elif mode == "oversized":  # a valid answer of `oversized_bytes`
                    completion = server.chat({})
                    completion["choices"][0]["message"]["content"] = "A" * server.oversized_bytes
                    self._send(200, completion)
                elif mode == "redirect":  # 307 keeps the method and the body: the prompt would go there too
                    self.send_response(307)
                    self.send_header("Location", server.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode == "endless":
                    send_endless(self, b'{"pad": "')
                else:
                    raise ValueError(mode)
                return True

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    server._record("models", self.headers.get("Authorization"))
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                auth = self.headers.get("Authorization")
                if server.latency_s:
                    time.sleep(server.latency_s)
                if self.path.endswith("/chat/completions"):
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError:
                        self._send(400, {"error": {"message": "invalid JSON"}})
                        return
                    server._record("chat", auth, body)
                    refused = sorted(server.forbidden_fields.intersection(body))
                    if refused:
                        self._send(422, {"detail": [{"type": "extra_forbidden", "loc": ["body", name],
                                                     "msg": "Extra inputs are not permitted"} for name in refused]})
                        return
                    key = next((str(m.get("content")) for m in reversed(body.get("messages", []))
                                if m.get("role") == "user"), "")
                    with server._lock:
                        server.attempts[key] += 1
                        attempt = server.attempts[key]
                    mode = server.fault(key, attempt) if server.fault else None
                    if mode in ("stream_cut", "stream_error"):
                        self._stream(server.chat(body), cut=mode)
                        return
                    if mode in ("gzip", "gzip_bomb"):  # Content-Length is the compressed size
                        completion = server.chat(body)
                        if mode == "gzip_bomb":  # `oversized_bytes` of answer in a body ~1,000 times smaller
                            completion["choices"][0]["message"]["content"] = "0" * server.oversized_bytes
                        self._send(200, gzip.compress(json.dumps(completion).encode(), compresslevel=1),
                                   headers={"Content-Encoding": "gzip"})
                        return
                    if mode and self._fault(mode):
                        return
                    with server._lock:
                        server.completed[key] += 1
                    if body.get("stream"):
                        self._stream(server.chat(body))
                    else:
                        self._send(200, server.chat(body))
                elif self.path.endswith("/audio/transcriptions"):
                    match = re.search(rb'filename="([^"]+)"', raw)
                    filename = match.group(1).decode() if match else ""
                    server._record("transcription", auth, {"filename": filename, "bytes": len(raw)})
                    self._send(200, {"text": server.transcripts.get(filename, "hello world"), "duration": 1.5})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible server (loopback only)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = OpenAIServer(port=args.port, latency_s=args.latency)
    print(f"serving {server.base_url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()

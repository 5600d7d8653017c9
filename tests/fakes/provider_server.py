"""A local HTTP server that speaks Anthropic's Messages API and OpenAI's Chat Completions API.

Tests drive the real SDKs against it: the network is faked at the transport boundary, not inside
our code. A test queues responses (status, body, headers) per path, and reads back every request
the SDK sent (to check tools, cache breakpoints, tool results, and that no retry happened).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANTHROPIC_MESSAGES_PATH = "/v1/messages"
OPENAI_CHAT_PATH = "/v1/chat/completions"

# Anthropic's error `type` for each status, as its API documents them.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class ScriptedResponse:
    """One queued answer. `body` is JSON-encoded unless it is already bytes or str (sent verbatim,
    which is how a test sends a malformed body)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (to make the client time out)."""

    def encoded_body(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it. Header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeProviderServer:
    """Serves queued responses on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ScriptedResponse]] = {}
        self._requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # Keep-alive connections would otherwise make `stop()` wait on idle handler threads.
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        # A short poll interval keeps `stop()` (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-provider",
            daemon=True,
        )

    # --- lifecycle ---
    def start(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- where the SDKs point ---
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_base_url(self) -> str:
        """What `AsyncAnthropic(base_url=...)` takes (the SDK appends `/v1/messages`)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """What `AsyncOpenAI(base_url=...)` takes (the SDK appends `/chat/completions`)."""
        return f"{self.url}/v1"

    # --- scripting ---
    def enqueue(self, path: str, *responses: ScriptedResponse) -> None:
        """Answer the next requests to `path` with `responses`, in order."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(responses)

    def enqueue_anthropic(self, *responses: ScriptedResponse) -> None:
        self.enqueue(ANTHROPIC_MESSAGES_PATH, *responses)

    def enqueue_openai(self, *responses: ScriptedResponse) -> None:
        self.enqueue(OPENAI_CHAT_PATH, *responses)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    # --- called by the handler thread ---
    def _answer(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self._requests.append(request)
            queue = self._queues.get(request.path)
            if queue:
                return queue.popleft()
        if request.path not in (ANTHROPIC_MESSAGES_PATH, OPENAI_CHAT_PATH):
            return _not_found(request.path)
        message = f"fake provider server: nothing queued for {request.path}"
        if request.path == ANTHROPIC_MESSAGES_PATH:
            return anthropic_error(500, message)
        return openai_error(500, message, error_type="server_error")


def _handler_for(server: FakeProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            request = RecordedRequest(
                method=self.command,
                path=self.path.split("?", 1)[0],
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self._read_body(),
            )
            scripted = server._answer(request)
            if scripted.delay_s:
                time.sleep(scripted.delay_s)
            body = scripted.encoded_body()
            headers = _default_headers(request.path)
            headers.update({name.lower(): value for name, value in scripted.headers.items()})
            try:
                self.send_response(scripted.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test): nothing left to answer.
                self.close_connection = True

        def _read_body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def _default_headers(path: str) -> dict[str, str]:
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    headers = {"content-type": "application/json"}
    if path == OPENAI_CHAT_PATH:
        headers["x-request-id"] = request_id
        headers["openai-processing-ms"] = "42"
    else:
        headers["request-id"] = request_id
    return headers


def _not_found(path: str) -> ScriptedResponse:
    return ScriptedResponse(
        404,
        {"type": "error", "error": {"type": "not_found_error", "message": f"Not found: {path}"}},
    )


# --- Anthropic bodies ---
def anthropic_text(text: str) -> dict[str, Any]:
    """A `text` content block."""
    return {"type": "text", "text": text}


def anthropic_tool_use(call_id: str, name: str, tool_input: Any) -> dict[str, Any]:
    """A `tool_use` content block (`tool_input` is sent as given, to test malformed input)."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def anthropic_message(
    *content: dict[str, Any],
    stop_reason: str = "end_turn",
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_read_input_tokens: int | None = 0,
    cache_creation_input_tokens: int | None = 0,
    headers: Mapping[str, str] | None = None,
) -> ScriptedResponse:
    """A 200 Messages API response."""
    body = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "service_tier": "standard",
        },
    }
    return ScriptedResponse(200, body, dict(headers or {}))


def anthropic_error(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ScriptedResponse:
    """An error response in Anthropic's shape: {"type": "error", "error": {"type", "message"}}."""
    body = {
        "type": "error",
        "error": {"type": error_type or ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }
    return ScriptedResponse(status, body, dict(headers or {}))


# --- OpenAI bodies ---
def openai_tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A function tool call; `arguments` is the JSON string the model produced (maybe malformed)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def openai_completion(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int | None = 0,
    headers: Mapping[str, str] | None = None,
) -> ScriptedResponse:
    """A 200 Chat Completions response with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    return ScriptedResponse(200, body, dict(headers or {}))


def openai_error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ScriptedResponse:
    """An error response in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return ScriptedResponse(status, body, dict(headers or {}))


# --- broken answers ---
def truncated_json(status: int = 200) -> ScriptedResponse:
    """A body cut off mid-object, labelled as JSON (a proxy or the provider dropped the rest)."""
    return ScriptedResponse(status, b'{"id": "msg_01", "type": "message", "content": [{"type": "te')

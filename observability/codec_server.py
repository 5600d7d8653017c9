"""A small codec server: the Temporal UI posts encrypted or compressed payloads
to `/decode` and gets them back readable, so only operators who can reach a server holding the key
see encrypted data. `/encode` is the reverse (the UI uses it to send signals with encoded input).

    python -m observability.codec_server                 # listens on 127.0.0.1:$CODEC_SERVER_PORT
    python -m observability.codec_server --generate-key  # prints a new PAYLOAD_ENCRYPTION_KEY
    temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8081

Both endpoints take and return `{"payloads": [...]}` in Temporal's protobuf JSON. CORS answers
the configured UI origins only; `codec_server_token` adds a bearer-token check.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from observability.codec import CodecChain, CompressionCodec, EncryptionCodec
from settings import Settings, get_settings

_MAX_BODY = 8 * 1024 * 1024


class CodecServer:
    """Serves `/encode` and `/decode` for one codec on 127.0.0.1 (port 0: a free one) from a thread."""

    def __init__(
        self,
        codec: PayloadCodec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cors_origins: Sequence[str] = (),
        token: str | None = None,
    ) -> None:
        self.codec = codec
        self.cors_origins = set(cors_origins)
        self.token = token
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """Where to point `--ui-codec-endpoint`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CodecServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def transform(self, path: str, body: bytes) -> bytes:
        """Run the codec over a `{"payloads": [...]}` body."""
        payloads = Payloads()
        json_format.Parse(body or b"{}", payloads)
        if path == "/encode":
            out = asyncio.run(self.codec.encode(list(payloads.payloads)))
        else:
            out = asyncio.run(self.codec.decode(list(payloads.payloads)))
        return json_format.MessageToJson(Payloads(payloads=out)).encode()


def _handler_for(server: CodecServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin and origin in server.cors_origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Vary", "Origin")

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._reply(status, json.dumps({"error": message}).encode())

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self._cors()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path not in ("/encode", "/decode"):
                self._error(404, f"no endpoint {path}")
                return
            if server.token is not None:
                sent = self.headers.get("Authorization", "")
                if not hmac.compare_digest(sent.encode(), f"Bearer {server.token}".encode()):
                    self._error(401, "missing or wrong bearer token")
                    return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._error(413, "body too large")
                return
            try:
                body = server.transform(path, self.rfile.read(length))
            except (json_format.ParseError, ValueError) as exc:
                # Never echo payload contents: only the kind of problem.
                self._error(400, f"{type(exc).__name__}: cannot {path[1:]} these payloads")
                return
            except Exception as exc:  # a bad tag (wrong key) raises InvalidTag, which has no message
                self._error(400, f"{type(exc).__name__}: cannot {path[1:]} these payloads")
                return
            self._reply(200, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines would only repeat paths; payloads are never logged

    return Handler


def from_settings(settings: Settings, port: int | None = None) -> CodecServer:
    """The codec server for the configured codecs: compressed payloads always, encrypted ones
    with the configured key (without one, encrypted payloads come back as they are)."""
    encryption = EncryptionCodec.from_settings(settings)
    codecs: list[PayloadCodec] = [CompressionCodec.from_settings(settings)]
    if encryption is not None:
        codecs.append(encryption)
    return CodecServer(
        CodecChain(codecs),
        port=settings.codec_server_port if port is None else port,
        cors_origins=settings.codec_server_cors_origins,
        token=settings.codec_server_token,
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m observability.codec_server [--port P] [--generate-key]`."""
    from observability.codec import generate_key

    parser = argparse.ArgumentParser(
        description="Temporal codec server for encrypted or compressed AI Factory payloads"
    )
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--generate-key", action="store_true", help="print a new base64 AES-256 key and exit")
    args = parser.parse_args(argv)
    if args.generate_key:
        print(generate_key())
        return
    server = from_settings(get_settings(), args.port)
    print(
        f"codec server on {server.url} (origins: {', '.join(sorted(server.cors_origins)) or 'none'})",
        flush=True,
    )
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

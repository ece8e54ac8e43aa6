"""A real HTTP server on a loopback port for tests: scripted answers per path, every request
recorded. Plays the provider an ``http`` block calls and the alert webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LoopbackServer:
    url: str
    # path -> answers served in order; the last one repeats
    script: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0  # most requests being answered at once (concurrency seen)

    def answer(self, path: str, *answers: Answer) -> str:
        with self.lock:
            self.script[path] = list(answers)
        return f"{self.url}{path}"

    def hits(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def _next(self, path: str) -> Answer:
        with self.lock:
            answers = self.script.get(path.split("?")[0])
            if not answers:
                return Answer(404, {"message": f"no route {path}"})
            return answers.pop(0) if len(answers) > 1 else answers[0]


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a batch run's 16 requests opening connections at once
    # overflowed it, and the connections dropped waited a second for the client's SYN to be
    # sent again (the IO-bound benchmarks measured that second, not the provider's delay).
    request_queue_size = 128


@contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    state: dict[str, LoopbackServer] = {}

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a provider behind any production server answers: HTTP/1.0 (the
        # default) closed every connection, so each request paid a new connection.
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            server = state["server"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with server.lock:
                server.requests.append(Recorded(self.command, self.path, dict(self.headers),
                                                body))
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            answer = server._next(self.path)
            if answer.delay:
                time.sleep(answer.delay)
            with server.lock:
                server.in_flight -= 1
            payload = b"" if answer.body is None else (
                answer.body.encode() if isinstance(answer.body, str)
                else json.dumps(answer.body).encode())
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json"
                                 if not isinstance(answer.body, str) else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server = LoopbackServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    state["server"] = server
    # shutdown() waits for the loop to see it: at 0.5 s (the default) every test ending with a
    # loopback server waited about that long.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()

"""A local HTTP receiver for notifications: records each POST, answers as scripted, can hang."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class Receiver:
    def __init__(self, answers: list[int] | None = None, *, hang: bool = False) -> None:
        self.answers = list(answers or [])  # status codes for the first requests, then 200
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()
        self.waiting = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append((self.path, body))
                    code = outer.answers.pop(0) if outer.answers else 200
                    outer.waiting += 1
                outer.release.wait(30)
                with lock:
                    outer.waiting -= 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[tuple[str, str]]:
        return [(body["event"], body["subject"]) for _, body in self.requests]

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

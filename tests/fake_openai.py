"""The HTTP plumbing shared by the tests' in-process OpenAI-compatible servers on 127.0.0.1
(no external network). A subclass decides each reply in :meth:`FakeOpenAIServer.handle`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chat_completion(content, **choice) -> dict:
    """A ``chat.completion`` body with one assistant choice; ``choice`` adds keys to it
    (e.g. ``logprobs``)."""
    return {"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content},
         **choice}
    ]}


class FakeOpenAIServer:
    """``with Server(...) as srv:`` serves on ``srv.url`` (``http://127.0.0.1:PORT/v1``) until
    the block ends; constructing one binds the port but starts nothing. Every POST body is
    parsed as JSON and passed to :meth:`handle`, whose ``(status, object)`` is sent back as
    JSON. ``requests`` is for subclasses to fill (see :meth:`record`)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code, obj = server.handle(self, body)
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def record(self, body: dict) -> int:
        """Append ``body`` to ``requests``; its index there (0 for the first request)."""
        with self.lock:
            self.requests.append(body)
            return len(self.requests) - 1

    def handle(self, handler: BaseHTTPRequestHandler, body: dict) -> tuple[int, dict]:
        """The reply to one POST: ``handler`` gives its ``path`` and ``headers``."""
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

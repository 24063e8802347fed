"""A local HTTP receiver for publishing tests (127.0.0.1, a free port): it records every
request and answers each as told by a script of cues, then with 200.

Cues, one per request in arrival order (or per idempotency key with `per_key`): an HTTP
status (500, 503, 400, 200, ...), "hang" (answer nothing until the client gives up), or
"close" (drop the connection without an answer).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    key: str | None
    auth: str | None
    body: dict
    answered: int | None  # status sent, None for hang / close
    at: float = field(default_factory=time.monotonic)


class Receiver:
    def __init__(self, cues: list | None = None, per_key: list | None = None, delay: float = 0.0,
                 hang_seconds: float = 5.0):
        self.cues = list(cues or [])
        self.per_key = list(per_key or [])  # the n-th request of each key gets per_key[n]
        self.delay = delay
        self.hang_seconds = hang_seconds
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # where a followed redirect would land
                with receiver.lock:
                    receiver.received.append(Received(None, self.headers.get("Authorization"), {"GET": self.path}, 200))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    seen = sum(r.key == key for r in receiver.received)
                    if receiver.per_key:
                        cue = receiver.per_key[seen] if seen < len(receiver.per_key) else 200
                    else:
                        cue = receiver.cues.pop(0) if receiver.cues else 200
                    got = Received(key, self.headers.get("Authorization"), body, cue if isinstance(cue, int) else None)
                    receiver.received.append(got)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if cue == "hang":
                    time.sleep(receiver.hang_seconds)
                    return
                if cue == "close":
                    self.close_connection = True
                    return
                self.send_response(cue)
                if 300 <= cue < 400:
                    self.send_header("Location", receiver.url + "/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/assets"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> dict[str, list[dict]]:
        """key -> the bodies answered with a 2xx."""
        out: dict[str, list[dict]] = {}
        for r in self.received:
            if r.answered is not None and 200 <= r.answered < 300:
                out.setdefault(r.key, []).append(r.body)
        return out

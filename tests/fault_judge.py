"""A real OpenAI-compatible HTTP judge on loopback whose faults are chosen by URL.

`http://127.0.0.1:PORT/<mode>/v1/chat/completions`, where mode is:

- `ok`: a deterministic verdict: `Rating: [[n]]` with n = 1 + sha256(prompt) % 10, or `[[A]]` /
  `[[B]]` for pairwise prompts;
- `slow`: as ok, after `delay` seconds (so that a test can kill a run mid-judging);
- `flaky`: HTTP 503 for the first two attempts at each distinct request, then as ok;
- `down`: always HTTP 500;
- `timeout`: answers only after 3 s (longer than the tests' client timeout);
- `malformed`: HTTP 200 with a body that is not JSON;
- `unparsable`: valid JSON whose reply holds no verdict;
- `mixed`: unparsable for prompts whose hash is even, else as ok.

It is a fault injector, not a model: verdicts depend only on the request, so tests can compute
the exact metric a run must report. Every request is logged with its Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def rating_for(prompt_text: str) -> int:
    return 1 + _digest(prompt_text) % 10


class FaultJudge:
    def __init__(self, delay: float = 0.1):
        self.delay = delay
        self.requests: list[dict] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self.send_response(404)
                self.end_headers()

            def do_POST(self):
                mode = self.path.strip("/").split("/")[0]
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                text = "\n".join(m["content"] for m in request["messages"])
                with judge.lock:
                    judge.requests.append({"mode": mode, "auth": self.headers.get("Authorization"), "text": text})
                    judge.attempts[body.decode()] += 1
                    attempt = judge.attempts[body.decode()]
                if mode == "down" or (mode == "flaky" and attempt <= 2):
                    return self._reply(503 if mode == "flaky" else 500, b'{"error": "overloaded"}')
                if mode == "timeout":
                    time.sleep(3)
                if mode == "slow":
                    time.sleep(judge.delay)
                if mode == "malformed":
                    return self._reply(200, b'{"choices": [{"message": {"content": "Rating: [[7')
                if mode == "unparsable" or (mode == "mixed" and _digest(text) % 2 == 0):
                    return self._content("I would rather not give a number.")
                if "[[A]]" in text and "[[B]]" in text:
                    return self._content("Verdict: [[A]]" if _digest(text) % 2 else "Verdict: [[B]]")
                return self._content(f"Some reasoning. Rating: [[{rating_for(text)}]]")

            def _content(self, content: str) -> None:
                payload = {
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ]
                }
                self._reply(200, json.dumps(payload).encode())

            def _reply(self, code: int, payload: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    def count(self, mode: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if mode is None or r["mode"] == mode)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

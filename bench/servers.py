"""Servers a benchmark starts (gunicorn, daphne, Celery workers): a free port, a process logging to
a file of the temporary directory, and the wait until it answers; and a slow HTTP peer for steps to call."""

import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.environment import PROJECT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(args: list[str], name: str, env: dict[str, str], *, cwd: Path = PROJECT) -> subprocess.Popen:
    """Start `args` in the project (or the checkout `cwd`) with `env`, logging errors only, to
    <tmp>/dwc-bench-<name>.log."""
    log = open(Path(tempfile.gettempdir()) / f"dwc-bench-{name}.log", "w")  # noqa: SIM115
    return subprocess.Popen(args, cwd=cwd, env={**env, "LOG_LEVEL": "ERROR"}, stdout=log, stderr=subprocess.STDOUT)


def wait_for_health(base: str, *, server: str, timeout: float = 60) -> None:
    """Return once GET <base>/health answers 200; TimeoutError("<server> did not start") after `timeout` s."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server} did not start")
        time.sleep(0.2)


def slow_peer(seconds: float) -> ThreadingHTTPServer:
    """A local HTTP server, serving in a thread of its own, that answers every GET with `{"ok": true}`
    after `seconds`: what an http_request step waits on (its port: `.server_port`)."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(seconds)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

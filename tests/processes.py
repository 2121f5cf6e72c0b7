"""Real processes for end-to-end tests: the server, Celery workers, and waiting on them."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import httpx

PROJECT_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url_for_subprocesses() -> str:
    """A DATABASE_URL for child processes that reaches this test process's database, whether it
    listens on TCP or, as the embedded server does, on a Unix socket (passed as ?host=, which keeps
    the directory's case; a socket path in the URL's host part would be lower-cased)."""
    from django.conf import settings
    from django.db import connection

    database = settings.DATABASES["default"]
    name = connection.settings_dict["NAME"]  # the test database once pytest-django has made it
    if database["HOST"].startswith("/"):
        return f"postgres://{database['USER']}@/{name}?host={quote(database['HOST'], safe='/')}"
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{name}"


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment without this test process's Django settings, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(overrides)
    return env


class Process:
    """A child process in its own session, with its output in a file that failures can show."""

    started: ClassVar[list["Process"]] = []

    def __init__(self, args: list[str], env: dict[str, str], name: str):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"dwc-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.popen = subprocess.Popen(
            args, cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        Process.started.append(self)

    @classmethod
    def running(cls) -> set["Process"]:
        cls.started = [process for process in cls.started if process.popen.poll() is None]
        return set(cls.started)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 10) -> float:
        """SIGTERM the whole group; return how long it took to exit (SIGKILL after `timeout`)."""
        started = time.monotonic()
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(5)
        return time.monotonic() - started

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.popen.pid}>\n{self.output()[-4000:]}"


def wait_for_http(url: str, process: Process, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{process.output()}")


# How the product's HTTP servers are started: daphne as `make run` serves (embedded and distributed
# modes), gunicorn as the distributed mode's web service. One gunicorn worker process: a request that
# held it would hold every request.
SERVER_COMMANDS = {
    "daphne": [".venv/bin/python", "manage.py", "serve", "--port", "{port}"],
    "gunicorn": [".venv/bin/gunicorn", "-c", "config/gunicorn.py", "config.wsgi", "--workers", "1", "--bind", "{host}"],
}


@contextlib.contextmanager
def serving(kind: str, env: dict[str, str]) -> Iterator[tuple[str, Process]]:
    """The product served by `kind` (a key of SERVER_COMMANDS) with `env`, once /health answers:
    its base URL and process. Stopped at the end, which must take less than 10 s."""
    port = free_port()
    args = [part.format(port=port, host=f"127.0.0.1:{port}") for part in SERVER_COMMANDS[kind]]
    process = Process(args, env, kind)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", process)
        yield base, process
    except AssertionError as error:
        # What the server logged (a 500's traceback) is what tells why a check of its answers failed.
        raise AssertionError(f"{error}\n--- what {kind} logged, the end ---\n{process.output()[-4000:]}") from error
    finally:
        assert process.stop() < 10, process


def wait_until(predicate, timeout: float, interval: float = 0.1, message="condition"):
    """Poll `predicate` until truthy; `message` may be a callable, evaluated only on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message() if callable(message) else message} not met within {timeout}s")

"""Cancelling a run cuts off its email step's SMTP send at once: a real worker, a real (stalling) SMTP peer."""

import socket
import threading
import time

import pytest

from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, wait_for_run, worker_env
from workflows.models import StepRun

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT_SECONDS = 0.5
# Far longer than the test may take: a send that ends is cut off by the cancel, not by a timeout.
EMAIL_TIMEOUT_SECONDS = 60


class StallingSMTPServer:
    """Takes the message up to its final dot, then never answers: the client waits for its 250.

    Notes when the message was taken and when the client hung up (its end of the connection shut).
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stalled, self.hung_up = threading.Event(), threading.Event()
        self.hung_up_at = 0.0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(EMAIL_TIMEOUT_SECONDS * 2)
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 test ESMTP\r\n")
            while line := lines.readline():
                command = line.strip().upper()
                if command == b"DATA":
                    connection.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    while lines.readline() not in (b".\r\n", b""):
                        pass
                    self.stalled.set()
                    while lines.readline():  # b"" once the client has shut the connection
                        pass
                    break
                connection.sendall(b"250 OK\r\n")  # EHLO, MAIL FROM, RCPT TO
        self.hung_up_at = time.monotonic()
        self.hung_up.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def smtp_server():
    server = StallingSMTPServer()
    yield server
    server.close()


@pytest.fixture
def smtp_worker(smtp_server):
    env = worker_env(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_server.port),
        EMAIL_TIMEOUT=str(EMAIL_TIMEOUT_SECONDS),
        DWC_EMAIL_ALLOWED_DOMAINS="example.org",
        DWC_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
    )
    worker = start_worker("email-cancel", concurrency=2, env=env)
    yield worker
    worker.stop()


def test_cancel_cuts_off_an_email_being_sent(smtp_worker, smtp_server, user_api):
    body = {
        "name": "Mail",
        "nodes": [
            {
                "key": "mail",
                "type": "email",
                "config": {"to": ["ann@example.org"], "subject": "Report", "body": "All green."},
            }
        ],
    }
    workflow = create(user_api, body)
    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json")
    assert answer.status_code in (200, 202), answer.content
    run_id = answer.json()["id"]
    assert smtp_server.stalled.wait(30), smtp_worker.output()[-2000:]

    assert user_api.post(f"/api/v3/runs/{run_id}/cancel").status_code == 202
    cancelled_at = time.monotonic()
    assert smtp_server.hung_up.wait(HEARTBEAT_SECONDS + 5), "the worker kept sending"
    assert smtp_server.hung_up_at - cancelled_at < HEARTBEAT_SECONDS + 3
    assert wait_for_run(run_id).status == "cancelled"
    assert StepRun.objects.get(run_id=run_id, node_key="mail").status == "cancelled"
    # The worker let go of the step (its late result, "stopped", dropped) well before the mail timeout.
    deadline = time.monotonic() + 10
    while "dropped a late result" not in smtp_worker.output():
        assert time.monotonic() < deadline, smtp_worker.output()[-3000:]
        time.sleep(0.1)
    assert "stopping a step that is no longer running here" in smtp_worker.output()

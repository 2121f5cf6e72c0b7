"""The email node against real SMTP peers on local sockets: one that takes the message, one that never answers."""

import socket
import socketserver
import threading
import time
from types import SimpleNamespace

import pytest

from workflows.engine.errors import TransientError
from workflows.engine.nodes.email import EmailNode


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to take one message: greeting, EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 test ESMTP")
        envelope = {"to": [], "data": b""}
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 test")
            elif command.startswith("MAIL FROM"):
                self.reply("250 OK")
            elif command.startswith("RCPT TO"):
                envelope["to"].append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif command == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    envelope["data"] += chunk
                self.server.received.append(envelope)
                self.reply("250 OK queued")
            elif command == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def send(config: dict) -> object:
    prepared = {"config": {"subject": "Weekly report", "body": "All green.", **config}}
    return EmailNode.execute(prepared, SimpleNamespace(run_id="run-1", idempotency_key="run-1:mail", workspace_id=None))


@pytest.fixture
def smtp_settings(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    # Recipients in a domain allowed to all workspaces: no workspace (and no database) is consulted.
    settings.DWC_EMAIL_ALLOWED_DOMAINS = ["example.org"]
    return settings


def test_the_message_reaches_the_smtp_server_with_its_idempotency_header(smtp_settings, smtp_server):
    smtp_settings.EMAIL_PORT = smtp_server.server_address[1]
    result = send({"to": ["ann@example.org"], "cc": ["bob@example.org"]})
    assert result.output == {"sent": 1, "to": ["ann@example.org"]}
    [envelope] = smtp_server.received
    assert envelope["to"] == ["ann@example.org", "bob@example.org"]
    assert b"Subject: Weekly report" in envelope["data"]
    assert b"X-DWC-Idempotency-Key: run-1:mail" in envelope["data"]


def test_a_server_that_never_answers_fails_the_step_within_the_timeout(smtp_settings):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) but never greets
    smtp_settings.EMAIL_PORT = silent.getsockname()[1]
    smtp_settings.EMAIL_TIMEOUT = 1
    started = time.monotonic()
    with silent, pytest.raises(TransientError, match="The mail server refused or failed"):
        send({"to": ["ann@example.org"]})
    assert time.monotonic() - started < 5

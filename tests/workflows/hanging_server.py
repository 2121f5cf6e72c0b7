"""A peer that never answers, for tests of cutting off outbound calls."""

import socket
import threading
import time


class HangingServer:
    """A TCP server that reads a request, never answers, and notes when the client hangs up."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.received, self.hung_up = threading.Event(), threading.Event()
        self.hung_up_at = 0.0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hang"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(120)
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            self.received.set()
            while connection.recv(4096):  # b"" once the client has shut the connection
                pass
            self.hung_up_at = time.monotonic()
            self.hung_up.set()

"""A TCP proxy that tests can cut and restore, to take a dependency (PostgreSQL, Redis) away from a
server process without stopping the dependency for everyone else.

`cut()` closes every connection through it and refuses new ones (the listening socket is closed,
so connecting is refused, as when the database is down); `restore()` listens on the same port again.
The upstream is a TCP address or a Unix socket path (the embedded PostgreSQL listens on one).
"""

import contextlib
import socket
import threading

from django.conf import settings
from django.db import connection as database_connection

from tests.processes import free_port


class FaultProxy:
    def __init__(self, upstream: tuple[str, int] | str):
        self.upstream = upstream
        self.port = free_port()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def close(self) -> None:
        self.cut()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.upstream)
        else:
            upstream = socket.create_connection(self.upstream)
        return upstream

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


def database_upstream() -> tuple[str, int] | str:
    """Where the test database listens: a TCP address, or the embedded server's Unix socket."""
    database = settings.DATABASES["default"]
    port = int(database.get("PORT") or 5432)
    if database["HOST"].startswith("/"):
        return f"{database['HOST']}/.s.PGSQL.{port}"
    return (database["HOST"], port)


def database_url_through(proxy: FaultProxy) -> str:
    """A DATABASE_URL for a subprocess that reaches the test database through `proxy`."""
    user, name = settings.DATABASES["default"]["USER"], database_connection.settings_dict["NAME"]
    return f"postgres://{user}@127.0.0.1:{proxy.port}/{name}"

"""What every websocket consumer does on connecting and leaving, and /ws/ping/."""

from datetime import UTC, datetime

from django.contrib.auth.base_user import AbstractBaseUser

from core.json_input import JsonWebsocketConsumer
from core.metrics import websocket_connections_active

CLOSE_UNAUTHENTICATED = 4401
PING_ONLY = 'Send {"action": "ping"}.'


def is_ping(content: object) -> bool:
    return isinstance(content, dict) and content.get("action") == "ping"


class AuthenticatedConsumer(JsonWebsocketConsumer):
    """A consumer for logged-in users: `accept_user()` on connecting, `count_connection()` once it is
    set up; leaving uncounts it. Clients may send {"action": "ping"} to get a pong."""

    counted = False

    async def accept_user(self) -> AbstractBaseUser | None:
        """The scope's logged-in user, the connection accepted; None, the connection closed with 4401."""
        # Accepted first so that the close code reaches the client (a refused handshake has none).
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return None
        return user

    def count_connection(self) -> None:
        websocket_connections_active.inc()
        self.counted = True

    async def disconnect(self, code: int) -> None:
        if self.counted:
            websocket_connections_active.dec()
            self.counted = False

    async def pong(self) -> None:
        await self.send_json({"type": "pong", "ts": datetime.now(UTC).isoformat()})

    async def receive_json(self, content: object, **kwargs) -> None:
        if is_ping(content):
            await self.pong()
        else:
            await self.send_json({"type": "error", "detail": PING_ONLY})


class PingConsumer(AuthenticatedConsumer):
    """/ws/ping/: proves a client can reach the realtime server and authenticate there."""

    async def connect(self) -> None:
        user = await self.accept_user()
        if user is None:
            return
        self.count_connection()
        await self.send_json({"type": "hello", "user": str(user.pk)})

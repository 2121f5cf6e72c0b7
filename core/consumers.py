from datetime import UTC, datetime

from core.json_input import JsonWebsocketConsumer
from core.metrics import websocket_connections_active

CLOSE_UNAUTHENTICATED = 4401


class PingConsumer(JsonWebsocketConsumer):
    """/ws/ping/: proves a client can reach the realtime server and authenticate there."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        websocket_connections_active.inc()
        self.counted = True
        await self.send_json({"type": "hello", "user": str(user.pk)})

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("action") == "ping":
            await self.send_json({"type": "pong", "ts": datetime.now(UTC).isoformat()})
        else:
            await self.send_json({"type": "error", "detail": 'Send {"action": "ping"}.'})

    async def disconnect(self, code) -> None:
        if getattr(self, "counted", False):
            websocket_connections_active.dec()

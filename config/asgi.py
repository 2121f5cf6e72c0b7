"""ASGI entry point: daphne serves websockets (and, in the embedded mode, HTTP too)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
# Django must be set up before anything imports models (consumers, the auth middleware).
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402

# Under ASGI every request runs its sync code in a thread of its own, so a persistent connection
# would outlive its thread and leak ("too many clients" under load). Django's advice: no
# persistent connections in async servers. (gunicorn and the workers keep theirs.) A pool lends
# each request a connection and takes it back, instead of a new one per request (a backend forked,
# authenticated and set up): webhook throughput at concurrency 10 rose from 48-51 to 63-75 runs/s
# (bench/webhook_throughput.py).
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
if settings.DWC_ASGI_DATABASE_POOL:
    # A connection this thread opened before (`manage.py start` migrates first) is not the pool's:
    # closed once the pool is configured, it would be handed back to it (AttributeError at exit).
    connections["default"].close()
    settings.DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "20")),
        # A request that finds every connection lent, or the database gone, waits this long, then
        # fails (503 with Retry-After, core.problems).
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
    }

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.websocket_auth import SessionOrTokenAuthMiddleware  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

# HTTP stays on Django's own handler, which runs each request's sync code in a thread of the request's
# own: a view that waits holds only that thread. A fixed pool in front (a2wsgi's, say) would let a
# few slow requests stop all the others, and holds a thread per open event stream: with 16 threads,
# 20 streams left /health unanswered for 30 s (tests/test_request_isolation.py opens 20).
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(SessionOrTokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

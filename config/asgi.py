"""ASGI entry point: daphne serves websockets (and, in the embedded mode, HTTP too)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
# Django must be set up before anything imports models (consumers, the auth middleware).
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

# Under ASGI every request runs its sync code in a thread of its own, so a persistent connection
# would outlive its thread and leak ("too many clients" under load). Django's advice: no
# persistent connections in async servers. (gunicorn and the workers keep theirs.)
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.websocket_auth import SessionOrTokenAuthMiddleware  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(SessionOrTokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

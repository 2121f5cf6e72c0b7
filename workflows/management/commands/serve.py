import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from config import embedded

logger = logging.getLogger("dwc.serve")


class Command(BaseCommand):
    help = (
        "Serve HTTP and websockets with daphne on HOST:PORT. In the embedded mode (no REDIS_URL) the "
        "Celery worker and beat run inside this process too. Stops cleanly on SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args, host: str, port: int, **options):
        # Importing daphne.server installs Twisted's asyncio reactor: keep it inside the command.
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from config.asgi import application

        is_embedded = settings.DWC_MODE == "embedded"
        if is_embedded:
            embedded.claim_checkout(url=f"http://{host}:{port}/")
            embedded.start()
        logger.info("serving", extra={"url": f"http://{host}:{port}/", "mode": settings.DWC_MODE})
        try:
            Server(
                application=application,
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=True,
                application_close_timeout=5,
                websocket_handshake_timeout=10,
            ).run()
        finally:
            if is_embedded:
                embedded.stop()
            logger.info("stopped")

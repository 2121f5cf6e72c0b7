import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from config import embedded
from core import shutdown
from workflows import run_ends

logger = logging.getLogger("dwc.serve")

# How long a stopping server lets waiting requests (a webhook's ?wait=) answer before it stops.
DRAIN_SECONDS = 3.0


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
        from twisted.internet import reactor

        from config.asgi import application

        is_embedded = settings.DWC_MODE == "embedded"
        if is_embedded:
            embedded.claim_checkout(url=f"http://{host}:{port}/")
            embedded.start()
        logger.info("serving", extra={"url": f"http://{host}:{port}/", "mode": settings.DWC_MODE})
        # Our own SIGTERM/SIGINT handling instead of Twisted's: waiting requests answer first (see
        # core.shutdown), then the reactor stops and daphne closes what is still open.
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda *_: reactor.callFromThread(_drain_then_stop, reactor))
        try:
            Server(
                application=application,
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=False,
                application_close_timeout=5,
                websocket_handshake_timeout=10,
            ).run()
        finally:
            if is_embedded:
                embedded.stop()
            logger.info("stopped")


def _drain_then_stop(reactor, deadline: float | None = None) -> None:
    """Release the waiting requests, then stop once they answered or DRAIN_SECONDS passed."""
    if deadline is None:
        if shutdown.began():
            return  # a second signal while draining
        logger.info("stopping; letting waiting requests answer")
        shutdown.begin()
        run_ends.wake_all()  # a waiting delivery reads its run once more, sees `began()` and answers
        deadline = time.monotonic() + DRAIN_SECONDS
    if shutdown.drained() or time.monotonic() >= deadline:
        # The last answers leave the view now; the reactor writes them in its next turns.
        reactor.callLater(0.1, reactor.stop)
    else:
        reactor.callLater(0.05, _drain_then_stop, reactor, deadline)

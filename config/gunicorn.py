"""gunicorn's settings for the distributed mode's HTTP server: `gunicorn -c config/gunicorn.py config.wsgi`
(`make web`, the Docker image). Options given on the command line (--bind, --workers) win over these.

Each worker process serves requests from a pool of DWC_HTTP_THREADS threads (the gthread worker), so
a request that waits (on a row lock, a slow query) holds one thread rather than a whole process. With
gunicorn's default sync worker, two such requests stopped every other request of the two-worker
server until gunicorn's 30 s timeout killed them. Every thread keeps a database connection of its own
(CONN_MAX_AGE): at most workers times DWC_HTTP_THREADS of them.
"""

import os
import tempfile

worker_class = "gthread"
threads = int(os.environ.get("DWC_HTTP_THREADS", "8"))
workers = int(os.environ.get("WEB_WORKERS", "2"))


def on_starting(server) -> None:
    """Every worker counts its requests in files of one directory, which /metrics on any worker sums
    (prometheus_client's multiprocess mode): without it a scrape sees one worker's share. The
    directory is emptied at each start, or made fresh when PROMETHEUS_MULTIPROC_DIR names none. The
    master imports no prometheus_client; the workers, which do, start after this."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="dwc-web-metrics-")
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

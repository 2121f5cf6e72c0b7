"""gunicorn's settings for the distributed mode's HTTP server: `gunicorn -c config/gunicorn.py config.wsgi`
(`make web`, the Docker image). Options given on the command line (--bind, --workers) win over these.

Each worker process serves requests from a pool of DWC_HTTP_THREADS threads (the gthread worker), so
a request that waits (on a row lock, a slow query) holds one thread rather than a whole process. With
gunicorn's default sync worker, two such requests stopped every other request of the two-worker
server until gunicorn's 30 s timeout killed them. Every thread keeps a database connection of its own
(CONN_MAX_AGE): at most workers times DWC_HTTP_THREADS of them.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("DWC_HTTP_THREADS", "8"))
workers = int(os.environ.get("WEB_WORKERS", "2"))

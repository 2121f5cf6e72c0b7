# One image for every process: the distributed mode's web, realtime, worker, beat and migrate, and
# the embedded mode; the first argument picks it (deploy/entrypoint.sh).
#
# The base is any Debian-like image with Python 3.11 whose `python3 -m venv` works: the official
# python:3.11-slim by default, or one of your own (`--build-arg PYTHON_IMAGE=...`; deploy/image-smoke.sh
# builds one from Debian's packages where no registry is reachable).
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the dependencies in a virtualenv, copied whole into the final stage ---------------
FROM ${PYTHON_IMAGE} AS builder

# Where pip finds packages (PyPI unless given), for builds behind a mirror. Build arguments reach
# this stage's RUN as environment variables and end with it: the final image keeps none.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Every pinned package ships a manylinux or pure-Python wheel (psycopg[binary] included) or, as http-ece,
# is pure Python built from its sdist, so no compiler is needed here either. Behind a TLS-intercepting
# proxy, pass its CA bundle as the optional build secret `pip-ca` (`--secret id=pip-ca,src=...`):
# a secret is mounted for this RUN only and is in no layer.
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- final: the virtualenv and the code, no build tools ---------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

# The code stays root-owned (read-only to the app); only var/ is the app's to write. The home
# directory is where gunicorn puts its control socket ($HOME/.gunicorn).
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin dwc \
    && mkdir -p /app/var \
    && chown dwc:dwc /app/var

COPY --from=builder /opt/venv /opt/venv
COPY . .

# The base settings collect the same files as production without its required secrets. The
# throwaway keys and the var dir live only in this RUN's environment, so the image keeps neither
# a secret nor a SQLite file. The code's bytecode is compiled here: the running user cannot write it.
RUN DJANGO_SETTINGS_MODULE=config.settings.base \
    SECRET_KEY=build-only-not-a-secret \
    CREDENTIALS_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    DWC_VAR_DIR=/tmp/dwc-build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/dwc-build-var \
    && python -m compileall -q /app

USER dwc

EXPOSE 8000 8001

# No curl in the image; /health answers without touching the database, so it means "process is up".
# It targets `web` (and `embedded`), both on 8000. realtime answers /health on 8001, and worker and
# beat serve no HTTP: docker-compose.yml overrides or disables the check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]

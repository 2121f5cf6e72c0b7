# One image for every process of the distributed mode (web, realtime, worker, beat, migrate);
# docker-compose.yml picks the process with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies before the code, so editing the code does not reinstall them.
# Every pinned package ships a manylinux or pure-Python wheel (psycopg[binary] included) or, as http-ece,
# is pure Python built from its sdist, so no compiler is needed.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# The base settings collect the same files as production without its required secrets. The
# throwaway keys and the var dir live only in this RUN's environment, so the image keeps neither
# a secret nor a SQLite file.
RUN DJANGO_SETTINGS_MODULE=config.settings.base \
    SECRET_KEY=build-only-not-a-secret \
    CREDENTIALS_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    DWC_VAR_DIR=/tmp/dwc-build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/dwc-build-var

# The code stays root-owned (read-only to the app); only var/ is the app's to write. The home
# directory is where gunicorn puts its control socket ($HOME/.gunicorn).
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin dwc \
    && mkdir -p /app/var \
    && chown dwc:dwc /app/var
USER dwc

EXPOSE 8000 8001

# slim has no curl; /health answers without touching the database, so it means "process is up".
# Services that serve no HTTP on 8000 override or disable this in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi", "--bind", "0.0.0.0:8000"]

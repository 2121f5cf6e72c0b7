# The two commands the README opens with: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format worker beat web realtime

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py ensure_demo
	exec $(PY) manage.py serve

test: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(VENV)/bin/pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The distributed mode's separate processes (REDIS_URL and DATABASE_URL set).
web: $(VENV)/.installed
	exec $(VENV)/bin/gunicorn config.wsgi --bind $${HOST:-127.0.0.1}:$${PORT:-8000} --workers $${WEB_WORKERS:-2}

realtime: $(VENV)/.installed
	exec $(VENV)/bin/daphne --bind $${HOST:-127.0.0.1} --port $${REALTIME_PORT:-8001} config.asgi:application

worker: $(VENV)/.installed
	exec $(VENV)/bin/celery -A config worker --loglevel INFO -Q engine,generation,notifications

beat: $(VENV)/.installed
	exec $(VENV)/bin/celery -A config beat --loglevel INFO

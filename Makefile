# The two commands the README opens with: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format engine-worker worker beat web realtime

# `make run` installs what the product needs; `make test` adds the test tools on top.
$(VENV)/.runtime-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# `start` = migrate, ensure_admin, ensure_demo, serve, in one process (one Django start-up, not four).
run: $(VENV)/.runtime-installed
	exec $(PY) manage.py start

# The suite runs in TEST_PROCESSES processes (pytest-xdist), a test file to one process: each has its
# own test database and Redis database (config/settings/test.py). TEST_PROCESSES=0 runs it in one.
TEST_PROCESSES ?= 2
test: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The distributed mode's separate processes (REDIS_URL and DATABASE_URL set).
web: $(VENV)/.runtime-installed
	exec $(VENV)/bin/gunicorn -c config/gunicorn.py config.wsgi --bind $${HOST:-127.0.0.1}:$${PORT:-8000}

realtime: $(VENV)/.runtime-installed
	exec $(VENV)/bin/daphne --bind $${HOST:-127.0.0.1} --port $${REALTIME_PORT:-8001} config.asgi:application

# Control work (advancing runs, cheap steps, wake-ups, recovery) has workers of its own, so that it
# never waits behind slow calls: start one or two engine workers and as many step workers as needed.
engine-worker: $(VENV)/.runtime-installed
	exec $(VENV)/bin/celery -A config worker --loglevel INFO -Q engine --hostname engine@%h

worker: $(VENV)/.runtime-installed
	exec $(VENV)/bin/celery -A config worker --loglevel INFO -Q calls,generation,notifications

beat: $(VENV)/.runtime-installed
	exec $(VENV)/bin/celery -A config beat --loglevel INFO

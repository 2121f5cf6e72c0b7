#!/bin/sh
# The image's one entry point: the first argument names the process, so the same image runs every
# part of the distributed mode (docker-compose.yml's `command:`, the Kubernetes `args:`) and the
# embedded mode. Each branch execs, so the process is PID 1's replacement and gets SIGTERM itself
# (gunicorn, daphne and Celery stop gracefully on it). Arguments after the subcommand are appended.
set -eu

usage="subcommands: web, realtime, worker, beat, migrate, embedded; or a program to run"

if [ "$#" -eq 0 ]; then
    echo "dwc-entrypoint: no subcommand ($usage)" >&2
    exit 64
fi

command=$1
shift
case "$command" in
    web)
        exec gunicorn -c config/gunicorn.py config.wsgi --bind 0.0.0.0:8000 "$@"
        ;;
    realtime)
        exec daphne --bind 0.0.0.0 --port 8001 config.asgi:application "$@"
        ;;
    worker)
        # Without DWC_WORKER_QUEUES the worker consumes every queue the settings declare
        # (engine, calls, generation, notifications). Without DWC_WORKER_CONCURRENCY Celery starts
        # one pool process per CPU of the node, which a container's CPU limit does not lower.
        set -- celery -A config worker --loglevel "${LOG_LEVEL:-INFO}" "$@"
        if [ -n "${DWC_WORKER_QUEUES:-}" ]; then
            set -- "$@" -Q "$DWC_WORKER_QUEUES"
        fi
        # Steps that wait on calls want many threads (DWC_WORKER_POOL=threads); CPU-bound control
        # work one process per CPU (Celery's default prefork).
        if [ -n "${DWC_WORKER_POOL:-}" ]; then
            set -- "$@" --pool "$DWC_WORKER_POOL"
        fi
        if [ -n "${DWC_WORKER_CONCURRENCY:-}" ]; then
            set -- "$@" --concurrency "$DWC_WORKER_CONCURRENCY"
        fi
        if [ -n "${DWC_WORKER_NAME:-}" ]; then
            set -- "$@" --hostname "$DWC_WORKER_NAME"
        fi
        exec "$@"
        ;;
    beat)
        exec celery -A config beat --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    embedded)
        exec python manage.py start --host 0.0.0.0 --port 8000 "$@"
        ;;
    *)
        if ! command -v "$command" >/dev/null 2>&1; then
            echo "dwc-entrypoint: '$command' is neither a subcommand nor a program ($usage)" >&2
            exit 127
        fi
        exec "$command" "$@"
        ;;
esac

#!/usr/bin/env bash
# Build the image and use it: the embedded mode in one container, then the distributed mode's
# processes from the same image against this machine's PostgreSQL and Redis. Each mode registers a
# user and runs the demo workflow to success. Not part of .ci/run: it needs podman (or docker) able
# to build and run containers, and takes a few minutes.
#
#   deploy/image-smoke.sh
#
# Environment (all optional):
#   ENGINE            podman (default) or docker
#   ENGINE_OPTS       options before the engine's subcommand (`--runtime runc`)
#   RUN_OPTS          options for every `run` and `build` (`--ulimit nofile=20000:20000`)
#   IMAGE             the tag to build (localhost/dwc:smoke)
#   PYTHON_IMAGE      the base image build argument (the Dockerfile's default: python:3.11-slim)
#   PIP_INDEX_URL     pip's index inside the build (default: pip's configured global.index-url)
#   PIP_CA            a CA bundle for pip inside the build, passed as the build secret `pip-ca`
#   SKIP_BUILD=1      use IMAGE as it is
#   DATABASE_ADMIN_URL  a PostgreSQL URL allowed to create databases (postgres://postgres@127.0.0.1:5432/postgres)
#   SMOKE_DATABASE    the database the distributed mode gets, dropped and created (dwc_image_smoke)
#   SMOKE_REDIS_URL   Redis for the distributed mode, flushed before and after (redis://127.0.0.1:6379/7)
#   EMBEDDED_PORT     the host port the embedded container is published on (18000)
#
# The distributed mode's containers use the host's network: web listens on 8000, realtime on 8001,
# the workers' and beat's metrics on 9100-9102, which must be free.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-podman}
read -r -a ENGINE_ARGS <<<"${ENGINE_OPTS:-}"
read -r -a RUN_ARGS <<<"${RUN_OPTS:-}"
IMAGE=${IMAGE:-localhost/dwc:smoke}
DATABASE_ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SMOKE_DATABASE=${SMOKE_DATABASE:-dwc_image_smoke}
SMOKE_REDIS_URL=${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/7}
EMBEDDED_PORT=${EMBEDDED_PORT:-18000}
PREFIX=dwc-smoke
PASSWORD=Smoke-test-passphrase-7
CONTAINERS=()

engine() { "$ENGINE" "${ENGINE_ARGS[@]}" "$@"; }
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAILED: %s\n' "$*" >&2
    exit 1
}

# A throwaway container of the image, on the host's network, with the distributed mode's settings.
run_once() { engine run --rm --no-healthcheck "${RUN_ARGS[@]}" --network host "${DISTRIBUTED_ENV[@]}" "$IMAGE" "$@"; }

start() { # name, then run options and arguments
    local name=$PREFIX-$1
    shift
    engine rm -f "$name" >/dev/null 2>&1 || true
    engine run -d --name "$name" "${RUN_ARGS[@]}" "$@" >/dev/null
    CONTAINERS+=("$name")
}

stop() { # container: SIGTERM, then SIGKILL after 20 s
    engine stop -t 20 "$1" >/dev/null 2>&1 || true
    engine rm -f "$1" >/dev/null 2>&1 || true
}

cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        for name in "${CONTAINERS[@]}"; do
            printf '\n-- last lines of %s\n' "$name" >&2
            engine logs --tail 40 "$name" >&2 2>&1 || true
        done
    fi
    for name in "${CONTAINERS[@]}"; do
        stop "$name"
    done
    if [ -n "${FLUSH_REDIS:-}" ]; then
        run_once python -c "$DROP_DATABASE$FLUSH_REDIS" >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT

json() { # a Python expression on the JSON document `d` read from stdin
    python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

wait_for_http() { # url, what, seconds
    local started=$SECONDS deadline=$((SECONDS + $3))
    until curl -fs -o /dev/null -m 5 "$1"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$2 did not answer $1 within $3 s"
        sleep 1
    done
    ok "$2 answers $1 ($((SECONDS - started)) s)"
}

healthcheck() { # container: the image's own HEALTHCHECK, run now
    if [ "$ENGINE" = podman ]; then
        engine healthcheck run "$1" >/dev/null || fail "the HEALTHCHECK of $1 fails"
    else
        local deadline=$((SECONDS + 90))
        until [ "$(engine inspect --format '{{.State.Health.Status}}' "$1")" = healthy ]; do
            [ "$SECONDS" -lt "$deadline" ] || fail "$1 is not healthy"
            sleep 2
        done
    fi
    ok "HEALTHCHECK of $1: healthy"
}

demo_run() { # base URL, email, command that creates the demo for that email
    local base=$1 email=$2 access workflow run status deadline
    shift 2
    curl -fsS -m 10 -H 'Content-Type: application/json' "$base/api/v3/auth/register" \
        -d "{\"email\": \"$email\", \"password\": \"$PASSWORD\", \"name\": \"Smoke\"}" >/dev/null
    access=$(curl -fsS -m 10 -H 'Content-Type: application/json' "$base/api/v3/auth/token" \
        -d "{\"email\": \"$email\", \"password\": \"$PASSWORD\"}" | json 'd["access"]')
    ok "registered $email and got a token"
    "$@" ensure_demo --email "$email"
    workflow=$(curl -fsS -m 10 -H "Authorization: Bearer $access" "$base/api/v3/workflows" |
        json '[w["id"] for w in d["results"] if w["slug"] == "ai-blog-series"][0]')
    run=$(curl -fsS -m 10 -H "Authorization: Bearer $access" -H 'Content-Type: application/json' \
        "$base/api/v3/workflows/$workflow/runs" -d '{"input": {"topic": "container images"}}' | json 'd["id"]')
    deadline=$((SECONDS + 120))
    while :; do
        status=$(curl -fsS -m 10 -H "Authorization: Bearer $access" "$base/api/v3/runs/$run" | json 'd["status"]')
        case $status in
            succeeded) break ;;
            failed | cancelled) fail "run $run of the demo workflow $status" ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] || fail "run $run of the demo workflow still $status after 120 s"
        sleep 1
    done
    curl -fsS -m 10 -H "Authorization: Bearer $access" "$base/api/v3/runs/$run" |
        json '"run %s succeeded: %s" % (d["id"], ", ".join(s["key"] + " " + s["status"] for s in d["steps"]))'
}

if [ "${SKIP_BUILD:-}" != 1 ]; then
    step "build $IMAGE${PYTHON_IMAGE:+ from $PYTHON_IMAGE}"
    build=(build --network host -t "$IMAGE")
    # podman writes OCI images by default, and OCI has no HEALTHCHECK.
    [ "$ENGINE" != podman ] || build+=(--format docker)
    [ -z "${PYTHON_IMAGE:-}" ] || build+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
    index=${PIP_INDEX_URL:-$(pip config get global.index-url 2>/dev/null || true)}
    [ -z "$index" ] || build+=(--build-arg "PIP_INDEX_URL=$index")
    [ -z "${PIP_CA:-}" ] || build+=(--secret "id=pip-ca,src=$PIP_CA")
    engine "${build[@]}" "${RUN_ARGS[@]}" .
fi
engine images "$IMAGE"

step "entry point: an unknown subcommand, and a program"
if output=$(engine run --rm --no-healthcheck "${RUN_ARGS[@]}" "$IMAGE" no-such-subcommand 2>&1); then
    fail "no-such-subcommand succeeded: $output"
fi
printf '%s\n' "$output" | grep -q "neither a subcommand nor a program" || fail "unexpected: $output"
ok "no-such-subcommand: $output"
engine run --rm --no-healthcheck "${RUN_ARGS[@]}" "$IMAGE" python -c "import os; print('python runs as uid', os.getuid())"

step "embedded mode: one container, published on 127.0.0.1:$EMBEDDED_PORT"
start embedded -p "127.0.0.1:$EMBEDDED_PORT:8000" "$IMAGE" embedded
wait_for_http "http://127.0.0.1:$EMBEDDED_PORT/health" "the embedded container" 180
healthcheck "$PREFIX-embedded"
demo_run "http://127.0.0.1:$EMBEDDED_PORT" embedded@example.com \
    engine exec "$PREFIX-embedded" python manage.py
# SIGTERM reaches the server as PID 1 (the entry point execs it): it stops its worker, then its database.
engine stop -t 20 "$PREFIX-embedded" >/dev/null
code=$(engine inspect --format '{{.State.ExitCode}}' "$PREFIX-embedded")
engine logs "$PREFIX-embedded" 2>&1 | grep -q "embedded database stopped" ||
    fail "the embedded container stopped (exit code $code) without stopping its database"
[ "$code" = 0 ] || fail "the embedded container exited with $code on SIGTERM"
engine rm -f "$PREFIX-embedded" >/dev/null
ok "embedded container stopped on SIGTERM: exit code 0, its database stopped"

step "distributed mode: database $SMOKE_DATABASE, Redis $SMOKE_REDIS_URL"
DATABASE_URL=${DATABASE_ADMIN_URL%/*}/$SMOKE_DATABASE
DISTRIBUTED_ENV=(
    -e DJANGO_SETTINGS_MODULE=config.settings.production
    -e "DATABASE_URL=$DATABASE_URL"
    -e "REDIS_URL=$SMOKE_REDIS_URL"
    -e "SECRET_KEY=smoke-$(python3 -c 'import secrets; print(secrets.token_urlsafe(40))')"
    -e "CREDENTIALS_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
    -e ALLOWED_HOSTS=localhost,127.0.0.1
    -e SECURE_COOKIES=false
)
DROP_DATABASE="
import psycopg
with psycopg.connect('$DATABASE_ADMIN_URL', autocommit=True) as c:
    c.execute('DROP DATABASE IF EXISTS $SMOKE_DATABASE WITH (FORCE)')
"
FLUSH_REDIS="
import redis
redis.Redis.from_url('$SMOKE_REDIS_URL').flushdb()
"
run_once python -c "$DROP_DATABASE$FLUSH_REDIS
with psycopg.connect('$DATABASE_ADMIN_URL', autocommit=True) as c:
    c.execute('CREATE DATABASE $SMOKE_DATABASE')
"
ok "created $SMOKE_DATABASE, flushed $SMOKE_REDIS_URL"
for port in 8000 8001 9100 9101 9102; do
    if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/"; then
        fail "port $port is in use on this machine"
    fi
done

step "distributed mode: migrate"
run_once migrate

step "distributed mode: web, realtime, engine-worker, worker, beat"
host=(--network host "${DISTRIBUTED_ENV[@]}")
start web "${host[@]}" "$IMAGE" web
start realtime "${host[@]}" "$IMAGE" realtime
start engine-worker "${host[@]}" -e DWC_WORKER_QUEUES=engine -e 'DWC_WORKER_NAME=engine@%h' \
    -e DWC_WORKER_CONCURRENCY=2 -e DWC_METRICS_PORT=9100 "$IMAGE" worker
start worker "${host[@]}" -e DWC_WORKER_QUEUES=calls,generation,notifications \
    -e DWC_WORKER_CONCURRENCY=2 -e DWC_METRICS_PORT=9101 "$IMAGE" worker
start beat "${host[@]}" -e DWC_METRICS_PORT=9102 "$IMAGE" beat
wait_for_http http://127.0.0.1:8000/health web 120
wait_for_http http://127.0.0.1:8001/health realtime 120
healthcheck "$PREFIX-web"
wait_for_http http://127.0.0.1:8000/ready "web's readiness (database, cache, broker, channel layer)" 60
for port in 9100 9101 9102; do
    wait_for_http "http://127.0.0.1:$port/metrics" "metrics on $port" 120
done
demo_run http://127.0.0.1:8000 distributed@example.com run_once python manage.py
curl -fsS -m 10 http://127.0.0.1:8000/status | json '"status: mode %s, workers answering %s" % (d.get("mode"), d.get("workers"))'
# The steps ran in the workers' pool processes, which count them for their worker's /metrics (the
# demo's document steps travel on `generation`, so the step worker counts them and the run's end).
counted=$(for port in 9100 9101; do
    curl -fsS -m 10 "http://127.0.0.1:$port/metrics" | grep '^dwc_workflow_runs_total\|^dwc_step_executions_total' |
        grep -v ' 0\.0$' | sed "s/^/metrics on $port: /"
done || true)
printf '%s\n' "$counted"
printf '%s\n' "$counted" | grep -q 'dwc_workflow_runs_total{status="succeeded"} [1-9]' ||
    fail "no worker's metrics count the succeeded run"

step "done: both modes ran the demo workflow to success"

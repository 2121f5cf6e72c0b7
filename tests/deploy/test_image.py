"""The container image's recipe, read without building it: the Dockerfile's stages, user, health
check and entry point, and what deploy/entrypoint.sh execs for each subcommand, run with stub
programs standing in for the image's gunicorn, daphne, celery and python.

deploy/image-smoke.sh builds and runs the image itself (docs/operations.md, Docker); it needs a
container engine, so it is not part of the test run.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from config.settings.engine import DWC_CONTROL_QUEUE, DWC_STEP_QUEUES

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
PROGRAMS = ("gunicorn", "daphne", "celery", "python")
APP_SERVICES = {
    "migrate": "migrate",
    "web": "web",
    "realtime": "realtime",
    "engine-worker": "worker",
    "worker": "worker",
    "beat": "beat",
}
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|apt-get|apk)\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (keyword.upper(), arguments.strip())
        for keyword, _, arguments in (line.strip().partition(" ") for line in joined.splitlines())
        if keyword
    ]


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each starting at its FROM."""
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def arguments_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for found, arguments in stage if found == keyword]


def entrypoint(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the entry point with stubs on PATH that print their name, their argv and their pid."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in PROGRAMS:
        stub = bin_dir / program
        stub.write_text('#!/bin/sh\necho "pid $$"\nprintf "%s\\n" "$(basename "$0")" "$@"\n')
        stub.chmod(0o755)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=10)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), process.pid


def exec_line(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """The command line a subcommand runs, asserting it replaced the shell (same pid: signals reach it)."""
    completed, pid = entrypoint(tmp_path, *args, **env)
    assert completed.returncode == 0, completed.stderr
    first, *argv = completed.stdout.splitlines()
    assert first == f"pid {pid}", "the entry point must exec the process, not run it as a child"
    return argv


def test_the_dockerfile_has_a_builder_stage_and_a_final_stage_on_one_overridable_base():
    text = DOCKERFILE.read_text()
    before_first_from = text[: text.index("\nFROM ")]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", before_first_from, re.MULTILINE)
    builder, final = stages()
    assert arguments_of(builder, "FROM") == ["${PYTHON_IMAGE} AS builder"]
    assert arguments_of(final, "FROM") == ["${PYTHON_IMAGE}"]
    assert "--from=builder /opt/venv /opt/venv" in arguments_of(final, "COPY")
    # python3, not python: a Debian base has only /usr/bin/python3 before the virtualenv exists.
    assert any("python3 -m venv /opt/venv" in run for run in arguments_of(builder, "RUN"))
    assert any(env.startswith("PATH=/opt/venv/bin:") for env in arguments_of(final, "ENV"))


def test_the_final_stage_runs_as_uid_10001_and_installs_no_build_tools():
    final = stages()[-1]
    runs = arguments_of(final, "RUN")
    assert any("useradd --uid 10001" in run and run.split()[-1] == "dwc" for run in runs.pop(0).split("&&"))
    assert arguments_of(final, "USER") == ["dwc"]
    assert [keyword for keyword, _ in final].index("USER") > max(
        index for index, (keyword, _) in enumerate(final) if keyword in ("RUN", "COPY")
    ), "everything after USER would be built as dwc"
    for run in arguments_of(final, "RUN"):
        assert not COMPILERS.search(run), run
        assert "pip install" not in run, run


def test_static_files_are_collected_at_build_without_a_secret_left_in_the_image():
    final = stages()[-1]
    (collect,) = [run for run in arguments_of(final, "RUN") if "collectstatic" in run]
    assert "rm -rf /tmp/dwc-build-var" in collect
    assert not [env for env in arguments_of(final, "ENV") if "SECRET_KEY" in env or "CREDENTIALS_KEY" in env]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"var", ".env", ".env.*", ".venv"} <= set(ignored)
    # The deploy folder is ignored except the entry point, which must come after it to win.
    assert ignored.index("!deploy/entrypoint.sh") > ignored.index("deploy")


def test_the_healthcheck_asks_web_for_health_with_python():
    (healthcheck,) = arguments_of(stages()[-1], "HEALTHCHECK")
    command = healthcheck.split("CMD", 1)[1].strip()
    assert command.startswith('["python", "-c"'), "the image has no curl"
    assert "http://127.0.0.1:8000/health" in command


def test_the_entrypoint_is_the_script_and_web_is_the_default():
    final = stages()[-1]
    assert arguments_of(final, "ENTRYPOINT") == ['["/app/deploy/entrypoint.sh"]']
    assert arguments_of(final, "CMD") == ['["web"]']
    assert os.access(ENTRYPOINT, os.X_OK), "COPY keeps the mode: the script must be executable in git"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["web"], {}, "gunicorn -c config/gunicorn.py config.wsgi --bind 0.0.0.0:8000"),
        (["realtime"], {}, "daphne --bind 0.0.0.0 --port 8001 config.asgi:application"),
        (["worker"], {}, "celery -A config worker --loglevel INFO"),
        (
            ["worker"],
            {
                "DWC_WORKER_QUEUES": "engine",
                "DWC_WORKER_CONCURRENCY": "2",
                "DWC_WORKER_NAME": "engine@%h",
                "LOG_LEVEL": "WARNING",
            },
            "celery -A config worker --loglevel WARNING -Q engine --concurrency 2 --hostname engine@%h",
        ),
        (
            ["worker"],
            {"DWC_WORKER_QUEUES": "calls,generation", "DWC_WORKER_POOL": "threads", "DWC_WORKER_CONCURRENCY": "32"},
            "celery -A config worker --loglevel INFO -Q calls,generation --pool threads --concurrency 32",
        ),
        (["beat"], {}, "celery -A config beat --loglevel INFO"),
        (["migrate"], {}, "python manage.py migrate --noinput"),
        (["embedded"], {}, "python manage.py start --host 0.0.0.0 --port 8000"),
        (["web", "--workers", "4"], {}, "gunicorn -c config/gunicorn.py config.wsgi --bind 0.0.0.0:8000 --workers 4"),
        (["python", "manage.py", "shell"], {}, "python manage.py shell"),
    ],
)
def test_each_subcommand_execs_its_process(tmp_path, args, env, expected):
    assert exec_line(tmp_path, *args, **env) == shlex.split(expected)


def test_a_worker_without_queues_consumes_every_queue_the_settings_declare(tmp_path):
    # No -Q: Celery then consumes CELERY_TASK_QUEUES, so a queue added there needs no edit here.
    assert "-Q" not in exec_line(tmp_path, "worker")
    assert {DWC_CONTROL_QUEUE, *DWC_STEP_QUEUES} == {"engine", "calls", "generation", "notifications"}


def test_an_unknown_subcommand_fails_with_a_message(tmp_path):
    completed, _ = entrypoint(tmp_path, "wbe")
    assert completed.returncode == 127
    assert "'wbe' is neither a subcommand nor a program" in completed.stderr
    assert "web, realtime, worker, beat, migrate, embedded" in completed.stderr
    completed, _ = entrypoint(tmp_path)
    assert completed.returncode == 64
    assert "no subcommand" in completed.stderr


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_runs_every_app_service_through_an_entrypoint_subcommand():
    services = compose_services()
    for name, subcommand in APP_SERVICES.items():
        assert services[name]["command"] == [subcommand], name
        # The merged environment keeps the shared settings (a shallow merge would have dropped them).
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production", name


def test_compose_workers_split_the_queues_and_workers_and_beat_serve_metrics():
    services = compose_services()
    assert services["engine-worker"]["environment"]["DWC_WORKER_QUEUES"] == DWC_CONTROL_QUEUE
    assert services["worker"]["environment"]["DWC_WORKER_QUEUES"] == ",".join(DWC_STEP_QUEUES)
    for name in ("engine-worker", "worker", "beat"):
        assert services[name]["environment"]["DWC_METRICS_PORT"] == "9100", name
        assert services[name]["healthcheck"] == {"disable": True}, name
    for name in ("web", "realtime", "migrate"):
        assert "DWC_METRICS_PORT" not in services[name]["environment"], name
